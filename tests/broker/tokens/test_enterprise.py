"""Enterprise-managed authorization's tokens: an ID-JAG exchanged from the IdP sign-in's ID token
and redeemed with the JWT bearer grant, anew for each token; the IdP sign-in refreshed when its
ID token is stale; a refused ID token asks for one IdP sign-in. Recorded exchanges, no network."""

from __future__ import annotations

import base64
import dataclasses
import json
import time
from pathlib import Path
from urllib.parse import parse_qs

import httpx2
import pytest

from broker.config import Config, ServerConfig, machine_credential_owner
from broker.errors import InteractionRequired
from broker.idps import IdpConfig
from broker.oauth.as_metadata import AuthServer
from broker.oauth.discovery import Discovered
from broker.oauth.providers import GENERIC
from broker.store.memory import MemoryTokenStore
from broker.tokens.auth_servers import AuthServerCache
from broker.tokens.enterprise import AssertionGrants
from broker.tokens.grant import RefreshGrant
from broker.tokens.tokenset import ID_JAG, TokenKey, TokenSet

IDP_ISSUER = "https://idp.example"
AS_ISSUER = "https://as.example/pool"
URL = "https://mcp.example/mcp"
IDP = IdpConfig("corp", IDP_ISSUER, "broker")
SERVER = ServerConfig(URL, client_id="ent", enterprise="corp", issuer=AS_ISSUER)
FOUND = Discovered(URL, URL, AuthServer(AS_ISSUER, f"{AS_ISSUER}/a", f"{AS_ISSUER}/t", GENERIC))
IDP_METADATA = {
    "issuer": IDP_ISSUER,
    "authorization_endpoint": f"{IDP_ISSUER}/authorize",
    "token_endpoint": f"{IDP_ISSUER}/token",
    "response_types_supported": ["code"],
}


def jwt(claims: dict[str, object]) -> str:
    part = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"eyJhbGciOiJub25lIn0.{part}.sig"


class IdpAndAs:
    """The IdP (metadata, token exchange) and the MCP server's authorization server."""

    def __init__(self, exchange_error: str | None = None) -> None:
        self.sent: list[tuple[str, dict[str, list[str]]]] = []
        self.exchange_error = exchange_error

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        url = str(request.url)
        if request.method == "GET":
            if url == f"{IDP_ISSUER}/.well-known/oauth-authorization-server":
                return httpx2.Response(200, json=IDP_METADATA)
            return httpx2.Response(404)
        fields = parse_qs(request.content.decode())
        self.sent.append((url, fields))
        if url == f"{IDP_ISSUER}/token":
            if self.exchange_error:
                return httpx2.Response(400, json={"error": self.exchange_error})
            jag = jwt({"jti": str(len(self.sent)), "exp": time.time() + 300})
            body = {"access_token": jag, "issued_token_type": fields["requested_token_type"][0]}
            return httpx2.Response(200, json={**body, "token_type": "N_A"})
        access = f"CANARY-at-{len(self.sent)}"
        return httpx2.Response(200, json={"access_token": access, "token_type": "Bearer"})

    def grants(self) -> list[str]:
        return [fields["grant_type"][0].rsplit(":", 1)[-1] for _, fields in self.sent]


class Session:
    """The IdP sign-in as the token service hands it out; ``force`` refreshes it."""

    def __init__(self, id_tokens: list[str | None]) -> None:
        self.id_tokens = id_tokens
        self.calls: list[bool] = []

    def __call__(self, key: TokenKey, force: bool) -> TokenSet:
        assert key == IDP.key
        self.calls.append(force)
        if not self.id_tokens:
            raise InteractionRequired("not signed in")
        id_token = self.id_tokens.pop(0) if force or len(self.id_tokens) > 1 else self.id_tokens[0]
        return TokenSet(key, "CANARY-idp-at", time.time() + 3600, id_token=id_token)


def grants(tmp_path: Path, send: IdpAndAs, session: Session) -> AssertionGrants:
    config = Config(tmp_path / "c.toml", servers=(SERVER,), idps=(IDP,))
    secrets = MemoryTokenStore()
    secrets.put_client_secret(machine_credential_owner(URL), "ent", "CANARY-secret")
    return AssertionGrants(send, AuthServerCache(tmp_path), secrets, lambda: config, session)


def fresh_id_token() -> str:
    return jwt({"exp": time.time() + 3600})


