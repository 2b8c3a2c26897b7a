"""The relay passes everything both ways: progress notifications and a server-to-client
elicitation request reach the client while a tool runs, and every request carries the token.

The client is the SDK's ``Client``, its messages serialised to lines and back as its stdio
transport does, the relay runs in this process, and the server is a real Streamable HTTP server
(``chatty_server``)."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx2
import pytest
from mcp.client.client import Client
from mcp.shared.exceptions import MCPError
from mcp.shared.message import SessionMessage
from mcp_types import ElicitResult, TextContent, jsonrpc_message_adapter

from broker.bridge.relay import relay
from broker.bridge.transport import SIGN_IN_REQUIRED, BrokerTokenTransport
from broker.errors import InteractionRequired
from tests.broker.bridge.chatty_server import chatty_server
from tests.broker.bridge.fakes import FakeTokens

pytestmark = pytest.mark.integration

MODES = ["legacy", "2026-07-28"]


@asynccontextmanager
async def bridged(url: str, tokens: FakeTokens, **client_options: Any) -> AsyncIterator[Client]:
    """A Client whose messages go through the relay to ``url``, as lines (what the SDK's stdio
    transport writes and reads)."""
    lines_in, lines_out = anyio.create_memory_object_stream[bytes](math.inf)
    to_client, client_read = anyio.create_memory_object_stream[SessionMessage | Exception](math.inf)
    client_write, from_client = anyio.create_memory_object_stream[SessionMessage](0)

    async def serialise() -> None:
        async with lines_in:
            async for item in from_client:
                dumped = item.message.model_dump_json(by_alias=True, exclude_unset=True)
                await lines_in.send(dumped.encode() + b"\n")

    def write_line(line: bytes) -> None:
        assert b"\n" not in line
        message = jsonrpc_message_adapter.validate_json(line, by_name=False)
        to_client.send_nowait(SessionMessage(message))

    async def lines() -> AsyncIterator[bytes]:
        async for line in lines_out:
            yield line

    @asynccontextmanager
    async def transport() -> AsyncIterator[Any]:
        yield client_read, client_write

    async with (
        lines_out,
        to_client,
        client_read,
        client_write,
        from_client,
        httpx2.AsyncClient(transport=BrokerTokenTransport(tokens)) as http,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(serialise)
        tg.start_soon(relay, lines(), write_line, url, http)
        async with Client(transport(), **client_options) as client:
            yield client
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
