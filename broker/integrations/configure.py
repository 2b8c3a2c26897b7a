"""``mcp-broker configure CLIENT``: put the broker's servers into an MCP client's config file.

The entry is merged into the client's own file (see :mod:`broker.integrations.clientconfigs` for
where and in which shape): every other server, every unknown key and the key order survive, a backup
is made before each change, running it twice changes nothing the second time, and a file that cannot
be parsed is refused untouched (:mod:`broker.integrations.jsonconfig`). ``--print`` shows the entry
and writes nothing; ``--remove`` takes the broker's entries out again.

An entry is the broker's when it runs ``mcp-broker connect URL`` or ``mcp-broker headers URL``;
the broker finds it by that, whatever it is called, and never changes or removes an entry it did
not write: a name already used by another server is refused (choose one with ``--name``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from broker.config import config_path, load_config
from broker.errors import ClientConfigError, ConfigError
from broker.integrations.clientconfigs import (
    CLIENTS,
    VIAS,
    Entry,
    Environment,
    McpClient,
    default_entry_name,
    served_url,
)
from broker.integrations.executable import broker_command, carried_environment
from broker.integrations.jsonconfig import JsonDocument, read_json_document, write_json_document
from broker.oauth.resource import canonical_resource
from broker.paths import broker_paths

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Change:
    """What one run did (or, with ``--print``, would do) to one client file."""

    path: Path
    added: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    backup: Path | None = None

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed)


# -- the document model (no I/O) ------------------------------------------------------------


def servers_of(data: Mapping[str, Any], client: McpClient, path: Path) -> dict[str, Any]:
    servers = data.get(client.servers_key, {})
    if not isinstance(servers, dict):
        raise ClientConfigError(
            f"{path}: {client.servers_key!r} is not a JSON object; left unchanged"
        )
    return servers


def with_entries(
    servers: Mapping[str, Any], wanted: Mapping[str, Entry], names: Mapping[str, str]
) -> tuple[dict[str, Any], list[str], list[str]]:
    """``servers`` with an entry per URL in ``wanted``: the broker's existing entry for that URL
    is replaced where it stands, else one is added under ``names[url]``. Returns the new map and
    the names added and updated."""
    result = dict(servers)
    added: list[str] = []
    updated: list[str] = []
    for url, entry in wanted.items():
        name = next((n for n, e in servers.items() if served_url(e) == url), None)
        if name is None:
            name = names[url]
            if name in result:
                raise ClientConfigError(
                    f"there is already a server named {name!r} that the broker did not write "
                    f"(or that is for another server); choose another name with --name"
                )
            added.append(name)
        elif result[name] != entry:
            updated.append(name)
        result[name] = entry
    return result, added, updated


def without_entries(
    servers: Mapping[str, Any], urls: Sequence[str] | None
) -> tuple[dict[str, Any], list[str]]:
    """``servers`` without the broker's entries for ``urls`` (None: for every server)."""
    removed = [
        name
        for name, entry in servers.items()
        if (url := served_url(entry)) is not None and (urls is None or url in urls)
    ]
    return {n: e for n, e in servers.items() if n not in removed}, removed


# -- the command ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    client: McpClient
    urls: tuple[str, ...] | None  # None with remove: every broker entry
    via: str
    name: str | None = None
    remove: bool = False
    file: Path | None = None


def configure_client(
    request: Request,
    environ: Mapping[str, str] | None = None,
    platform: str = sys.platform,
    command: Sequence[str] | None = None,
    dry_run: bool = False,
) -> tuple[Change, dict[str, Entry]]:
    """Apply ``request`` to the client's file. Returns what changed and the entries wanted."""
    env = Environment(os.environ if environ is None else environ, platform)
    client = request.client
    path = request.file or client.locate(env)
    try:
        document = read_json_document(path)
    except ClientConfigError as exc:
        if not dry_run or request.remove:
            raise
        print(f"mcp-broker: note: {exc}", file=sys.stderr)  # --print still shows the entry
        document = JsonDocument(path, {}, None)
    servers = servers_of(document.data, client, path)
    wanted: dict[str, Entry] = {}
    if request.remove:
        new_servers, removed = without_entries(servers, request.urls)
        change = Change(path, removed=tuple(removed))
    else:
        argv = list(command) if command is not None else broker_command()
        carried = carried_environment(env.environ)
        urls = request.urls or ()
        wanted = {url: client.entry(url, request.via, argv, carried, platform) for url in urls}
        names = {url: request.name or default_entry_name(url) for url in urls}
        new_servers, added, updated = with_entries(servers, wanted, names)
        change = Change(path, added=tuple(added), updated=tuple(updated))
    if not change.changed or dry_run:
        return change, wanted
    data = dict(document.data)
    data[client.servers_key] = new_servers
    backup = write_json_document(document, data)
    return Change(path, change.added, change.updated, change.removed, backup), wanted


