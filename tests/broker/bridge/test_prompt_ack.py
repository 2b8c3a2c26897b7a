"""The bridge's HTTP connections acknowledge a response's headers at once (Linux TCP_QUICKACK).

A server that sends the headers and the body of an answer in two writes, Nagle on (uvicorn
does), holds the body back until the headers are acknowledged; a kept-alive connection on which
the client has just sent a request is in delayed-ACK ("pingpong") mode, so that takes up to
40 ms. What it costs is measured by ``benchmarks/bridge.py``; these tests check the mechanism:
after each response through the bridge's transport, the connection is out of delayed-ACK mode
(``getsockopt(TCP_QUICKACK)`` reads 1), where a plain httpx2 transport's reads 0.
"""

from __future__ import annotations

import socket
import sys
import threading
from collections.abc import Iterator
from typing import Any

import anyio
import httpx2
import pytest

from broker.bridge.prompt_ack import PromptAckTransport, acknowledge_now
from broker.bridge.transport import BrokerTokenTransport
from tests.broker.bridge.fakes import FakeTokens

linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="TCP_QUICKACK is Linux's"
)
ANSWER = b'{"jsonrpc":"2.0","id":1,"result":{}}'


class RecordingSocket:
    def __init__(self, error: OSError | None = None) -> None:
        self.options: list[tuple[int, int, int]] = []
        self.error = error

    def setsockopt(self, level: int, option: int, value: int) -> None:
        self.options.append((level, option, value))
        if self.error is not None:
            raise self.error


class FakeNetworkStream:
    def __init__(self, sock: object) -> None:
        self.sock = sock

    def get_extra_info(self, info: str) -> object:
        return self.sock if info == "socket" else None


def response_over(stream: FakeNetworkStream | None) -> httpx2.Response:
    extensions: dict[str, Any] = {} if stream is None else {"network_stream": stream}
    return httpx2.Response(200, extensions=extensions)


@linux_only
def test_the_socket_is_asked_for_a_quick_ack() -> None:
    sock = RecordingSocket()
    acknowledge_now(response_over(FakeNetworkStream(sock)))
    assert sock.options == [(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)]


def test_a_response_without_a_socket_is_left_alone() -> None:
    acknowledge_now(response_over(None))  # e.g. a local refusal, or a mock transport
    acknowledge_now(response_over(FakeNetworkStream(None)))


@linux_only
def test_a_socket_that_refuses_the_option_is_no_error() -> None:
    sock = RecordingSocket(OSError(9, "Bad file descriptor"))
    acknowledge_now(response_over(FakeNetworkStream(sock)))
    assert len(sock.options) == 1


# -- real sockets ------------------------------------------------------------------------------


def _serve(listener: socket.socket) -> None:
    """Answer every request on each connection as uvicorn does: Nagle on, headers and body in
    two writes, the connection kept alive."""
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with conn:
            pending = b""
            while True:
                while b"\r\n\r\n" not in pending:
                    data = conn.recv(65536)
                    if not data:
                        break
                    pending += data
                else:
                    head, _, pending = pending.partition(b"\r\n\r\n")
                    length = 0
                    for line in head.split(b"\r\n")[1:]:
                        name, _, value = line.partition(b":")
                        if name.strip().lower() == b"content-length":
                            length = int(value)
                    while len(pending) < length:
                        pending += conn.recv(65536)
                    pending = pending[length:]
                    conn.sendall(
                        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                        b"content-length: %d\r\n\r\n" % len(ANSWER)
                    )
                    conn.sendall(ANSWER)
                    continue
                break


@pytest.fixture
def server_url() -> Iterator[str]:
    listener = socket.create_server(("127.0.0.1", 0))
    thread = threading.Thread(target=_serve, args=(listener,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/mcp"
    finally:
        listener.shutdown(socket.SHUT_RDWR)  # wakes the accept()
        listener.close()
        thread.join(5)


def quick_ack_states(transport: httpx2.AsyncBaseTransport, url: str) -> list[int]:
    """Send three requests on one kept-alive connection; after each one's headers, whether the
    connection is out of delayed-ACK mode (1) or in it (0)."""

    async def run() -> list[int]:
        states: list[int] = []
        sockets: set[int] = set()
        async with httpx2.AsyncClient(transport=transport, trust_env=False) as http:
            for _ in range(3):
                async with http.stream("POST", url, content=b"{}") as response:
                    sock = response.extensions["network_stream"].get_extra_info("socket")
                    sockets.add(sock.fileno())
                    states.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK))
                    assert await response.aread() == ANSWER
        assert len(sockets) == 1, "the connection was not kept alive"
        return states

    result: list[int] = anyio.run(run)
    return result


@pytest.mark.integration
@linux_only
def test_the_bridge_transport_leaves_delayed_ack_mode_after_each_response(
    server_url: str,
) -> None:
    assert quick_ack_states(BrokerTokenTransport(FakeTokens()), server_url) == [1, 1, 1]


@pytest.mark.integration
@linux_only
def test_prompt_ack_transport_over_a_plain_one(server_url: str) -> None:
    wrapped = PromptAckTransport(httpx2.AsyncHTTPTransport())
    assert quick_ack_states(wrapped, server_url) == [1, 1, 1]
    # The baseline the fix changes: without it the kept-alive connection delays its ACKs.
    assert 0 in quick_ack_states(httpx2.AsyncHTTPTransport(), server_url)
