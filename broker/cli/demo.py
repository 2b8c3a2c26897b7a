"""``mcp-broker demo [--smoke]``: the whole chain on this machine, with no AWS account.

``mcp-broker demo`` starts the local Cognito-compatible authorization server and the protected demo
MCP server in this process (``demo_server.stack``), adds the MCP server to the broker's config
(client ``demo-broker``, the ``cognito`` profile), runs the broker (tray when a display is
available, headless otherwise) and opens the sign-in page in the browser. Ctrl-C stops it all.

``mcp-broker demo --smoke`` is the "does my machine work" check: the same stack on free ports, a
throw-away broker home (unless ``MCP_BROKER_HOME`` is set), sign-in without a browser (the local
authorization server's dev-only auto-login), a token from a headless broker's token API, ``whoami``
through the mcp SDK, sign-out; each step timed, exit 0 only if all of it worked.

The command is in three modules: this one (the options, and what both modes share),
``demo_interactive`` and ``demo_smoke``. They are the only modules of ``broker`` that import
``demo_server`` (DESIGN §2), and only when the command runs; the broker's heavier modules load only
then too, so other commands stay quick.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, TextIO

from broker.config import ServerConfig
from broker.errors import AlreadyRunning, BrokerError, ConfigError, InteractionRequired
from broker.paths import BrokerPaths

if TYPE_CHECKING:
    from broker.app import Broker
    from demo_server.stack import RunningStack, StackSettings

logger = logging.getLogger(__name__)

CLIENT_ID = "demo-broker"  # the public client the local authorization server seeds
DEMO_USER = "demo"
DEFAULT_PORT = 8000
DEFAULT_IDP_PORT = 9000
SMOKE_SIGN_IN_TIMEOUT = 30.0
BROKER_START_TIMEOUT = 30.0

DESCRIPTION = """\
Run the whole chain on this machine: the local Cognito-compatible authorization server
(http://127.0.0.1:9000/us-east-1_Demo00001), the protected demo MCP server
(http://127.0.0.1:8000/mcp) and the broker, configured for each other. The broker shows its tray
icon when a display is available and runs headless otherwise; the sign-in page opens in the
browser (or its address is printed, with the demo user's password). Ctrl-C stops everything.

With no OS keyring at all (Linux without a session D-Bus or Secret Service, e.g. over SSH), the
demo, and only the demo, runs a temporary unlocked gnome-keyring on a private D-Bus for its own
lifetime (it says so) and removes both when it stops; the broker itself never stores tokens in a
file.

--smoke runs the same chain non-interactively and exits 0 when it works: servers on free ports,
a throw-away broker home (unless MCP_BROKER_HOME is set), sign-in without a browser, a token
from a headless broker's token API, `whoami` through the mcp SDK, sign-out. Each step is timed.
The tokens go to the OS keyring (and are deleted at the end); --ephemeral keeps them in memory
instead, for machines without a keyring, and gets the token from the broker library.
"""


def configure_demo_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    parser = sub.add_parser(
        "demo",
        help="run the local authorization server, the demo MCP server and the broker together",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--smoke", action="store_true", help="non-interactive check: sign in, call whoami, exit")
    add("--port", type=_port, help=f"demo MCP server port (default {DEFAULT_PORT}; --smoke: free)")
    add("--idp-port", type=_port, help=f"authorization server port (default {DEFAULT_IDP_PORT})")
    add("--headless", action="store_true", help="no tray icon, even when a display is available")
    add("--access-token-ttl", type=_positive, default=3600, metavar="SECONDS", help="(3600)")
    add("--demo-password", help="the demo user's password (default: random, printed)")
    add("--auto-login", metavar="USER", help="DEV ONLY: skip the login form, sign in as USER")
    add("--ephemeral", action="store_true", help="with --smoke: tokens in memory, not the keyring")
    parser.set_defaults(run=run_demo, needs_broker=False)
    return parser


def run_demo(args: argparse.Namespace, broker: object, out: TextIO) -> int:
    if args.ephemeral and not args.smoke:
        print("mcp-broker demo: --ephemeral only goes with --smoke", file=sys.stderr)
        return 2
    if args.smoke:
        from broker.cli.demo_smoke import smoke

        return smoke(args, out)
    from broker.cli.demo_interactive import interactive

    return interactive(args, out)


# -- shared by the interactive demo and the smoke check -------------------------------------------


def _port(value: str) -> int:
    number = int(value)
    if not 0 < number < 65536:
        raise argparse.ArgumentTypeError("must be a port number between 1 and 65535")
    return number


def _positive(value: str) -> int:
    number = int(value)
    if number <= 0:
        raise argparse.ArgumentTypeError("must be a positive number of seconds")
    return number


def stack_settings(
    args: argparse.Namespace, port: int, idp_port: int, auto_login: str | None
) -> StackSettings:
    from demo_server.stack import StackSettings

    return StackSettings(
        idp_port=idp_port,
        port=port,
        access_token_ttl=args.access_token_ttl,
        auto_login=auto_login,
        demo_password=args.demo_password,
    )


@contextlib.contextmanager
def demo_stack(settings: StackSettings) -> Iterator[RunningStack]:
    """The two demo servers, with a port clash said plainly."""
    from demo_server.stack import running

    with contextlib.ExitStack() as servers:
        try:
            stack = servers.enter_context(running(settings))
        except OSError as exc:
            raise BrokerError(
                f"could not start the demo servers on ports {settings.idp_port} and "
                f"{settings.port} ({exc.strerror or exc}); choose others with --idp-port "
                "and --port"
            ) from None
        yield stack


def configure_broker(broker: Broker, url: str) -> None:
    """Point the broker at the demo server, forgetting an earlier demo's tokens: the local
    authorization server keeps its keys and refresh tokens in memory, so they died with it."""
    with contextlib.suppress(ConfigError):
        old = broker.server(url)
        with contextlib.suppress(InteractionRequired):
            broker.service.sign_out(broker.key_for(old))
    broker.add(ServerConfig(url, client_id=CLIENT_ID, provider="cognito"))


def other_broker(paths: BrokerPaths) -> str | None:
    """Who already runs as this user's broker, or None (the lock is taken and let go again)."""
    from broker.desktop.instance import hold_instance

    try:
        with hold_instance(paths):
            return None
    except AlreadyRunning as exc:
        return str(exc)
