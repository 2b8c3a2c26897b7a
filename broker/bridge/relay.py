"""Relay MCP messages between a stdio client and a Streamable HTTP server, both ways.

Both ends are the mcp SDK's transports (``stdio_server`` and ``streamable_http_client``): the
relay only moves :class:`SessionMessage` objects, so requests, responses, notifications,
progress and server-initiated requests (sampling, elicitation, roots) all pass unchanged, with
their ids. What the HTTP side needs beyond the body (routing headers) comes from
:class:`RoutingHeaders`; the token from the HTTP client the transport was given.

The session ends when the client closes stdin (or the server side closes): the relay stops
both directions, closes the client's write stream so the stdio transport can finish, and the
HTTP transport then ends the server session (``DELETE``).
"""

from __future__ import annotations

import logging

import anyio
import httpx2
from mcp.client.streamable_http import streamable_http_client
from mcp.server.stdio import stdio_server
from mcp.shared._stream_protocols import ReadStream, WriteStream
from mcp.shared.message import ClientMessageMetadata, SessionMessage
from mcp_types import JSONRPCError, JSONRPCMessage, JSONRPCRequest, JSONRPCResponse, RequestId

from broker.bridge.headers import RoutingHeaders
from broker.bridge.tokens import TokenSource
from broker.bridge.transport import BrokerTokenTransport

logger = logging.getLogger(__name__)

Inbound = ReadStream[SessionMessage | Exception]
Outbound = WriteStream[SessionMessage]

#: The SDK's defaults: a response may stream for a long time.
HTTP_TIMEOUT = httpx2.Timeout(30.0, read=300.0)
#: After the client's input ends, answers still owed to it are awaited this long.
DRAIN_SECONDS = 5.0


class Outstanding:
    """Ids of client requests not yet answered, and a way to wait until there are none."""

    def __init__(self) -> None:
        self._ids: set[RequestId] = set()
        self._idle = anyio.Event()
        self._idle.set()

    def sent(self, message: JSONRPCMessage) -> None:
        if isinstance(message, JSONRPCRequest):
            if self._idle.is_set():
                self._idle = anyio.Event()
            self._ids.add(message.id)

    def answered(self, message: JSONRPCMessage) -> None:
        if isinstance(message, JSONRPCResponse | JSONRPCError) and message.id is not None:
            self._ids.discard(message.id)
            if not self._ids:
                self._idle.set()

    async def drained(self) -> None:
        await self._idle.wait()


async def relay(
    client: tuple[Inbound, Outbound],
    server: tuple[Inbound, Outbound],
    headers: RoutingHeaders | None = None,
) -> None:
    """Move messages until either side closes; then close the client's write stream."""
    client_read, client_write = client
    server_read, server_write = server
    routing = headers or RoutingHeaders()
    outstanding = Outstanding()

    async def upstream(scope: anyio.CancelScope) -> None:
        async for item in client_read:
            if isinstance(item, Exception):
                logger.warning("dropped a line from the client that is not JSON-RPC: %s", item)
                continue
            extra = routing.for_client_message(item.message)
            metadata = ClientMessageMetadata(headers=extra) if extra else None
            outstanding.sent(item.message)
            await server_write.send(SessionMessage(item.message, metadata))
        logger.info("the client closed its input; ending the session")
        # A client piping requests in may close its input before the answers are out.
        with anyio.move_on_after(DRAIN_SECONDS):
            await outstanding.drained()
        scope.cancel()

    async def downstream(scope: anyio.CancelScope) -> None:
        async for item in server_read:
            if isinstance(item, Exception):
                logger.warning("the server sent something that is not JSON-RPC: %s", item)
                continue
            message = routing.observe_server_message(item.message)
            await client_write.send(SessionMessage(message))
            outstanding.answered(message)
        logger.info("the server side closed; ending the session")
        scope.cancel()

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(upstream, tg.cancel_scope)
            tg.start_soon(downstream, tg.cancel_scope)
    finally:
        await client_write.aclose()


async def serve_stdio(url: str, tokens: TokenSource) -> None:
    """Serve one MCP session on this process's stdin/stdout, relayed to ``url``."""
    http = httpx2.AsyncClient(
        transport=BrokerTokenTransport(tokens), timeout=HTTP_TIMEOUT, trust_env=False
    )
    async with (
        stdio_server() as client,
        http,
        streamable_http_client(url, http_client=http) as server,
    ):
        await relay(client, server)
