"""``mcp-broker clients ...``: named clients of the local token API, and its audit log.

    mcp-broker clients add NAME [--resource URL ...]   create a client; prints its secret once
    mcp-broker clients list                            names, scopes, allowed servers
    mcp-broker clients remove NAME                     its secret stops working at once
    mcp-broker clients allow NAME URL                  "always allow" NAME tokens for URL
    mcp-broker clients log [--limit N] [--json]        who got a token for which server, when

The lead wires :func:`configure_clients_parser` into ``broker/cli/__init__.py``; each command is a
``run(args, broker, out) -> exit code`` like the others there, and needs no keyring.
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any, TextIO

from broker.api.audit import read_audit_log
from broker.api.clients import ClientsFile
from broker.paths import BrokerPaths, broker_paths
from broker.safetext import safe_text

if TYPE_CHECKING:
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]


DESCRIPTION = """\
Named clients of the local token API (DESIGN §3). Each has its own secret, shown once by
`add` (only its hash is stored), and optionally a list of servers it is limited to. A client
without --resource may ask for any configured server; the first time it asks for one, the tray
asks you (allow once / always / deny). Without the tray the request is refused with
`consent_required` and the broker logs the command that allows it: clients allow NAME URL.
The default client (secret in endpoint.json) is yours and may ask for any server.
"""


def configure_clients_parser(subparsers: Subparsers) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "clients",
        help="manage named clients of the local token API and read its audit log",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="clients_command", metavar="ACTION", required=True)
    add = sub.add_parser("add", help="create a client and print its secret (shown only once)")
    add.add_argument("name", metavar="NAME")
    add.add_argument(
        "--resource",
        action="append",
        metavar="URL",
        help="limit the client to this MCP server (repeatable); these count as allowed",
    )
    add.set_defaults(run=_add)
    sub.add_parser("list", help="list clients, their scopes and allowed servers").set_defaults(
        run=_list
    )
    remove = sub.add_parser("remove", help="delete a client; its secret stops working")
    remove.add_argument("name", metavar="NAME")
    remove.set_defaults(run=_remove)
    allow = sub.add_parser("allow", help="always allow a client tokens for a server")
    allow.add_argument("name", metavar="NAME")
    allow.add_argument("url", metavar="URL")
    allow.set_defaults(run=_allow)
    log = sub.add_parser("log", help="show which client got a token for which server, when")
    log.add_argument("--limit", type=int, default=50, metavar="N", help="last N entries (50)")
    log.add_argument("--json", action="store_true", help="print the JSON lines as stored")
    log.set_defaults(run=_log)
    return parser


def _paths(broker: Any) -> BrokerPaths:
    paths = getattr(broker, "paths", None)
    return paths if isinstance(paths, BrokerPaths) else broker_paths()


def _file(broker: Any) -> ClientsFile:
    paths = _paths(broker)
    return ClientsFile(paths.state_dir, paths.lock_dir)


def _add(args: argparse.Namespace, broker: Any, out: TextIO) -> int:
    secret = _file(broker).add(args.name, args.resource)
    print(f"Created API client {args.name}. Its secret, shown only now:\n\n  {secret}\n", file=out)
    print("Send it as `Authorization: Bearer <secret>` to POST /v1/token.", file=out)
    return 0


def _list(args: argparse.Namespace, broker: Any, out: TextIO) -> int:
    clients = _file(broker).load()
    if not clients:
        print("No named clients. Add one with: mcp-broker clients add NAME", file=out)
        return 0
    for client in sorted(clients.values(), key=lambda c: c.name):
        scope = (
            "any server (asks first)" if client.resources is None else " ".join(client.resources)
        )
        allowed = " ".join(sorted(client.allowed)) or "-"
        print(f"{client.name}\tscope: {scope}\tallowed: {allowed}", file=out)
    return 0


def _remove(args: argparse.Namespace, broker: Any, out: TextIO) -> int:
    if _file(broker).remove(args.name):
        print(f"Removed API client {args.name}.", file=out)
        return 0
    print(f"No API client named {args.name}.", file=out)
    return 1


def _allow(args: argparse.Namespace, broker: Any, out: TextIO) -> int:
    _file(broker).allow(args.name, args.url)
    print(f"API client {args.name} may now get tokens for {args.url}.", file=out)
    return 0


def _log(args: argparse.Namespace, broker: Any, out: TextIO) -> int:
    entries = list(read_audit_log(_paths(broker).audit_log))[-max(0, args.limit) :]
    for entry in entries:
        if args.json:
            print(json.dumps(entry), file=out)
            continue
        count = entry.get("count", 1)
        times = f" (x{count})" if isinstance(count, int) and count > 1 else ""
        fields = (
            entry.get("time"),
            entry.get("client"),
            entry.get("outcome"),
            entry.get("resource"),
        )
        print("\t".join(safe_text(str(f)) for f in fields) + times, file=out)
    if not entries:
        print("The audit log is empty.", file=out)
    return 0