def test_each_token_is_a_new_exchange_and_jwt_bearer_grant(tmp_path: Path) -> None:
    send = IdpAndAs()
    assertions = grants(tmp_path, send, Session([fresh_id_token()]))
    first = assertions.tokens(SERVER, FOUND, "mcp/tools")
    renewed = assertions.renew(SERVER, FOUND, first)
    assert send.grants() == ["token-exchange", "jwt-bearer"] * 2
    exchange, redeem = send.sent[0][1], send.sent[1][1]
    assert exchange["audience"] == [AS_ISSUER] and exchange["resource"] == [URL]
    assert redeem["assertion"][0].count(".") == 2
    assert send.sent[1][1]["assertion"] != send.sent[3][1]["assertion"]  # single-use
    assert first.grant == renewed.grant == ID_JAG and first.renewable
    assert first.refresh_token is None and first.key == TokenKey(AS_ISSUER, "ent", URL)


def test_a_stale_id_token_refreshes_the_idp_sign_in_first(tmp_path: Path) -> None:
    stale = jwt({"exp": time.time() + 5})
    fresh = fresh_id_token()
    send = IdpAndAs()
    session = Session([stale, fresh])
    grants(tmp_path, send, session).tokens(SERVER, FOUND, None)
    assert session.calls == [False, True]
    assert send.sent[0][1]["subject_token"] == [fresh]


def test_without_a_current_id_token_the_user_is_told_to_sign_in_at_the_idp(
    tmp_path: Path,
) -> None:
    stale = jwt({"exp": time.time() + 5})
    send = IdpAndAs()
    with pytest.raises(InteractionRequired, match="mcp-broker idp login corp"):
        grants(tmp_path, send, Session([stale, stale])).tokens(SERVER, FOUND, None)
    with pytest.raises(InteractionRequired, match="mcp-broker idp login corp"):
        grants(tmp_path, send, Session([])).tokens(SERVER, FOUND, None)
    assert send.sent == []  # nothing was exchanged


def test_an_id_token_the_idp_refuses_asks_for_one_idp_sign_in(tmp_path: Path) -> None:
    send = IdpAndAs(exchange_error="invalid_grant")
    with pytest.raises(InteractionRequired, match="mcp-broker idp login corp") as caught:
        grants(tmp_path, send, Session([fresh_id_token()])).tokens(SERVER, FOUND, None)
    assert "CANARY" not in str(caught.value)
    assert send.grants() == ["token-exchange"]  # no JWT bearer grant without an ID-JAG


def test_the_refresh_grant_renews_an_id_jag_set_through_the_assertion_grants(
    tmp_path: Path,
) -> None:
    send = IdpAndAs()
    assertions = grants(tmp_path, send, Session([fresh_id_token()]))
    cache = AuthServerCache(tmp_path)
    cache.put(FOUND.auth_server)
    refresh = RefreshGrant(
        send, cache, lambda: (SERVER,), MemoryTokenStore(), assertions=assertions
    )
    old = TokenSet(TokenKey(AS_ISSUER, "ent", URL), "CANARY-old", time.time(), grant=ID_JAG)
    new = refresh(old)
    assert send.grants() == ["token-exchange", "jwt-bearer"]
    assert new.access_token != old.access_token and new.grant == ID_JAG


def test_the_refresh_grant_refreshes_an_idp_sign_in_without_resource(tmp_path: Path) -> None:
    sent: list[dict[str, list[str]]] = []

    def send(request: httpx2.Request) -> httpx2.Response:
        sent.append(parse_qs(request.content.decode()))
        body = {"access_token": "CANARY-at2", "token_type": "Bearer", "id_token": "a.b.c"}
        return httpx2.Response(200, json=body)

    config = Config(tmp_path / "c.toml", idps=(IDP,))
    cache = AuthServerCache(tmp_path)
    cache.put(dataclasses.replace(FOUND.auth_server, issuer=IDP_ISSUER))
    secrets = MemoryTokenStore()
    assertions = AssertionGrants(send, cache, secrets, lambda: config, Session([]))
    refresh = RefreshGrant(send, cache, lambda: (), secrets, assertions=assertions)
    old = TokenSet(IDP.key, "CANARY-at1", time.time(), refresh_token="CANARY-rt")
    new = refresh(old)
    assert sent == [
        {"grant_type": ["refresh_token"], "refresh_token": ["CANARY-rt"], "client_id": ["broker"]}
    ]
    assert new.id_token == "a.b.c" and new.refresh_token == "CANARY-rt"


def test_readiness_is_checked_without_any_request(tmp_path: Path) -> None:
    send = IdpAndAs()
    with pytest.raises(InteractionRequired, match="mcp-broker idp login corp"):
        grants(tmp_path, send, Session([])).check_ready(SERVER)
    grants(tmp_path, send, Session([fresh_id_token()])).check_ready(SERVER)
    assert send.sent == []
