"""Metadata and token responses are bounded in size and total time.

A real HTTP server on 127.0.0.1 misbehaves on purpose; :class:`LimitedSender` must give up.
"""

from __future__ import annotations

import contextlib
import http.server
import threading
import time
from collections.abc import Iterator

import httpx2
import pytest

from broker.errors import ResponseLimitExceeded, ServerUnreachable
from broker.net.limited_http import HttpLimits, LimitedSender
from tests.support.procs import refusing_port

pytestmark = pytest.mark.integration

LIMITS = HttpLimits(max_bytes=64 * 1024, total_seconds=1.0, connect_seconds=1.0)


class Misbehaving(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            getattr(self, "_" + self.path.strip("/").replace("-", "_"))()

    def _ok(self) -> None:
        self._send(200, b'{"issuer": "x"}', {"Content-Type": "application/json"})

    def _redirect(self) -> None:
        self._send(302, b"", {"Location": "https://elsewhere.example/"})

    def _huge_declared(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(50 * 1024 * 1024))
        self.end_headers()
        self.wfile.write(b"{" * 1024)

    def _huge_chunked(self) -> None:
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        chunk = b"a" * 8192
        for _ in range(1024):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        self.wfile.write(b"0\r\n\r\n")

    def _trickle(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "1000")
        self.end_headers()
        for _ in range(200):  # 1 byte every 50 ms: far slower than the limit allows
            self.wfile.write(b" ")
            self.wfile.flush()
            time.sleep(0.05)

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in {**headers, "Content-Length": str(len(body))}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Misbehaving)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def send() -> Iterator[LimitedSender]:
    with httpx2.Client(trust_env=False) as client:
        yield LimitedSender(client, LIMITS)


def test_a_normal_response_is_read_whole(base_url: str, send: LimitedSender) -> None:
    response = send(httpx2.Request("GET", f"{base_url}/ok"))
    assert response.status_code == 200 and response.json() == {"issuer": "x"}


def test_redirects_are_not_followed(base_url: str, send: LimitedSender) -> None:
    assert send(httpx2.Request("GET", f"{base_url}/redirect")).status_code == 302


@pytest.mark.parametrize("path", ["/huge-declared", "/huge-chunked"])
def test_huge_responses_are_aborted(base_url: str, send: LimitedSender, path: str) -> None:
    with pytest.raises(ResponseLimitExceeded, match="bytes"):
        send(httpx2.Request("GET", base_url + path))


def test_a_trickling_response_is_aborted_by_the_total_time_limit(
    base_url: str, send: LimitedSender
) -> None:
    with pytest.raises(ResponseLimitExceeded):
        send(httpx2.Request("GET", f"{base_url}/trickle"))


def test_a_closed_port_is_unreachable(send: LimitedSender) -> None:
    with refusing_port() as port, pytest.raises(ServerUnreachable):
        send(httpx2.Request("GET", f"http://127.0.0.1:{port}/"))
