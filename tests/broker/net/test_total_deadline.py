"""One total deadline per HTTP exchange, headers included: a server that drips its status line and
headers one byte a second must not hold a sign-in, a probe or a refresh past the limit.

The hostile server is the test's own (a raw socket on 127.0.0.1). The bound is asserted from the
outside, on the call, with generous slack: without the deadline the call runs for as long as the
server drips (far past the bound) and then succeeds.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from broker.config import ServerConfig
from broker.errors import ResponseLimitExceeded
from broker.net.limited_http import HttpLimits, LimitedSender
from broker.paths import broker_paths
from broker.root import build
from broker.store.memory import MemoryTokenStore

pytestmark = pytest.mark.integration

LIMITS = HttpLimits(total_seconds=2.0, connect_seconds=1.0)
#: How long the server drips: far longer than the limit (the whole answer would arrive after it).
DRIP_SECONDS = 25
BOUND = 3 * LIMITS.total_seconds + 3  # generous slack for a loaded machine


class DrippingServer:
    """Answers every request with a status line and headers sent one byte a second."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)  # a closed listener does not wake accept()
        self.port = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(None)
            threading.Thread(target=self._drip, args=(conn,), daemon=True).start()

    def _drip(self, conn: socket.socket) -> None:
        head = (
            "HTTP/1.1 401 Unauthorized\r\nX-Slow: " + "x" * DRIP_SECONDS + "\r\n"
            'WWW-Authenticate: Bearer scope="a"\r\nContent-Length: 2\r\n\r\n{}'
        ).encode()
        with contextlib.suppress(OSError), conn:
            conn.recv(65536)
            for i in range(len(head)):
                if self._stop.wait(1.0 if i < DRIP_SECONDS else 0):
                    return
                conn.sendall(head[i : i + 1])

    def close(self) -> None:
        self._stop.set()
        self._listener.close()
        self._thread.join(5)


@pytest.fixture
def dripping() -> Iterator[DrippingServer]:
    server = DrippingServer()
    yield server
    server.close()


def _bounded_call(call: object) -> float:
    started = time.monotonic()
    with pytest.raises(ResponseLimitExceeded):
        call()  # type: ignore[operator]
    return time.monotonic() - started


def test_dripped_headers_end_at_the_total_deadline(dripping: DrippingServer) -> None:
    send = LimitedSender(limits=LIMITS)
    try:
        request = httpx2.Request("GET", f"http://127.0.0.1:{dripping.port}/token")
        elapsed = _bounded_call(lambda: send(request))
    finally:
        send.close()
    assert elapsed < BOUND


def test_the_first_probe_of_a_server_ends_at_the_total_deadline(
    dripping: DrippingServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MCP_BROKER_HOME", str(tmp_path / "home"))
    paths = broker_paths()
    opened: list[str] = []
    broker = build(
        paths,
        paths.config_file,
        store=MemoryTokenStore(),
        send=LimitedSender(limits=LIMITS),
        opener=opened.append,
    ).broker
    try:
        url = f"http://127.0.0.1:{dripping.port}/mcp"
        broker.add(ServerConfig(url, client_id="c"))
        elapsed = _bounded_call(lambda: broker.login(url))
    finally:
        broker.close()
    assert elapsed < BOUND
    assert opened == []  # no sign-in started


def test_a_proxy_from_the_environment_is_used_and_held_to_the_same_deadline(
    dripping: DrippingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Users behind a corporate proxy keep discovery, sign-in and refresh: ``HTTP_PROXY`` is
    honoured by the watched client, and a proxy that drips is cut off like a server that does.
    Without the proxy the name below cannot be resolved at all (ServerUnreachable, at once)."""
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{dripping.port}")
    send = LimitedSender(limits=LIMITS)
    try:
        request = httpx2.Request("GET", "http://mcp.example.invalid/.well-known/x")
        elapsed = _bounded_call(lambda: send(request))
    finally:
        send.close()
    assert elapsed < BOUND
