"""A machine identity's tokens: the client credentials grant and their renewal without a
refresh token."""

from __future__ import annotations

import dataclasses
import json
from urllib.parse import parse_qs

import httpx2
import pytest

from broker.config import ServerConfig, machine_credential_owner
from broker.errors import InteractionRequired
from broker.oauth.as_metadata import AuthServer
from broker.oauth.discovery import Discovered
from broker.oauth.providers import GENERIC
from broker.store.codec import decode_tokens, encode_tokens
from broker.store.memory import MemoryTokenStore
from broker.tokens.backoff import Backoff
from broker.tokens.machine import client_credentials_tokens, machine_client, machine_scope
from broker.tokens.service import TokenService
from broker.tokens.tokenset import CLIENT_CREDENTIALS
from tests.broker.tokens.service_fakes import KEY, FakeClock, FakeGrant, make_tokens

ISSUER = "https://as.example/pool"
URL = "https://mcp.example/mcp"
SECRET = "CANARY-machine-secret"
FOUND = Discovered(URL, URL, AuthServer(ISSUER, f"{ISSUER}/authorize", f"{ISSUER}/token", GENERIC))


def test_machine_scope_drops_user_scopes() -> None:
    assert machine_scope("openid mcp/tools offline_access profile mcp/read") == "mcp/tools mcp/read"
    assert machine_scope("openid") is None
    assert machine_scope(None) is None


def test_one_client_credentials_request_gives_renewable_tokens_without_refresh_token() -> None:
    sent: list[httpx2.Request] = []

    def send(request: httpx2.Request) -> httpx2.Response:
        sent.append(request)
        body = {
            "access_token": "CANARY-at",
            "token_type": "Bearer",
            "expires_in": 3600,
            "refresh_token": "CANARY-rt-not-kept",
        }
        return httpx2.Response(200, content=json.dumps(body).encode())

    server = ServerConfig(URL, client_id="demo-m2m", grant="client_credentials")
    secrets = MemoryTokenStore()
    secrets.put_client_secret(machine_credential_owner(URL), "demo-m2m", SECRET)
    client = machine_client(server, ISSUER, secrets)
    assert client.client_secret == SECRET and client.issuer == ISSUER
    tokens = client_credentials_tokens(send, FOUND, client, "openid mcp/tools")
    fields = parse_qs(sent[0].content.decode())
    assert fields == {
        "grant_type": ["client_credentials"],
        "scope": ["mcp/tools"],
        "resource": [URL],
    }
    assert sent[0].headers["authorization"].startswith("Basic ")
    assert tokens.refresh_token is None
    assert tokens.grant == CLIENT_CREDENTIALS and tokens.renewable
    assert tokens.key.client_id == "demo-m2m"


def test_a_machine_without_its_secret_in_the_keyring_says_how_to_add_it() -> None:
    server = ServerConfig(URL, client_id="demo-m2m", grant="client_credentials")
    with pytest.raises(InteractionRequired, match="--client-credentials"):
        machine_client(server, ISSUER, MemoryTokenStore())


def test_private_key_jwt_machine_client() -> None:
    server = ServerConfig(
        URL, client_id="m", grant="client_credentials", client_auth="private_key_jwt"
    )
    secrets = MemoryTokenStore()
    secrets.put_client_secret(machine_credential_owner(URL), "m", "PEM")
    client = machine_client(server, ISSUER, secrets)
    assert client.private_key == "PEM" and client.client_secret is None


def test_grant_and_id_token_survive_the_keyring_codec() -> None:
    clock = FakeClock()
    tokens = dataclasses.replace(
        make_tokens(clock, refresh=None), grant=CLIENT_CREDENTIALS, id_token="CANARY-id"
    )
    again = decode_tokens(encode_tokens(tokens), KEY)
    assert again == tokens
    assert "CANARY-id" not in repr(again)


def test_the_service_renews_machine_tokens_before_expiry_without_a_refresh_token() -> None:
    clock = FakeClock()
    store = MemoryTokenStore()
    stored = dataclasses.replace(
        make_tokens(clock, lifetime=3600, age=3550, refresh=None), grant=CLIENT_CREDENTIALS
    )
    store.put(stored)
    grant = FakeGrant(clock)
    service = TokenService(store, grant, clock=clock, backoff=Backoff(base=10, cap=60))  # type: ignore[arg-type]
    assert service.refresh_in(KEY) is not None
    fresh = service.get_token(KEY, min_valid=60)
    assert grant.calls == 1
    assert fresh.access_token != stored.access_token
    assert fresh.grant == CLIENT_CREDENTIALS  # kept across renewals


def test_a_persons_tokens_without_refresh_token_still_need_the_user() -> None:
    clock = FakeClock()
    store = MemoryTokenStore()
    store.put(make_tokens(clock, lifetime=3600, age=3700, refresh=None))  # expired
    grant = FakeGrant(clock)
    service = TokenService(store, grant, clock=clock, backoff=Backoff(base=10, cap=60))  # type: ignore[arg-type]
    assert service.refresh_in(KEY) is None
    with pytest.raises(InteractionRequired):
        service.get_token(KEY, min_valid=60)
    assert grant.calls == 0
