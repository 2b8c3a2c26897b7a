"""``mcp-broker configure CLIENT``: put the broker's servers into an MCP client's config file.

The entry is merged into the client's own file (see :mod:`broker.integrations.clientconfigs` for
where and in which shape, :mod:`broker.integrations.clientfiles` for the formats): every other
server, every unknown key and the key order survive, a backup is made before each change,
running it twice changes nothing the second time, and a file that cannot be parsed is refused
untouched. ``--print`` shows the entry in the client's own format and writes nothing;
``--remove`` takes the broker's entries out again. ``--detect`` lists the clients this user has
and which of them already reach which servers through the broker; ``configure all`` configures
every one of them.

A server whose tokens are DPoP-bound (RFC 9449; :func:`broker.tokens.dpop.dpop_servers`) always
gets the bridge: the token API, and so a headers helper, refuses its tokens (only the broker's
own processes hold the key). Claude Code's default helper becomes the bridge for it, with a note;
an explicit ``--via helper`` for it is refused.

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
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from broker.config import config_path, load_config
from broker.errors import BrokerError, ClientConfigError, ConfigError
from broker.integrations.clientconfigs import (
    CLIENTS,
    CONNECT,
    HELPER,
    VIAS,
    Command,
    Entry,
    Environment,
    McpClient,
    default_entry_name,
    served_url,
)
from broker.integrations.clientfiles import (
    ClientFile,
    read_client_file,
    snippet,
    write_client_file,
)
from broker.integrations.executable import broker_command, carried_environment
from broker.oauth.resource import canonical_resource
from broker.paths import broker_paths

logger = logging.getLogger(__name__)

ALL = "all"


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


def with_entries(
    servers: Mapping[str, Any],
    wanted: Mapping[str, Callable[[str], Entry]],
    names: Mapping[str, str],
) -> tuple[dict[str, Any], list[str], list[str]]:
    """``servers`` with an entry per URL in ``wanted`` (built from the entry's name): the
    broker's existing entry for that URL is replaced where it stands, else one is added under
    ``names[url]``. Returns the new map and the names added and updated."""
    result = dict(servers)
    added: list[str] = []
    updated: list[str] = []
    for url, build in wanted.items():
        name = next((n for n, e in servers.items() if served_url(e) == url), None)
        if name is None:
            name = names[url]
            if name in result:
                raise ClientConfigError(
                    f"there is already a server named {name!r} that the broker did not write "
                    f"(or that is for another server); choose another name with --name"
                )
            added.append(name)
        entry = build(name)
        if name not in added and result[name] != entry:
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
    bridge_only: frozenset[str] = frozenset()
    """Servers whose tokens are DPoP-bound: they get the bridge, whatever ``via`` says."""

    def via_for(self, url: str) -> str:
        return CONNECT if url in self.bridge_only else self.via


def configure_client(
    request: Request,
    environ: Mapping[str, str] | None = None,
    platform: str = sys.platform,
    command: Sequence[str] | None = None,
    dry_run: bool = False,
) -> tuple[Change, dict[str, Entry]]:
    """Apply ``request`` to the client's file. Returns what changed and the entries wanted,
    by name."""
    env = Environment(os.environ if environ is None else environ, platform)
    client = request.client
    path = request.file or client.locate(env)
    current = _read(client, path, dry_run and not request.remove)
    wanted: dict[str, Entry] = {}
    if request.remove:
        new_servers, removed = without_entries(current.servers, request.urls)
        change = Change(path, removed=tuple(removed))
    else:
        run = Command(
            list(command) if command is not None else broker_command(),
            carried_environment(env.environ),
            platform,
        )
        urls = request.urls or ()
        builders = {url: _builder(client, url, request.via_for(url), run) for url in urls}
        names = {url: request.name or default_entry_name(url) for url in urls}
        new_servers, added, updated = with_entries(current.servers, builders, names)
        wanted = {n: e for n, e in new_servers.items() if served_url(e) in urls}
        change = Change(path, added=tuple(added), updated=tuple(updated))
    if not change.changed or dry_run:
        return change, wanted
    backup = write_client_file(current, new_servers)
    return Change(path, change.added, change.updated, change.removed, backup), wanted


def _builder(client: McpClient, url: str, via: str, run: Command) -> Callable[[str], Entry]:
    return lambda name: client.entry(name, url, via, run)


def _read(client: McpClient, path: Path, forgiving: bool) -> ClientFile:
    try:
        return read_client_file(client, path)
    except ClientConfigError as exc:
        if not forgiving:
            raise
        print(f"mcp-broker: note: {exc}", file=sys.stderr)  # --print still shows the entry
        return ClientFile(client, path, {}, None)


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


# -- which clients this user has --------------------------------------------------------------


@dataclass(frozen=True)
class Detected:
    """One client this user has: its file, and the servers its broker entries reach (or why
    the file cannot be read)."""

    client: McpClient
    path: Path
    urls: tuple[str, ...] = ()
    problem: str | None = None


def detect_clients(
    environ: Mapping[str, str] | None = None, platform: str = sys.platform
) -> list[Detected]:
    """The clients installed for this user, in the order of :data:`CLIENTS`."""
    env = Environment(os.environ if environ is None else environ, platform)
    found = []
    for client in CLIENTS.values():
        if not client.installed(env):
            continue
        path = client.locate(env)
        try:
            servers = read_client_file(client, path).servers
        except ClientConfigError as exc:
            found.append(Detected(client, path, problem=str(exc)))
            continue
        urls = tuple(u for e in servers.values() if (u := served_url(e)) is not None)
        found.append(Detected(client, path, urls))
    return found


def connect_client(name: str, urls: Sequence[str], bridge_only: Collection[str] = ()) -> Change:
    """Configure client ``name`` for ``urls`` with its default way in, the bridge for the
    DPoP-bound servers in ``bridge_only`` (the tray's "Connect a client…")."""
    client = CLIENTS[name]
    request = Request(client, tuple(urls), client.default_via, bridge_only=frozenset(bridge_only))
    change, _ = configure_client(request)
    return change


# -- DPoP-bound servers -------------------------------------------------------------------------


def bridge_only_servers(
    args: argparse.Namespace, broker: Any, urls: tuple[str, ...] | None
) -> frozenset[str]:
    """Which of ``urls`` have DPoP-bound tokens (or will at the next sign-in): the broker's
    answer (``broker.get()``: it built lazily, so only a command that would write a headers
    helper opens the keyring), else what the config file and the kept authorization server
    metadata say without the stored tokens."""
    from broker.tokens.auth_servers import AuthServerCache
    from broker.tokens.dpop import dpop_servers

    if not urls:
        return frozenset()
    found: frozenset[str] | None = None
    if broker is not None:
        try:
            found = broker.get().dpop_servers()
        except BrokerError as exc:
            logger.info("the stored tokens cannot be read to look for DPoP-bound ones: %s", exc)
    if found is None:
        cache = AuthServerCache(broker_paths().state_dir)
        found = dpop_servers(_config(args).servers, cache, lambda _server: False)
    return found & frozenset(urls)


def _refuse_helper(client: McpClient, bridge_only: frozenset[str], several: bool) -> None:
    url = sorted(bridge_only)[0]
    others = " (or name the other servers with --server URL)" if several else ""
    raise ConfigError(
        f"{url} has DPoP-bound tokens (RFC 9449): a headers helper cannot use them, since the "
        f"token API never hands out the broker's key and refuses them (dpop_bound). Connect "
        f"{client.title} to it through the bridge: leave out --via helper, or use --via "
        f"connect{others}"
    )


def _note_bridge(client: McpClient, bridge_only: frozenset[str]) -> None:
    for url in sorted(bridge_only):
        print(
            f"mcp-broker: note: {client.title} gets the bridge (mcp-broker connect) for {url}, "
            "not a headers helper: its tokens are DPoP-bound, which the token API refuses",
            file=sys.stderr,
        )


def run_configure(args: argparse.Namespace, broker: Any = None, out: TextIO | None = None) -> int:
    """``mcp-broker configure``. ``broker`` (``get()`` builds it) is only asked, for Claude
    Code's headers helper, whether a server's stored tokens are DPoP-bound; without one (or a
    keyring) the config file and the kept metadata decide (:func:`bridge_only_servers`)."""
    out = out or sys.stdout
    if args.detect:
        return _print_detected(detect_clients(), out)
    if args.client is None:
        raise ConfigError("name a client (or all), or use --detect; see mcp-broker configure -h")
    if args.client == ALL:
        return _configure_all(args, broker, out)
    client = CLIENTS[args.client]
    via = args.via or client.default_via
    if via not in client.vias:
        raise ConfigError(f"{client.title} can only be configured --via {client.default_via}")
    urls = configured_urls(args)
    bridge_only: frozenset[str] = frozenset()
    if via != CONNECT and not args.remove:
        bridge_only = bridge_only_servers(args, broker, urls)
        if bridge_only and args.via == HELPER:
            _refuse_helper(client, bridge_only, len(urls or ()) > 1)
    _configure_one(client, via, args, urls, out, bridge_only)
    return 0


def _configure_one(
    client: McpClient,
    via: str,
    args: argparse.Namespace,
    urls: tuple[str, ...] | None,
    out: TextIO,
    bridge_only: frozenset[str] = frozenset(),
) -> None:
    file = Path(args.file).expanduser() if getattr(args, "file", None) else None
    if via == CONNECT or args.remove:
        bridge_only = frozenset()  # nothing to change: every entry is the bridge, or goes
    request = Request(client, urls, via, args.name, args.remove, file, bridge_only)
    _note_bridge(client, bridge_only)
    change, wanted = configure_client(request, dry_run=args.print)
    if args.print:
        _print_entries(client, change, wanted, request, out)
    else:
        _report(client, change, out)


def _configure_all(args: argparse.Namespace, broker: Any, out: TextIO) -> int:
    if args.file:
        raise ConfigError("--file names one client's file; it cannot be used with all")
    detected = detect_clients()
    if not detected:
        print("No MCP client found for this user; name one: mcp-broker configure CLIENT", file=out)
        return 1
    urls = configured_urls(args)
    vias = {}
    for found in detected:
        client = found.client
        vias[client.name] = args.via if args.via in client.vias else client.default_via
    bridge_only: frozenset[str] = frozenset()
    if not args.remove and any(via != CONNECT for via in vias.values()):
        bridge_only = bridge_only_servers(args, broker, urls)
        if bridge_only and args.via == HELPER:
            helped = next(d.client for d in detected if vias[d.client.name] == HELPER)
            _refuse_helper(helped, bridge_only, len(urls or ()) > 1)
    failed = 0
    for found in detected:
        client = found.client
        via = vias[client.name]
        try:
            _configure_one(client, via, args, urls, out, bridge_only)
        except ClientConfigError as exc:
            failed += 1
            print(f"{client.title}: not changed: {exc}", file=out)
    return 1 if failed else 0


def _print_detected(detected: Sequence[Detected], out: TextIO) -> int:
    if not detected:
        print("No MCP client found for this user.", file=out)
        return 0
    width = max(len(d.client.name) for d in detected)
    for found in detected:
        if found.problem is not None:
            state = f"cannot read its file: {found.problem}"
        elif found.urls:
            state = "broker entries for " + ", ".join(found.urls)
        else:
            state = "no broker entries"
        print(f"{found.client.name:<{width}}  {found.path}  {state}", file=out)
    return 0


def _print_entries(
    client: McpClient, change: Change, wanted: Mapping[str, Entry], request: Request, out: TextIO
) -> None:
    if request.remove:
        removed = ", ".join(change.removed) or "nothing"
        print(f"Would remove from {change.path}: {removed}", file=out)
        return
    print(f"# {client.title}: merge into {change.path}", file=sys.stderr)
    out.write(snippet(client, dict(wanted)))
    if client.name == "claude-code":  # its own CLI edits ~/.claude.json safely while it runs
        for name, entry in wanted.items():
            line = shlex.join(
                ["claude", "mcp", "add-json", "--scope", "user", name, json.dumps(entry)]
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


def _client_lines() -> str:
    home = Environment({"HOME": "~", "XDG_CONFIG_HOME": "~/.config"}, "linux")
    width = max(len(name) for name in CLIENTS)
    lines = []
    for client in CLIENTS.values():
        where = str(client.locate(home))
        lines.append(f"  {client.name:<{width}}  {client.title}: {where}")
    return "\n".join(lines)


CONFIGURE_DESCRIPTION = f"""\
Add the broker's servers to an MCP client's own config file (or remove them with --remove).
Other servers and settings in that file are kept; a backup is written next to it first; a file
that cannot be parsed is left untouched. Comments survive: TOML, YAML and JSON-with-comments
files (VS Code, Zed, Gemini CLI, opencode) are edited line by line; a JSON file with comments
for a client that reads plain JSON only is left alone (--print shows the entry to paste).

Each entry runs `mcp-broker connect URL` (the stdio bridge), by the absolute path of this
mcp-broker so GUI apps find it. Claude Code defaults to Streamable HTTP with a headersHelper
that runs `mcp-broker headers URL` (--via connect for the bridge instead), except for a server
whose tokens are DPoP-bound: only the bridge can use those (--via helper is refused for it).

Clients and their files (Linux paths; macOS and Windows use each client's own folders there):
{_client_lines()}

  mcp-broker configure --detect   which clients are installed, which already have entries
  mcp-broker configure all        every detected client
"""


def configure_configure_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "configure",
        help="add the broker's servers to an MCP client (Claude, Cursor, VS Code, Codex, …)",
        description=CONFIGURE_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "client",
        nargs="?",
        choices=[*CLIENTS, ALL],
        metavar="CLIENT",
        help=f"one of: {', '.join(CLIENTS)}; or all (every detected client)",
    )
    parser.add_argument(
        "--detect",
        action="store_true",
        help="list the clients installed for this user and the servers they reach through the "
        "broker; change nothing",
    )
    parser.add_argument(
        "--server", metavar="URL", help="only this server (default: every configured server)"
    )
    parser.add_argument(
        "--remove", action="store_true", help="remove the broker's entries instead of adding them"
    )
    parser.add_argument(
        "--print",
        action="store_true",
        help="print the entries in the client's own format (JSON, TOML or YAML) and write nothing",
    )
    parser.add_argument(
        "--via",
        choices=VIAS,
        help="connect: stdio bridge; helper: the client's header helper "
        "(claude-code only; its default, but not for a server with DPoP-bound tokens)",
    )
    parser.add_argument("--name", help="the entry's name in the client (default: from the URL)")
    parser.add_argument(
        "--file",
        metavar="PATH",
        help="edit this file instead of the client's usual one (e.g. a VS Code profile's mcp.json)",
    )
    # The broker is built only if asked (whether stored tokens are DPoP-bound): --detect,
    # --remove and the bridge-only clients never open the keyring.
    parser.set_defaults(run=run_configure, needs_broker="lazy")
    return parser
