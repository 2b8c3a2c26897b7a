"""``mcp-broker call``: one MCP tool call with a broker token, through the mcp SDK client.

Every HTTP request of the session goes through the broker's one 401/403 handler
(:class:`broker.signin.httpauth.BrokerAuth`): the token is asked of the broker for each (cache
first, so this is cheap, and a long call keeps working across a refresh), a 401 gets one renewed
token and a 403 ``insufficient_scope`` one step-up, as the bridge's requests do.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
import httpx2
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult, TextContent

from broker.signin.httpauth import BrokerAuth, TokenSource

_TIMEOUT = httpx2.Timeout(30.0, read=300.0)  # the SDK's defaults: a response may stream a while


async def call_tool_async(
    url: str, tool: str, arguments: dict[str, Any] | None, tokens: TokenSource
) -> CallToolResult:
    async with (
        httpx2.AsyncClient(auth=BrokerAuth(tokens), timeout=_TIMEOUT) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        return await client.call_tool(tool, arguments)


def call_tool(
    url: str, tool: str, arguments: dict[str, Any] | None, tokens: TokenSource
) -> CallToolResult:
    result: CallToolResult = anyio.run(call_tool_async, url, tool, arguments, tokens)
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
