"""``mcp-broker token URL`` and ``mcp-broker headers URL``: the per-use helpers, started cheaply.

Claude Code runs ``headers`` for every connection and scripts call ``token`` in loops, so their
start-up is most of their cost. :func:`broker.cli.main` builds only this module's parser for
them (not the full one, whose commands import the keyring, OAuth, config-file and bridge code),
and a token is taken where it is cheapest:

1. from the running broker's token API, as its default client (:func:`broker.api.endpoint.
   request_token`: ``endpoint.json`` checked, the listener's ``/v1/hello`` proof verified before
   the secret is sent, over the standard library's ``http.client``). The broker answers with
   the same token service and the same error messages; ``--config`` skips this step, since the
   running broker serves its own configuration;
2. else (no broker running, or its ``endpoint.json`` is stale) from the broker library, which
   reads the keyring and refreshes as needed.

Either way the output, error messages and exit codes are the same: the library's errors are
raised as the API would answer them (:func:`broker.errors.as_answered`), so a refused refresh
exits 4 and a locked keyring 5 on both paths (:data:`HELPER_EXIT_CODES`).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TextIO

from broker import __version__
from broker.errors import BrokerError, as_answered

logger = logging.getLogger(__name__)

HELPER_COMMANDS = ("token", "headers")
DESCRIPTION = (
    "Sign in once per OAuth-protected MCP server, keep the tokens in the OS keyring, "
    "and hand a current access token to local MCP clients."
)
EPILOG = """\
exit codes: 0 ok, 1 failure, 2 usage, 3 bad configuration, 4 sign-in required,
5 cannot answer now (a server, the keyring or the broker; retry later), 6 a broker
already runs. MCP_BROKER_HOME=<dir> keeps config, state and locks in <dir>.
"""
HELPER_EXIT_CODES = (
    "Exit codes, the same whether the running broker or the keyring answered: 0 printed, 3 the "
    "server is not configured (or the config is bad, or its tokens are DPoP-bound: only the "
    "bridge, mcp-broker connect URL, can use them), 4 sign in first (never signed in, or the "
    "sign-in was refused at refresh), 5 cannot answer now: the authorization server, the keyring "
    "or the broker is unreachable, locked or busy (retry later), 1 anything else."
)


class AccessToken(Protocol):
    @property
    def access_token(self) -> str: ...


def top_parser() -> argparse.ArgumentParser:
    """``mcp-broker`` and the options every command takes (``-v``, ``--config``, ``--version``)."""
    parser = argparse.ArgumentParser(
        prog="mcp-broker",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="log more (-v info, -vv debug)"
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="config file (default: $MCP_BROKER_CONFIG, else config.toml in the broker's dir)",
    )
    return parser


def helper_parser() -> argparse.ArgumentParser:
    """The parser for a helper command line: the global options and the two helpers only."""
    parser = top_parser()
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    configure_token_parser(sub)
    configure_headers_parser(sub)
    return parser


def is_helper_command(argv: Sequence[str]) -> bool:
    """Whether ``argv`` runs ``token`` or ``headers`` (after any global options)."""
    args = iter(argv)
    for arg in args:
        if arg == "--config":
            next(args, None)
        elif arg.startswith("--config=") or arg in ("--verbose",) or _is_short_verbose(arg):
            continue
        else:
            return arg in HELPER_COMMANDS
    return False


def _is_short_verbose(arg: str) -> bool:
    return len(arg) > 1 and arg[0] == "-" and set(arg[1:]) == {"v"}


def configure_token_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    description = (
        "Prints a current access token for the server on stdout and nothing else, refreshing "
        "it first when needed. " + HELPER_EXIT_CODES
    )
    parser = subparsers.add_parser(
        "token",
        help="print a current access token (only the token) for scripts and header helpers",
        description=description,
    )
    parser.add_argument("url", metavar="URL", help="the MCP server URL, as added")
    parser.add_argument(
        "--min-valid",
        type=float,
        metavar="SECONDS",
        help="the token must stay valid at least this long (default 60; capped at a tenth of "
        "the token's lifetime, and at a 5%% margin while the authorization server is slow)",
    )
    parser.set_defaults(run=run_token, needs_broker="on_demand")
    return parser


def configure_headers_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "headers",
        help="print an Authorization header as JSON (for Claude Code's headersHelper)",
        description=(
            'Prints {"Authorization": "Bearer <access token>"} for the server and nothing '
            "else, refreshing the token first when needed. `mcp-broker configure claude-code` "
            "writes this as the server's headersHelper. " + HELPER_EXIT_CODES
        ),
    )
    parser.add_argument("url", metavar="URL", help="the MCP server URL, as added")
    parser.add_argument(
        "--min-valid",
        type=float,
        metavar="SECONDS",
        help="the token must stay valid at least this long",
    )
    parser.set_defaults(run=run_headers, needs_broker="on_demand")
    return parser


def run_token(args: argparse.Namespace, broker: Any, out: TextIO | None = None) -> int:
    tokens = broker.token(args.url, args.min_valid)
    print(tokens.access_token, file=out or sys.stdout)  # the one place a token is printed
    return 0


def run_headers(args: argparse.Namespace, broker: Any, out: TextIO | None = None) -> int:
    """Print the header object; like ``mcp-broker token``, a token is printed on purpose."""
    tokens = broker.token(args.url, args.min_valid)
    print(json.dumps({"Authorization": f"Bearer {tokens.access_token}"}), file=out or sys.stdout)
    return 0


class HelperTokens:
    """What the helpers ask for a token: the running broker's API, else the broker library
    (opened only then, with ``open_library``). ``use_api=False`` goes to the library at once."""

    def __init__(self, open_library: Callable[[], Any], *, use_api: bool = True) -> None:
        self._open_library = open_library
        self._use_api = use_api
        self._library: Any = None

    def token(self, url: str, min_valid: float | None = None) -> AccessToken:
        if self._use_api:
            from broker.api.endpoint import request_token
            from broker.errors import BrokerNotRunning

            try:
                return request_token(url, min_valid=min_valid)
            except BrokerNotRunning as exc:
                logger.info("no running broker answers (%s); using the broker library", exc)
        try:
            if self._library is None:
                self._library = self._open_library()
            from broker.tokens.dpop import refuse_bound

            tokens: AccessToken = refuse_bound(self._library.token(url, min_valid))
        except BrokerError as exc:
            raise as_answered(exc) from exc  # the class (and exit code) the API would give
        return tokens

    def close(self) -> None:
        if self._library is not None:
            self._library.close()
