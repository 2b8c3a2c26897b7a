"""The listening socket (127.0.0.1 only, never shared) and connection limits, and a clean stop."""

from __future__ import annotations

import socket
import sys
from dataclasses import replace

import httpx2
import pytest

from broker.api.server import ApiSettings, start_api
from broker.paths import BrokerPaths
from tests.broker.api.conftest import Api, api_threads
from tests.broker.api.fakes import SERVER_A, FakeProvider

pytestmark = pytest.mark.integration


def test_the_socket_is_bound_to_127_0_0_1_only(api: Api) -> None:
    sock = api.server.socket
    assert sock.getsockname() == ("127.0.0.1", api.port)
    assert sock.family == socket.AF_INET
    assert api.server.url == f"http://127.0.0.1:{api.port}"


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX socket options")
def test_the_socket_does_not_share_its_port(api: Api) -> None:
    sock = api.server.socket
    if hasattr(socket, "SO_REUSEPORT"):
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 0
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR) == 0
    with socket.socket() as other, pytest.raises(OSError):
        other.bind(("127.0.0.1", api.port))


@pytest.mark.skipif(sys.platform != "win32", reason="Windows socket option")
def test_the_socket_is_exclusive_on_windows(api: Api) -> None:  # pragma: no cover - Windows
    sock = api.server.socket
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_EXCLUSIVEADDRUSE) == 1  # type: ignore[attr-defined]


def test_close_stops_serving_and_leaves_no_thread(paths: BrokerPaths) -> None:
    server = start_api(FakeProvider(), paths, settings=ApiSettings(threads=3))
    headers = {"X-MCP-Broker": "1", "Authorization": f"Bearer {server.clients.default_secret}"}
    with httpx2.Client(base_url=server.url, trust_env=False) as http:
        assert (
            http.post("/v1/token", json={"resource": SERVER_A}, headers=headers).status_code == 200
        )
    assert api_threads()
    port = server.port

    server.close()

    assert api_threads() == []
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass


def test_slow_headers_time_out(paths: BrokerPaths) -> None:
    settings = ApiSettings(threads=2, channel_timeout=1, cleanup_interval=1)
    with (
        start_api(FakeProvider(), paths, settings=settings) as server,
        socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock,
    ):
        sock.sendall(b"POST /v1/token HTTP/1.1\r\nHost: 127.0.0.1")  # ... and nothing more
        assert sock.recv(1024) == b""  # the server hung up on the idle connection


def test_hundreds_of_idle_connections_are_capped_and_the_api_stays_responsive(
    paths: BrokerPaths,
) -> None:
    # channel_timeout is long: only the cap (evicting idle connections) can make room here.
    settings = ApiSettings(threads=2, channel_timeout=300, connection_limit=50)
    with start_api(FakeProvider(), paths, settings=settings) as server:
        idle: list[socket.socket] = []
        try:
            for i in range(300):
                sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
                if i % 2:
                    sock.sendall(b"GET /v1/status HTTP/1.1\r\n")  # slow headers, never finished
                idle.append(sock)
            headers = {
                "X-MCP-Broker": "1",
                "Authorization": f"Bearer {server.clients.default_secret}",
            }
            with httpx2.Client(base_url=server.url, trust_env=False, timeout=30) as http:
                response = http.post("/v1/token", json={"resource": SERVER_A}, headers=headers)
            assert response.status_code == 200
            assert server.open_connections() <= settings.connection_limit
        finally:
            for sock in idle:
                sock.close()


def test_a_port_in_use_is_an_error_not_a_shared_port(paths: BrokerPaths, api: Api) -> None:
    with pytest.raises(OSError):
        start_api(FakeProvider(), paths, settings=replace(ApiSettings(), port=api.port))
