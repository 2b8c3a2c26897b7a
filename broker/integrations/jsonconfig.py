"""Editing another program's JSON config file without damaging it.

- Read strictly (RFC 8259): a file that does not parse, repeats a key (a rewrite would drop one),
  uses NaN/Infinity, or is not an object is refused with :class:`ClientConfigError` and never
  written. JSON with comments or trailing commas (VS Code's JSONC) is recognised and refused with
  its own message: rewriting it would silently drop the user's comments.
- Write back in the file's own style: its indentation (or none, for a minified file), a byte
  order mark and final newline if it had them, key order as read, non-ASCII as is.
- A timestamped backup next to the file before every change, mode kept; the new content lands
  atomically (temp file + ``os.replace``) with the old file's mode (0600 for a new file), and only
  if nobody changed the file since it was read. A symlinked file is written through the link.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from broker.errors import ClientConfigError

_BOM = "\ufeff"


@dataclass(frozen=True)
class JsonDocument:
    path: Path
    data: dict[str, Any]
    raw: bytes | None  # None: the file did not exist
    indent: int | str | None = 2
    bom: bool = False
    final_newline: bool = True


def read_json_document(path: Path) -> JsonDocument:
    """Read ``path`` (a missing or blank file is an empty object)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return JsonDocument(path, {}, None)
    except OSError as exc:
        raise ClientConfigError(f"{path}: cannot be read ({exc.strerror})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ClientConfigError(f"{path}: is not UTF-8 text; left unchanged") from None
    bom = text.startswith(_BOM)
    text = text.removeprefix(_BOM)
    if not text.strip():
        return JsonDocument(path, {}, raw, bom=bom)
    data = _parse(path, text)
    return JsonDocument(path, data, raw, _indent_of(text), bom, text.endswith("\n"))


def render(document: JsonDocument, data: dict[str, Any]) -> bytes:
    text = json.dumps(data, indent=document.indent, ensure_ascii=False)
    if document.final_newline:
        text += "\n"
    return ((_BOM if document.bom else "") + text).encode("utf-8")


def write_json_document(document: JsonDocument, data: dict[str, Any]) -> Path | None:
    """Back up the file, then replace it with ``data``. Returns the backup's path (None for a
    new file). Refuses when the file changed since :func:`read_json_document`."""
    return replace_file(document.path, document.raw, render(document, data))


def replace_file(path: Path, raw: bytes | None, payload: bytes) -> Path | None:
    """Back up ``path`` (read as ``raw``; None: it did not exist), then replace it with
    ``payload``. Returns the backup's path. Refuses when the file changed since it was read."""
    document = JsonDocument(path, {}, raw)
    # Write through a symlink (dotfile managers link these files), never over it.
    target = Path(os.path.realpath(path))
    target.parent.mkdir(parents=True, exist_ok=True)
    backup = None
    if raw is not None:
        _refuse_if_changed(document)
        backup = _backup(target)
    mode = stat.S_IMODE(target.stat().st_mode) if raw is not None else 0o600
    _replace(target, payload, mode, lambda: _refuse_if_changed(document))
    return backup


def _parse(path: Path, text: str) -> dict[str, Any]:
    try:
        data = loads_strict(text)
    except json.JSONDecodeError as exc:
        if is_jsonc(text):
            raise ClientConfigError(
                f"{path}: has comments or trailing commas. The broker does not rewrite such a "
                "file, as that would drop them; it was left unchanged. Add the entry by hand "
                "(--print shows it) or remove the comments and run this again."
            ) from None
        raise ClientConfigError(
            f"{path}: is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); "
            "it was left unchanged. Fix it or move it away, then run this again."
        ) from None
    except ValueError as exc:
        raise ClientConfigError(f"{path}: {exc}; it was left unchanged") from None
    except RecursionError:
        raise ClientConfigError(f"{path}: nested too deeply; it was left unchanged") from None
    if not isinstance(data, dict):
        raise ClientConfigError(f"{path}: the top level is not a JSON object; left unchanged")
    return data


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"the key {key!r} appears twice in one object")
        result[key] = value
    return result


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_COMMENTS = re.compile(
    r'"(?:[^"\\]|\\.)*"'  # a string, kept as is
    r"|//[^\n]*"  # a line comment
    r"|/\*.*?\*/",  # a block comment
    re.DOTALL,
)
_TRAILING_COMMA = re.compile(r'"(?:[^"\\]|\\.)*"|,(?=\s*[\]}])')


def strip_jsonc(text: str) -> str:
    """``text`` without comments and trailing commas (JSON with comments, as VS Code reads it)."""
    return _TRAILING_COMMA.sub(_strings_only, _COMMENTS.sub(_strings_only, text))


def _strings_only(match: re.Match[str]) -> str:
    return match.group(0) if match.group(0)[0] == '"' else ""


def loads_strict(text: str) -> Any:
    """RFC 8259 JSON and nothing more: a repeated key or NaN/Infinity is a ValueError."""
    return json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_no_constants)


def is_jsonc(text: str) -> bool:
    """Whether ``text`` is JSON once comments and trailing commas are removed."""
    try:
        loads_strict(strip_jsonc(text))
    except (ValueError, RecursionError):
        return False
    return True


def _indent_of(text: str) -> int | str | None:
    match = re.search(r"\n([ \t]+)\S", text)
    if match is None:
        return None if "\n" not in text.strip() else 2
    unit = match.group(1)
    return "\t" if unit.startswith("\t") else len(unit)


def _refuse_if_changed(document: JsonDocument) -> None:
    try:
        current = document.path.read_bytes()
    except FileNotFoundError:
        current = None
    if current != document.raw:
        raise ClientConfigError(
            f"{document.path}: changed while the broker was editing it; nothing was written. "
            "Close the client and run this again."
        )


def _backup(path: Path) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    for counter in range(100):
        suffix = f".mcp-broker-{stamp}" + (f"-{counter}" if counter else "") + ".bak"
        backup = path.with_name(path.name + suffix)
        try:
            with backup.open("xb"):
                pass
        except FileExistsError:
            continue
        shutil.copy2(path, backup)  # keeps the mode: other entries may hold API keys
        return backup
    raise ClientConfigError(f"{path}: too many backups made this second; try again")


def _replace(path: Path, payload: bytes, mode: int, last_check: Callable[[], None]) -> None:
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(payload)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.chmod(tmp_name, mode)
        last_check()
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
