"""``mcp-demo-server``: the local authorization server (``idp``), the protected MCP server
(``serve``), or both wired to each other (``stack``)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from demo_server import idp, resource, stack


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mcp-demo-server",
        description=(
            "Demo servers for mcp-oauth-broker: a Cognito-compatible local authorization server "
            "and an MCP server protected by it. Everything binds to 127.0.0.1."
        ),
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at debug level")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    idp.configure_parser(
        sub.add_parser(
            "idp",
            help="run the local Cognito-compatible authorization server",
            description=idp.__doc__,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
    )
    resource.configure_parser(
        sub.add_parser(
            "serve",
            help="run the protected demo MCP server",
            description=resource.__doc__,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
    )
    stack.configure_parser(
        sub.add_parser(
            "stack",
            help="run both, wired to each other",
            description=stack.__doc__,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
