"""``mcp-broker call``: one MCP tool call with a broker token, through the mcp SDK client.

The token is asked of the broker for every HTTP request of the session (cache first, so this is
cheap), so a long call keeps working across a refresh.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Callable, Generator
from typing import Any

import anyio
import anyio.to_thread
import httpx2
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult, TextContent

TokenSource = Callable[[], str]
_TIMEOUT = httpx2.Timeout(30.0, read=300.0)  # the SDK's defaults: a response may stream a while


class TokenAuth(httpx2.Auth):
    """Attach ``Authorization: Bearer`` with a token from the broker to every request."""

    def __init__(self, token: TokenSource) -> None:
        self._token = token

    def sync_auth_flow(self, request: httpx2.Request) -> Generator[httpx2.Request, Any, None]:
        request.headers["Authorization"] = f"Bearer {self._token()}"
        yield request

    async def async_auth_flow(self, request: httpx2.Request) -> AsyncGenerator[httpx2.Request, Any]:
        # The token source may read the keyring or refresh: keep it off the event loop.
        token = await anyio.to_thread.run_sync(self._token)
        request.headers["Authorization"] = f"Bearer {token}"
        yield request


async def call_tool_async(
    url: str, tool: str, arguments: dict[str, Any] | None, token: TokenSource
) -> CallToolResult:
    async with (
        httpx2.AsyncClient(auth=TokenAuth(token), timeout=_TIMEOUT) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        return await client.call_tool(tool, arguments)


def call_tool(
    url: str, tool: str, arguments: dict[str, Any] | None, token: TokenSource
) -> CallToolResult:
    result: CallToolResult = anyio.run(call_tool_async, url, tool, arguments, token)
    return result


def render_result(result: CallToolResult) -> str:
    """The result for a terminal: text contents as they are, other content and structured
    content as JSON."""
    parts: list[str] = []
    for item in result.content:
        if isinstance(item, TextContent):
            parts.append(item.text)
        else:
            parts.append(json.dumps(item.model_dump(mode="json", exclude_none=True)))
    if not parts and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content, indent=2))
    return "\n".join(parts)
