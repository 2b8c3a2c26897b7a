"""A server set to receive the ID token (``send = "id-token"``) through the one sign-in flow:
the sign-in asks for ``openid`` besides the server's scope, and the tokens kept expire with the
ID token when it expires first; without the setting nothing changes."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest

from broker.config import Config, ServerConfig
from broker.errors import InteractionRequired
from broker.signin.flow import SignInFlow
from broker.store import MemoryTokenStore
from broker.tokens.auth_servers import AuthServerCache
from broker.tokens.service import TokenService
from tests.broker.signin.test_flow import ONE, WAIT, World, refresh_not_expected
from tests.broker.test_send_id_token import id_token

pytestmark = pytest.mark.integration  # the real loopback callback listener


class IdWorld(World):
    """Issues an ID token with ``openid`` (``issue_id_token`` False: never)."""

    def __init__(self) -> None:
        super().__init__()
        self.scopes: list[str] = []
        self.issue_id_token = True
        self.id_exp = int(time.time()) + 600  # before the access token's hour

    def open(self, url: str) -> bool:
        self.scopes.append(parse_qs(urlsplit(url).query).get("scope", [""])[0])
        return super().open(url)

    def send(self, request: httpx2.Request) -> httpx2.Response:
        response = super().send(request)
        if str(request.url).endswith("/token") and self.issue_id_token:
            body = json.loads(response.content)
            if "openid" in body.get("scope", "").split():
                body["id_token"] = id_token(self.id_exp)
            return httpx2.Response(200, json=body, request=request)
        return response


def flow_for(world: IdWorld, tmp_path: Path, server: ServerConfig) -> SignInFlow:
    config = [Config(tmp_path / "config.toml", servers=(server,))]

    def lookup(url: str) -> ServerConfig:
        found = config[0].get_server(url)
        assert found is not None
        return found

    def update(change: Any) -> None:
        config[0] = change(config[0])

    store = MemoryTokenStore()
    return SignInFlow(
        send=world.send,
        head_of=world.head_of,
        service=TokenService(store, refresh_not_expected),
        auth_servers=AuthServerCache(tmp_path),
        secrets=store,
        server=lookup,
        update_config=update,
        opener=world.open,
        timeout=WAIT,
    )


def test_the_sign_in_asks_for_openid_and_keeps_the_id_tokens_expiry(tmp_path: Path) -> None:
    world = IdWorld()
    tokens = flow_for(world, tmp_path, ServerConfig(ONE, send="id-token")).sign_in(ONE)

    assert world.scopes[0].split() == ["mcp:basic", "openid"]
    assert tokens.id_token == id_token(world.id_exp)
    assert tokens.expires_at == world.id_exp  # earlier than the access token's


def test_without_the_setting_openid_is_not_asked_for(tmp_path: Path) -> None:
    world = IdWorld()
    tokens = flow_for(world, tmp_path, ServerConfig(ONE)).sign_in(ONE)

    assert world.scopes[0].split() == ["mcp:basic"]
    assert tokens.id_token is None and tokens.expires_at > world.id_exp


def test_a_sign_in_that_brings_no_id_token_fails_for_such_a_server(tmp_path: Path) -> None:
    world = IdWorld()
    world.issue_id_token = False
    with pytest.raises(InteractionRequired, match="no ID token"):
        flow_for(world, tmp_path, ServerConfig(ONE, send="id-token")).sign_in(ONE)
