"""Demo MCP server test helpers: start it on a uvicorn thread, talk MCP to it over real HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx2
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client

from demo_server.resource import ResourceSettings, RunningResourceServer, start
from tests.support.jwt_issuer import JwksServer

PROTOCOL_VERSION = "2025-11-25"
MCP_HEADERS = {
    "Accept": "application/json, text/event-stream",
    "Content-Type": "application/json",
    "MCP-Protocol-Version": PROTOCOL_VERSION,
}


@contextmanager
def running_resource(jwks: JwksServer, **overrides: Any) -> Iterator[RunningResourceServer]:
    """The demo server on a free port, trusting ``jwks``'s issuer; closed afterwards."""
    options: dict[str, Any] = {"port": 0, "issuer": jwks.issuer, "jwks_url": jwks.jwks_url}
    options.update(overrides)
    server = start(ResourceSettings(**options))
    try:
        yield server
    finally:
        server.close()


def initialize_body(request_id: int = 1) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "initialize",
        "params": {
            "protocolVersion": PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "resource-tests", "version": "0"},
        },
    }


def tool_call_body(name: str, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
    params = {"name": name, "arguments": arguments or {}}
    return {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": params}


def post_mcp(
    url: str,
    body: dict[str, Any],
    token: str | None = None,
    headers: dict[str, str] | None = None,
) -> httpx2.Response:
    """One raw JSON-RPC POST to the MCP endpoint."""
    all_headers = dict(MCP_HEADERS)
    if token is not None:
        all_headers["Authorization"] = f"Bearer {token}"
    all_headers.update(headers or {})
    return httpx2.post(url, json=body, headers=all_headers, timeout=10.0)


async def _call_tool(url: str, token: str, name: str, arguments: dict[str, Any]) -> Any:
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=10.0) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        return await session.call_tool(name, arguments)


def call_tool(url: str, token: str, name: str, arguments: dict[str, Any] | None = None) -> Any:
    """Call a tool through the real mcp SDK client (Streamable HTTP) with a bearer token."""
    return asyncio.run(_call_tool(url, token, name, arguments or {}))
