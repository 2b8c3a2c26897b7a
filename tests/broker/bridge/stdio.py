"""Launch ``mcp-broker connect URL`` the way an MCP client does: the mcp SDK's stdio client."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from mcp.client.client import Client
from mcp.client.stdio import StdioServerParameters, stdio_client

from tests.e2e.conftest import ROOT, BrokerCli


def connect_argv(url: str) -> list[str]:
    """``mcp-broker connect URL`` through the CLI when it offers ``connect``; until the command
    is wired into ``broker.cli``, the bridge's own entry point."""
    from broker.cli import build_parser

    parser = build_parser()
    choices = next(a.choices for a in parser._subparsers._actions if a.choices)  # type: ignore[union-attr]
    module = ["broker.cli", "-v", "connect"] if "connect" in choices else ["broker.bridge"]
    return ["-m", *module, url]


@asynccontextmanager
async def bridged_client(cli: BrokerCli, url: str, errlog: Path) -> AsyncIterator[Client]:
    """An SDK client talking to ``url`` through the bridge, launched as a stdio subprocess."""
    params = StdioServerParameters(
        command=sys.executable, args=connect_argv(url), env=cli.env, cwd=str(ROOT)
    )
    with errlog.open("a") as log:
        async with Client(stdio_client(params, errlog=log)) as client:
            yield client
