"""A client's config file as the broker reads and writes it, whatever its format.

JSON files go through :mod:`broker.integrations.jsonconfig` (strict parse, the file's own
style kept). A JSON file with comments (for a client that reads such files), and TOML and YAML
files, go through :mod:`broker.integrations.textconfig` (line edits that keep every comment,
checked by parsing the result; :mod:`broker.integrations.jsoncedit` knows JSON). Either way: a
backup before each change, the new content lands atomically, and a file that changed meanwhile
is not overwritten.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from broker.errors import ClientConfigError
from broker.integrations.clientconfigs import JSON, TOML, McpClient
from broker.integrations.jsoncedit import JsoncMembers
from broker.integrations.jsonconfig import (
    JsonDocument,
    is_jsonc,
    read_json_document,
    replace_file,
    write_json_document,
)
from broker.integrations.textconfig import (
    CannotEdit,
    LineSyntax,
    Servers,
    TomlTables,
    YamlBlock,
    edit,
)

_BOM = "\ufeff"


@dataclass(frozen=True)
class ClientFile:
    """What was read: the servers (by name) and what is needed to write a new set back."""

    client: McpClient
    path: Path
    servers: Servers
    raw: bytes | None  # None: the file does not exist
    json: JsonDocument | None = None
    text: str = ""


def syntax_of(client: McpClient) -> LineSyntax:
    """How the client's file is edited line by line (a JSON file only when it has comments)."""
    if client.file_format == TOML:
        return TomlTables(client.servers_key)
    if client.file_format == JSON:
        return JsoncMembers(client.servers_key)
    return YamlBlock(client.servers_key, client.listed)


def read_client_file(client: McpClient, path: Path) -> ClientFile:
    """Read ``path`` in the client's format; :class:`ClientConfigError` when it cannot be."""
    if client.file_format == JSON:
        try:
            document = read_json_document(path)
        except ClientConfigError:
            # JSON with comments, where the client reads it: edited line by line instead.
            if not (client.jsonc and _has_comments(path)):
                raise
        else:
            servers = document.data.get(client.servers_key, {})
            if not isinstance(servers, dict):
                raise ClientConfigError(
                    f"{path}: {client.servers_key!r} is not a JSON object; left unchanged"
                )
            return ClientFile(client, path, servers, document.raw, json=document)
    try:
        raw: bytes | None = path.read_bytes()
    except FileNotFoundError:
        raw = None
    except OSError as exc:
        raise ClientConfigError(f"{path}: cannot be read ({exc.strerror})") from None
    text = client.new_file if raw is None else _decode(path, raw)
    syntax = syntax_of(client)
    try:
        servers = syntax.servers(syntax.parse(text))
    except ClientConfigError as exc:
        raise ClientConfigError(
            f"{path}: {exc}; it was left unchanged. Fix it or move it away, then run this again."
        ) from None
    except ValueError as exc:  # tomllib's errors
        raise ClientConfigError(
            f"{path}: is not valid {client.file_format.upper()} ({exc}); it was left unchanged. "
            "Fix it or move it away, then run this again."
        ) from None
    return ClientFile(client, path, servers, raw, text=text)


def write_client_file(current: ClientFile, servers: Servers) -> Path | None:
    """Replace the servers in the file with ``servers``; returns the backup's path."""
    client = current.client
    if current.json is not None:
        data = dict(current.json.data)
        data[client.servers_key] = servers
        return write_json_document(current.json, data)
    try:
        text = edit(syntax_of(client), current.text, current.servers, servers)
    except CannotEdit as exc:
        raise ClientConfigError(
            f"{current.path}: {exc}; it was left unchanged. Add the entry by hand (--print "
            "shows it) and run this again to check."
        ) from None
    bom = current.raw is not None and current.raw.startswith(_BOM.encode())
    return replace_file(current.path, current.raw, ((_BOM if bom else "") + text).encode())


def snippet(client: McpClient, servers: Servers) -> str:
    """``servers`` as a piece of the client's file, to paste into it."""
    if client.file_format == JSON:  # with or without comments: plain JSON pastes into both
        return json.dumps({client.servers_key: servers}, indent=2, ensure_ascii=False) + "\n"
    return syntax_of(client).snippet(servers)


def _has_comments(path: Path) -> bool:
    try:
        return is_jsonc(path.read_bytes().decode("utf-8").removeprefix(_BOM))
    except (OSError, UnicodeDecodeError):
        return False


def _decode(path: Path, raw: bytes) -> str:
    try:
        return raw.decode("utf-8").removeprefix(_BOM)
    except UnicodeDecodeError:
        raise ClientConfigError(f"{path}: is not UTF-8 text; left unchanged") from None
