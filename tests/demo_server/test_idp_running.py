"""``start()`` serves the authorization server over real HTTP on 127.0.0.1 and stops cleanly."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import httpx2
import pytest

from demo_server.idp import IdpSettings, RunningIdp, start
from demo_server.idp.keys import SigningKeys

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def keys() -> SigningKeys:
    return SigningKeys.generate()


@pytest.fixture
def running(keys: SigningKeys) -> Iterator[RunningIdp]:
    idp = start(IdpSettings(port=0, keys=keys, demo_password="pw-for-running-test"))
    try:
        yield idp
    finally:
        idp.close()


def test_issuer_names_the_port_actually_bound(running: RunningIdp) -> None:
    port = int(running.url.rsplit(":", 1)[1])
    assert port != 0
    assert running.issuer == f"http://127.0.0.1:{port}/us-east-1_Demo00001"
    doc = httpx2.get(f"{running.issuer}/.well-known/openid-configuration").json()
    assert doc["issuer"] == running.issuer
    assert doc["token_endpoint"] == f"{running.url}/oauth2/token"


def test_demo_password_is_exposed_for_the_stack(running: RunningIdp) -> None:
    assert running.demo_password == "pw-for-running-test"


def test_listening_socket_is_bound_to_loopback_only(running: RunningIdp) -> None:
    port = int(running.url.rsplit(":", 1)[1])
    listener = running.server.socket  # type: ignore[attr-defined]
    assert listener.getsockname() == ("127.0.0.1", port)


def test_close_stops_serving_and_leaves_no_threads(keys: SigningKeys) -> None:
    before = set(threading.enumerate())
    idp = start(IdpSettings(port=0, keys=keys, demo_password="x"))
    with httpx2.Client() as client:  # a kept-alive connection must not keep the server alive
        assert client.get(f"{idp.issuer}/.well-known/jwks.json").status_code == 200
        idp.close()
    assert set(threading.enumerate()) - before == set()
    port = int(idp.url.rsplit(":", 1)[1])
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0


def test_start_refuses_a_non_loopback_host(keys: SigningKeys) -> None:
    with pytest.raises(ValueError, match=r"127\.0\.0\.1"):
        start(IdpSettings(host="0.0.0.0", port=0, keys=keys))
