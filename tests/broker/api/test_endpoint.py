"""endpoint.json and the client side: written 0600 in a 0700 dir, atomically; a stale file
pointing at another process's port never gets the secret."""

from __future__ import annotations

import json
import os
import stat
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx2
import pytest

from broker.api import endpoint as client_side
from broker.api.server import ApiSettings, start_api
from broker.errors import (
    BrokerNotRunning,
    ConfigError,
    InteractionRequired,
    StaleEndpoint,
    UnsafePathError,
)
from broker.paths import BrokerPaths
from tests.broker.api.conftest import Api
from tests.broker.api.fakes import CANARY_ACCESS, SERVER_A, FakeProvider

pytestmark = pytest.mark.integration


def test_endpoint_json_is_private_and_describes_the_running_api(api: Api) -> None:
    path = api.paths.endpoint_file
    doc = json.loads(path.read_text())

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert doc["url"] == api.server.url == f"http://127.0.0.1:{api.port}"
    assert doc["pid"] == os.getpid() and doc["secret"] == api.secret
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".endpoint")] == []


def test_endpoint_json_is_replaced_atomically(paths: BrokerPaths) -> None:
    first = start_api(FakeProvider(), paths, settings=ApiSettings(threads=2))
    inode = paths.endpoint_file.stat().st_ino
    second = start_api(FakeProvider(), paths, settings=ApiSettings(threads=2))
    try:
        assert paths.endpoint_file.stat().st_ino != inode  # a new file renamed over the old one
        assert json.loads(paths.endpoint_file.read_text())["url"] == second.url
        first.close()  # the older server must not delete the newer one's file
        assert json.loads(paths.endpoint_file.read_text())["url"] == second.url
    finally:
        first.close()
        second.close()
    assert not paths.endpoint_file.exists()


def test_a_group_writable_state_dir_is_refused(paths: BrokerPaths) -> None:
    os.chmod(paths.state_dir, 0o770)
    with pytest.raises(UnsafePathError):
        start_api(FakeProvider(), paths, settings=ApiSettings(threads=2))
    assert not paths.endpoint_file.exists()


def test_a_client_refuses_an_endpoint_file_others_can_read(api: Api) -> None:
    os.chmod(api.paths.endpoint_file, 0o644)
    with pytest.raises(UnsafePathError):
        client_side.read_endpoint(api.paths.endpoint_file)


def test_discover_and_request_token_against_the_running_api(api: Api) -> None:
    found = client_side.discover_endpoint(api.paths)
    token = client_side.request_token("https://A.example/mcp/", paths=api.paths)

    assert found.url == api.server.url
    assert token.access_token == f"{CANARY_ACCESS}-{SERVER_A}" and token.resource == SERVER_A
    assert CANARY_ACCESS not in repr(token)


def test_request_token_maps_api_errors(api: Api) -> None:
    api.provider.failures[SERVER_A] = InteractionRequired("sign in first")
    with pytest.raises(InteractionRequired, match="sign in first"):
        client_side.request_token(SERVER_A, paths=api.paths)
    with pytest.raises(ConfigError):
        client_side.request_token("https://c.example/mcp", paths=api.paths)


def test_no_endpoint_file_means_not_running(paths: BrokerPaths) -> None:
    with pytest.raises(BrokerNotRunning):
        client_side.request_token(SERVER_A, paths=paths)


# -- #17: a stale endpoint.json -----------------------------------------------------------------


class Squatter:
    """Another process's server on the port a stale endpoint.json names. It records what it is
    sent and, to be nasty, relays ``/v1/hello`` to the real broker listening elsewhere."""

    def __init__(self, relay_to: str | None) -> None:
        self.received: list[bytes] = []
        squatter = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                squatter.received.append(bytes(self.headers) + self.rfile.read(length))
                status, body = 200, b'{"proof": "forged"}'
                if relay_to and self.path == "/v1/hello":
                    headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                    relayed = httpx2.get(f"{relay_to}/v1/hello", headers=headers, trust_env=False)
                    status, body = relayed.status_code, relayed.content
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture(params=[False, True], ids=["forging", "relaying"])
def squatter(request: pytest.FixtureRequest, api: Api) -> Iterator[Squatter]:
    squatter = Squatter(relay_to=api.server.url if request.param else None)
    yield squatter
    squatter.close()


def test_a_stale_endpoint_file_never_sends_the_secret(api: Api, squatter: Squatter) -> None:
    stale = api.server.endpoint._replace(
        url=f"http://127.0.0.1:{squatter.port}", port=squatter.port
    )
    client_side.write_endpoint(api.paths.endpoint_file, stale)

    with pytest.raises(StaleEndpoint):
        client_side.request_token(SERVER_A, paths=api.paths)
    with pytest.raises(StaleEndpoint):
        client_side.discover_endpoint(api.paths)

    assert squatter.received, "the client never even asked the squatter"
    assert all(api.secret.encode() not in raw for raw in squatter.received)
    assert api.provider.calls == []


def test_a_named_client_proves_the_server_with_its_own_secret(api: Api) -> None:
    from broker.api.clients import ClientsFile

    secret = ClientsFile(api.paths.state_dir, api.paths.lock_dir).add("script", [SERVER_A])
    token = client_side.request_token(
        SERVER_A, paths=api.paths, secret=secret, client_name="script"
    )
    assert token.resource == SERVER_A
    with pytest.raises(StaleEndpoint):  # the wrong name: the proof cannot match
        client_side.request_token(SERVER_A, paths=api.paths, secret=secret, client_name="other")


def test_settings_port_is_used(paths: BrokerPaths) -> None:
    from tests.support.procs import fixed_port

    port = fixed_port()
    with start_api(FakeProvider(), paths, settings=ApiSettings(threads=2, port=port)) as server:
        assert server.port == port


def test_hello_proves_the_secret_bound_to_the_port(api: Api) -> None:
    import hashlib

    nonce = "n" * 32
    response = api.http.get("/v1/hello", headers={"X-MCP-Broker": "1", "X-MCP-Broker-Nonce": nonce})
    key = hashlib.sha256(api.secret.encode()).digest()

    assert response.json()["proof"] == client_side.hello_proof(key, api.port, nonce)
    assert response.json()["proof"] != client_side.hello_proof(key, api.port + 1, nonce)
    assert api.secret not in response.text


@pytest.mark.parametrize("nonce", ["", "short", "x" * 129, "bad nonce with spaces!"])
def test_hello_needs_a_proper_nonce(api: Api, nonce: str) -> None:
    response = api.http.get("/v1/hello", headers={"X-MCP-Broker": "1", "X-MCP-Broker-Nonce": nonce})
    assert response.status_code == 400
