"""The local authorization server can be restarted at once on the same port (the demo and the
tests do): connections of the last run left in TIME_WAIT must not hold the port for a minute.
POSIX ``SO_REUSEADDR`` allows that and still never lets two servers listen on one port."""

from __future__ import annotations

import socket

import httpx2
import pytest

from demo_server.idp import IdpSettings, start
from demo_server.idp.keys import SigningKeys

pytestmark = pytest.mark.integration


def test_a_stopped_server_restarts_at_once_on_the_same_port() -> None:
    keys = SigningKeys.generate()
    first = start(IdpSettings(port=0, keys=keys, demo_password="x"))
    port = int(first.url.rsplit(":", 1)[1])
    with httpx2.Client(trust_env=False) as client:  # open connections: closed by the server
        for _ in range(3):
            assert client.get(f"{first.issuer}/.well-known/jwks.json").status_code == 200
        first.close()

    second = start(IdpSettings(port=port, keys=keys, demo_password="x"))
    try:
        assert httpx2.get(f"{second.issuer}/.well-known/jwks.json").status_code == 200
        with socket.socket() as rival, pytest.raises(OSError):
            rival.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            rival.bind(("127.0.0.1", port))
            rival.listen()  # never two listeners on one port
    finally:
        second.close()
