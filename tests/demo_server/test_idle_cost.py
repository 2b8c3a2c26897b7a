"""The demo servers cost nothing while nobody asks: the authorization server's waitress loop
blocks until there is work (a fractional loop timeout would become 0, a full core), and the demo
MCP server's uvicorn loop wakes once a second instead of ten times. Both still stop at once."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest

from demo_server.idp import IdpSettings, start
from demo_server.idp.keys import SigningKeys
from demo_server.resource import ResourceSettings
from demo_server.resource import start as start_resource
from tests.support.cpu import assert_idle

pytestmark = pytest.mark.integration


def test_an_idle_authorization_server_blocks_and_burns_no_cpu() -> None:
    idp = start(IdpSettings(port=0, keys=SigningKeys.generate(), demo_password="x"))
    try:
        server: Any = idp.server
        assert server.adj.asyncore_loop_timeout > 0  # the live server's, after waitress parsed it
        metadata = f"{idp.issuer}/.well-known/openid-configuration"
        assert httpx2.get(metadata, timeout=10, trust_env=False).status_code == 200
        assert_idle(idp.thread)
    finally:
        idp.close()
    assert not idp.thread.is_alive()


def test_an_idle_demo_mcp_server_wakes_at_most_once_a_second_and_still_stops() -> None:
    server = start_resource(ResourceSettings(port=0, issuer="http://127.0.0.1:9/pool"))
    try:
        answer = httpx2.get(server.url, timeout=10, trust_env=False)
        assert answer.status_code == 401  # it serves (and asks for a token)
        assert_idle(server._thread)
    finally:
        server.close()
    assert not server.running
