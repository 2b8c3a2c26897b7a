"""``mcp-broker open``: the control page in the browser.

The running broker makes the launch link (``POST /v1/ui/launch`` with the default client's
secret from ``endpoint.json``, after the listener proved it knows that secret) and writes it
into a private file; this command hands the browser that file (``BROWSER`` chooses the browser,
as for sign-ins). The link works once, within a minute.
"""

from __future__ import annotations

import argparse
import sys
import webbrowser
from typing import Any, TextIO

from broker.errors import BrokerError

PAGES = ("servers", "add", "clients", "connect", "settings")
_LANDINGS = {
    "servers": "/ui/servers",
    "add": "/ui/servers/add",
    "clients": "/ui/clients",
    "connect": "/ui/connect",
    "settings": "/ui/settings",
}

DESCRIPTION = """\
Open the broker's control page in the browser: the servers (add one by URL with a preview of
what discovery finds, sign in and out, remove), the token API's named clients (create, allow,
remove, answer consent requests, read the audit log), connecting an MCP client, and settings.

The page is served by the running broker (start it with: mcp-broker) on 127.0.0.1, and opens
only through a single-use link that this command asks the broker for; the link opens a session
in the browser it is opened in. BROWSER chooses the browser, as for sign-ins.
"""


def configure_open_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "open",
        help="open the control page in the browser (servers, clients, connect, settings)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "page",
        nargs="?",
        choices=PAGES,
        default="servers",
        metavar="PAGE",
        help=f"the page to open: {', '.join(PAGES)} (default servers)",
    )
    parser.set_defaults(run=run_open, needs_broker=False)
    return parser


def run_open(args: argparse.Namespace, broker: Any = None, out: TextIO | None = None) -> int:
    from broker.api.endpoint import control_page_file

    file_url = control_page_file(page=_LANDINGS[args.page])
    if not webbrowser.open(file_url):
        raise BrokerError(
            "no browser could be started; set BROWSER to one, or open the page from the tray"
        )
    print("Opened the control page in the browser.", file=out or sys.stdout)
    return 0
