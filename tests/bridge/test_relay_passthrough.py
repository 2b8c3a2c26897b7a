"""The relay passes everything both ways: progress notifications and a server-to-client
elicitation request reach the client while a tool runs, and every request carries the token.

The client is the SDK's ``Client`` on in-memory streams, the relay runs in this process, and
the server is a real Streamable HTTP server (``chatty_server``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx2
import pytest
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp.shared.memory import create_client_server_memory_streams
from mcp_types import ElicitResult, TextContent

from broker.bridge.relay import relay
from broker.bridge.transport import SIGN_IN_REQUIRED, BrokerTokenTransport
from broker.errors import InteractionRequired
from tests.bridge.chatty_server import chatty_server
from tests.bridge.fakes import FakeTokens

pytestmark = pytest.mark.integration

MODES = ["legacy", "2026-07-28"]


@asynccontextmanager
async def bridged(url: str, tokens: FakeTokens, **client_options: Any) -> AsyncIterator[Client]:
    """A Client whose messages go through the relay to ``url``."""
    async with create_client_server_memory_streams() as (client_side, bridge_side):

        @asynccontextmanager
        async def transport() -> AsyncIterator[Any]:
            yield client_side

        async with (
            httpx2.AsyncClient(transport=BrokerTokenTransport(tokens)) as http,
            streamable_http_client(url, http_client=http) as server_side,
            anyio.create_task_group() as tg,
        ):
            tg.start_soon(relay, bridge_side, server_side)
            async with Client(transport(), **client_options) as client:
                yield client
            await bridge_side[1].aclose()  # as stdio does when the client goes
            tg.cancel_scope.cancel()


def text_of(result: Any) -> str:
    assert not result.is_error, result
    return "".join(c.text for c in result.content if isinstance(c, TextContent))


@pytest.fixture(scope="module")
def server_url() -> Any:
    with chatty_server() as url:
        yield url


@pytest.mark.parametrize("mode", MODES)
def test_progress_notifications_reach_the_client_during_a_call(server_url: str, mode: str) -> None:
    seen: list[tuple[float, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, message))

    async def session() -> str:
        async with bridged(server_url, FakeTokens(), mode=mode) as client:
            return text_of(await client.call_tool("count", {"n": 3}, progress_callback=on_progress))

    assert anyio.run(session) == "counted to 3"
    assert seen == [(1, "step 1"), (2, "step 2"), (3, "step 3")]


def test_an_elicitation_request_reaches_the_client_and_its_answer_the_server(
    server_url: str,
) -> None:
    # A server-initiated request needs a back-channel, which 2026-07-28 replaced with
    # input_required results (plain results to the relay); so this is the handshake era.
    mode = "legacy"
    asked: list[str] = []

    async def on_elicit(context: Any, params: Any) -> ElicitResult:
        asked.append(params.message)
        return ElicitResult(action="accept", content={"name": "Ada"})

    async def session() -> str:
        async with bridged(
            server_url, FakeTokens(), mode=mode, elicitation_callback=on_elicit
        ) as c:
            return text_of(await c.call_tool("greet", {}))

    assert anyio.run(session) == "hello Ada"
    assert asked == ["Who are you?"]


@pytest.mark.parametrize("mode", MODES)
def test_every_request_carries_the_brokers_current_token(server_url: str, mode: str) -> None:
    tokens = FakeTokens(["first", "second"])

    async def session() -> list[str]:
        async with bridged(server_url, tokens, mode=mode) as client:
            first = text_of(await client.call_tool("authorization", {}))
            tokens.rotate()
            return [first, text_of(await client.call_tool("authorization", {}))]

    assert anyio.run(session) == ["Bearer first", "Bearer second"]


def test_a_request_refused_for_sign_in_gets_an_error_and_the_session_lives_on(
    server_url: str,
) -> None:
    tokens = FakeTokens(["t1"])

    async def session() -> tuple[MCPError, str]:
        async with bridged(server_url, tokens) as client:
            tokens.fail = InteractionRequired("sign-in required: the refresh token expired")
            with pytest.raises(MCPError) as refused:
                await client.call_tool("authorization", {})
            tokens.fail = None  # the user signed in from the tray
            return refused.value, text_of(await client.call_tool("authorization", {}))

    refused, after = anyio.run(session)

    assert refused.code == SIGN_IN_REQUIRED
    assert "refresh token expired" in refused.message and "mcp-broker login" in refused.message
    assert after == "Bearer t1"
