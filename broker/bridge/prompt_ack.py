"""Acknowledge each response's headers at once, so that its body is not held back 40 ms.

Many servers write a response's headers and its body in two sends on a socket without
``TCP_NODELAY`` (the demo MCP server's uvicorn does): Nagle's algorithm then holds the body back
until the headers are acknowledged. Linux delays that acknowledgement (up to 40 ms) on a
connection that looks interactive — a kept-alive one on which the client has just sent a
request — so every answer on a reused connection waits for the delayed-ACK timer. mcp-remote
pays it on every call; the bridge paid it on the first ``tools/call`` of each session, the one
sent on the connection ``notifications/initialized`` left open (``benchmarks/bridge.py``).

Asking for a quick acknowledgement (Linux ``TCP_QUICKACK``) once the headers are read sends the
pending ACK now, and the server sends the body. Nothing about the messages changes: only when
the bridge's TCP stack acknowledges bytes it has received. Where the option does not exist
(macOS, Windows) this is a no-op.
"""

from __future__ import annotations

import contextlib
import socket

import httpx2

_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)


class PromptAckTransport(httpx2.AsyncBaseTransport):
    """``inner`` (by default httpx2's own transport), acknowledging each response's headers
    as soon as they are read."""

    def __init__(self, inner: httpx2.AsyncBaseTransport | None = None) -> None:
        self._inner = inner or httpx2.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await self._inner.handle_async_request(request)
        acknowledge_now(response)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


def acknowledge_now(response: httpx2.Response) -> None:
    """Send the ACK for what ``response``'s connection has received so far, if one is pending,
    and leave delayed-ACK ("interactive") mode until the bridge next sends on it."""
    if _QUICKACK is None:
        return
    stream = response.extensions.get("network_stream")
    # A socket.socket, or asyncio's TransportSocket standing in for one.
    sock = stream.get_extra_info("socket") if stream is not None else None
    if sock is None:
        return
    with contextlib.suppress(OSError):  # closed meanwhile, or not TCP: nothing to acknowledge
        sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
