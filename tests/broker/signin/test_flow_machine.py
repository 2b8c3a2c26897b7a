"""A machine identity through the one flow and the one grant object: the first token from
``SignInFlow`` (client credentials, no browser), the next from ``RefreshGrant``."""

from __future__ import annotations

import base64
import dataclasses
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote

import httpx2

from broker.config import Config, ServerConfig, machine_credential_owner
from broker.signin.flow import SignInFlow
from broker.store import MemoryTokenStore
from broker.tokens.auth_servers import AuthServerCache
from broker.tokens.grant import RefreshGrant
from broker.tokens.service import TokenService
from broker.tokens.tokenset import CLIENT_CREDENTIALS
from tests.broker.signin.test_flow import ISSUER, ONE, World, refresh_not_expected

SECRET = "CANARY-m2m secret:1"


class MachineWorld(World):
    def __init__(self) -> None:
        super().__init__()
        self.grants: list[dict[str, str]] = []

    def send(self, request: httpx2.Request) -> httpx2.Response:
        if str(request.url) != f"{ISSUER}/token":
            return super().send(request)
        form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
        user, _, password = (
            base64.b64decode(request.headers["authorization"].split()[1]).decode().partition(":")
        )
        assert (unquote(user), unquote(password)) == ("m2m", SECRET)
        self.grants.append(form)
        body = {
            "access_token": f"machine-{len(self.grants)}",
            "token_type": "Bearer",
            "expires_in": 3600,
        }
        return httpx2.Response(200, json=body, request=request)


def test_machine_token_from_the_flow_and_the_next_from_the_grant(tmp_path: Path) -> None:
    world = MachineWorld()
    store = MemoryTokenStore()
    store.put_client_secret(machine_credential_owner(ONE), "m2m", SECRET)
    machine = ServerConfig(ONE, client_id="m2m", grant="client_credentials")
    config = [Config(tmp_path / "config.toml", servers=(machine,))]

    def server(url: str) -> ServerConfig:
        found = config[0].get_server(url)
        assert found is not None
        return found

    def update(change: Any) -> None:
        config[0] = change(config[0])

    def no_browser(url: str) -> bool:
        raise AssertionError("a machine identity never opens a browser")

    cache = AuthServerCache(tmp_path)
    flow = SignInFlow(
        send=world.send,
        head_of=world.head_of,
        service=TokenService(store, refresh_not_expected),
        auth_servers=cache,
        secrets=store,
        server=server,
        update_config=update,
        opener=no_browser,
        timeout=5,
    )
    tokens = flow.sign_in(ONE)

    assert world.grants == [
        {"grant_type": "client_credentials", "scope": "mcp:basic", "resource": ONE}
    ]
    assert tokens.grant == CLIENT_CREDENTIALS and tokens.refresh_token is None
    assert tokens.key.client_id == "m2m" and tokens.key.resource == ONE
    assert config[0].servers[0].issuer == ISSUER  # pinned
    assert store.get(tokens.key) == tokens

    grant = RefreshGrant(world.send, cache, lambda: config[0].servers, store)
    renewed = grant(tokens)
    assert renewed.access_token == "machine-2"
    assert world.grants[1]["grant_type"] == "client_credentials"
    assert world.grants[1]["scope"] == "mcp:basic"
    assert dataclasses.replace(renewed, access_token="x").refresh_token is None
