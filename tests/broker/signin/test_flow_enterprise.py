"""Enterprise-managed servers through the one flow: the first token of each server from the IdP
sign-in (token exchange, then JWT bearer grant) with no browser; a step-up asks the ID-JAG for
the union of scopes; without the IdP sign-in, a token asked without a person fails at once."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx2
import pytest

from broker.config import Config, ServerConfig, machine_credential_owner
from broker.errors import InteractionRequired
from broker.idps import IdpConfig
from broker.signin.flow import SignInFlow
from broker.store import MemoryTokenStore
from broker.tokens.auth_servers import AuthServerCache
from broker.tokens.enterprise import AssertionGrants
from broker.tokens.service import TokenService
from broker.tokens.tokenset import ID_JAG, TokenSet
from tests.broker.signin.test_flow import ISSUER, ONE, TWO, World, refresh_not_expected

IDP = IdpConfig("corp", "https://idp.example.com", "broker")
EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"


def id_token() -> str:
    claims = json.dumps({"exp": time.time() + 3600}).encode()
    return "e30." + base64.urlsafe_b64encode(claims).rstrip(b"=").decode() + ".sig"


class EnterpriseWorld(World):
    def __init__(self) -> None:
        super().__init__()
        self.posts: list[dict[str, str]] = []

    def send(self, request: httpx2.Request) -> httpx2.Response:
        url = str(request.url)
        if url == f"{IDP.issuer}/.well-known/oauth-authorization-server":
            body = {
                "issuer": IDP.issuer,
                "authorization_endpoint": f"{IDP.issuer}/authorize",
                "token_endpoint": f"{IDP.issuer}/token",
            }
            return httpx2.Response(200, json=body, request=request)
        if request.method != "POST" or url not in (f"{IDP.issuer}/token", f"{ISSUER}/token"):
            return super().send(request)
        form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
        self.posts.append(form)
        if form["grant_type"] == EXCHANGE:
            body = {
                "access_token": f"jag.{len(self.posts)}.sig",
                "issued_token_type": form["requested_token_type"],
                "token_type": "N_A",
            }
        else:
            body = {"access_token": f"at-{len(self.posts)}", "token_type": "Bearer"}
        return httpx2.Response(200, json=body, request=request)


def flow_for(tmp_path: Path, world: EnterpriseWorld, store: MemoryTokenStore) -> SignInFlow:
    servers = tuple(ServerConfig(u, client_id="ent", enterprise="corp") for u in (ONE, TWO))
    config = [Config(tmp_path / "config.toml", servers=servers, idps=(IDP,))]
    for url in (ONE, TWO):
        store.put_client_secret(machine_credential_owner(url), "ent", "CANARY-secret")

    def server(url: str) -> ServerConfig:
        found = config[0].get_server(url)
        assert found is not None
        return found

    def update(change: Any) -> None:
        config[0] = change(config[0])

    def no_browser(url: str) -> bool:
        raise AssertionError("no browser for an enterprise server once the IdP sign-in is there")

    service = TokenService(store, refresh_not_expected)
    cache = AuthServerCache(tmp_path)
    assertions = AssertionGrants(
        world.send, cache, store, lambda: config[0], lambda key, force: service.get_token(key)
    )
    return SignInFlow(
        send=world.send,
        head_of=world.head_of,
        service=service,
        auth_servers=cache,
        secrets=store,
        server=server,
        update_config=update,
        opener=no_browser,
        timeout=5,
        assertions=assertions,
    )


def test_two_servers_get_tokens_from_one_idp_sign_in(tmp_path: Path) -> None:
    world, store = EnterpriseWorld(), MemoryTokenStore()
    store.put(TokenSet(IDP.key, "idp-at", time.time() + 3600, id_token=id_token()))
    flow = flow_for(tmp_path, world, store)
    first = flow.sign_in(ONE)
    second = flow.without_person(TWO)
    grants = [form["grant_type"].rsplit(":", 1)[-1] for form in world.posts]
    assert grants == ["token-exchange", "jwt-bearer"] * 2
    assert [f["resource"] for f in world.posts if "audience" in f] == [ONE, TWO]
    assert all(f["audience"] == ISSUER for f in world.posts if "audience" in f)
    assert first.grant == second.grant == ID_JAG and world.opened == []
    assert store.get(second.key) == second

    flow.sign_in(ONE, extra_scope="mcp:admin")  # a step-up: the ID-JAG asks for both
    assert set(world.posts[-2]["scope"].split()) == {"mcp:basic", "mcp:admin"}


def test_without_the_idp_sign_in_a_token_fails_at_once(tmp_path: Path) -> None:
    world = EnterpriseWorld()
    flow = flow_for(tmp_path, world, MemoryTokenStore())
    with pytest.raises(InteractionRequired, match="mcp-broker idp login corp"):
        flow.without_person(ONE)
    assert world.posts == [] and world.token_requests == 0