def configured_urls(args: argparse.Namespace) -> tuple[str, ...] | None:
    """The servers to act on: ``--server`` (which must be configured unless removing), else
    every configured server (every broker entry when removing)."""
    if args.server is not None:
        url = canonical_resource(args.server)
        if not args.remove and _config(args).get_server(url) is None:
            raise ConfigError(f"{url} is not configured; add it first: mcp-broker add {url}")
        return (url,)
    if args.remove:
        return None
    servers = tuple(s.url for s in _config(args).servers)
    if not servers:
        raise ConfigError("no servers are configured; add one first: mcp-broker add URL")
    if args.name and len(servers) > 1:
        raise ConfigError("--name needs --server when several servers are configured")
    return servers


def _config(args: argparse.Namespace) -> Any:
    return load_config(config_path(broker_paths(), getattr(args, "config", None)))


def run_configure(
    args: argparse.Namespace, broker: object = None, out: TextIO | None = None
) -> int:
    """``mcp-broker configure`` (``broker`` is unused: nothing here needs the token store)."""
    out = out or sys.stdout
    client = CLIENTS[args.client]
    via = args.via or client.default_via
    if via not in client.vias:
        raise ConfigError(f"{client.title} can only be configured --via {client.default_via}")
    request = Request(
        client,
        configured_urls(args),
        via,
        args.name,
        args.remove,
        Path(args.file).expanduser() if args.file else None,
    )
    change, wanted = configure_client(request, dry_run=args.print)
    if args.print:
        _print_entries(client, change, wanted, request, out)
    else:
        _report(client, change, out)
    return 0


def _print_entries(
    client: McpClient, change: Change, wanted: Mapping[str, Entry], request: Request, out: TextIO
) -> None:
    if request.remove:
        removed = ", ".join(change.removed) or "nothing"
        print(f"Would remove from {change.path}: {removed}", file=out)
        return
    names = {url: request.name or default_entry_name(url) for url in wanted}
    snippet = {client.servers_key: {names[url]: entry for url, entry in wanted.items()}}
    print(f"# {client.title}: merge into {change.path}", file=sys.stderr)
    print(json.dumps(snippet, indent=2), file=out)
    if client.name == "claude-code":  # its own CLI edits ~/.claude.json safely while it runs
        for url, entry in wanted.items():
            line = shlex.join(
                ["claude", "mcp", "add-json", "--scope", "user", names[url], json.dumps(entry)]
            )
            print(f"# or: {line}", file=sys.stderr)


def _report(client: McpClient, change: Change, out: TextIO) -> None:
    if not change.changed:
        print(f"{client.title}: {change.path} is already up to date.", file=out)
        return
    for verb, names in (
        ("added", change.added),
        ("updated", change.updated),
        ("removed", change.removed),
    ):
        if names:
            print(f"{client.title}: {verb} {', '.join(names)} in {change.path}", file=out)
    if change.backup is not None:
        print(f"Backup of the previous file: {change.backup}", file=out)
    print(f"Restart {client.title} to pick up the change.", file=out)


# -- argparse wiring --------------------------------------------------------------------------

CONFIGURE_DESCRIPTION = """\
Add the broker's servers to an MCP client's own config file (or remove them with --remove).
Other servers and settings in that file are kept; a backup is written next to it first; a file
that is not valid JSON (or has comments) is left untouched.

  claude-desktop  claude_desktop_config.json, stdio: runs `mcp-broker connect URL`
  claude-code     ~/.claude.json (user scope): Streamable HTTP with a headersHelper that runs
                  `mcp-broker headers URL`; --via connect uses the stdio bridge instead
                  (better when sessions outlive access tokens)
  cursor          ~/.cursor/mcp.json, stdio: runs `mcp-broker connect URL`
  vscode          Code/User/mcp.json ("servers"), stdio: runs `mcp-broker connect URL`

The command written is the absolute path of this mcp-broker, so GUI apps find it.
"""


def configure_configure_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "configure",
        help="add the broker's servers to Claude Desktop, Claude Code, Cursor or VS Code",
        description=CONFIGURE_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "client",
        choices=sorted(CLIENTS),
        metavar="CLIENT",
        help=f"one of: {', '.join(sorted(CLIENTS))}",
    )
    parser.add_argument(
        "--server", metavar="URL", help="only this server (default: every configured server)"
    )
    parser.add_argument(
        "--remove", action="store_true", help="remove the broker's entries instead of adding them"
    )
    parser.add_argument(
        "--print", action="store_true", help="print the entries as JSON and write nothing"
    )
    parser.add_argument(
        "--via",
        choices=VIAS,
        help="connect: stdio bridge; helper: the client's header helper "
        "(claude-code only; its default)",
    )
    parser.add_argument("--name", help="the entry's name in the client (default: from the URL)")
    parser.add_argument(
        "--file",
        metavar="PATH",
        help="edit this file instead of the client's usual one (e.g. a VS Code profile's mcp.json)",
    )
    parser.set_defaults(run=run_configure, needs_broker=False)
    return parser
