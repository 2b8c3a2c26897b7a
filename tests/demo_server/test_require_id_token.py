"""``mcp-demo-server serve --require-id-token``: only Cognito ID tokens whose ``aud`` is the app
client, as AWS Bedrock AgentCore Gateway accepts them; access tokens get a clear 401.

The verifier with forged tokens (keys from a real JWKS server on 127.0.0.1), and the whole gate
through the ASGI app."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest

from demo_server.resource import ResourceSettings, create_app
from demo_server.resource.jwks import JwksCache
from demo_server.resource.verifier import JwtTokenVerifier
from tests.support.jwt_issuer import JwksServer

# A JWKS served over real HTTP on 127.0.0.1.
pytestmark = pytest.mark.integration

RESOURCE = "http://127.0.0.1:8000/mcp"


@pytest.fixture(scope="module")
def jwks() -> Iterator[JwksServer]:
    with JwksServer() as server:
        yield server


def settings(jwks: JwksServer, **overrides: Any) -> ResourceSettings:
    options: dict[str, Any] = {
        "issuer": jwks.issuer,
        "jwks_url": jwks.jwks_url,
        "require_id_token": True,
        **overrides,
    }
    return ResourceSettings(**options)


def verify(jwks: JwksServer, token: str, **overrides: Any) -> Any:
    config = settings(jwks, **overrides)
    keys = JwksCache(config.issuer, config.jwks_url, config.jwks_refetch_interval)
    return asyncio.run(JwtTokenVerifier(config, keys).verify_token(token))


def id_token(jwks: JwksServer, **overrides: Any) -> str:
    """Cognito ID-token claims: aud = the app client, token_use=id, cognito:username, no scope."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": "0f1e2d3c-demo-user",
        "iss": jwks.issuer,
        "aud": "demo-broker",
        "token_use": "id",
        "cognito:username": "demo",
        "auth_time": now,
        "exp": now + 600,
        "iat": now,
        "email": "demo@example.com",
        **overrides,
    }
    return jwks.issuer_obj.sign({k: v for k, v in claims.items() if v is not None})


def test_an_id_token_for_the_app_client_is_accepted_with_the_tools_scope(
    jwks: JwksServer,
) -> None:
    access = verify(jwks, id_token(jwks))

    assert access is not None
    assert access.client_id == "demo-broker" and access.subject == "0f1e2d3c-demo-user"
    assert access.scopes == [f"{RESOURCE}/tools"]  # never admin: an ID token has no scopes
    assert access.claims["cognito:username"] == "demo"


@pytest.mark.parametrize(
    "overrides",
    [
        {"aud": "another-app"},
        {"aud": None},
        {"token_use": "access"},
        {"token_use": None},
        {"iss": "http://127.0.0.1:1/other"},
        {"exp": int(time.time()) - 3600},
    ],
    ids=["other-aud", "no-aud", "token_use-access", "no-token_use", "other-iss", "expired"],
)
def test_anything_else_is_refused(jwks: JwksServer, overrides: dict[str, Any]) -> None:
    assert verify(jwks, id_token(jwks, **overrides)) is None


def test_an_access_token_is_refused(jwks: JwksServer) -> None:
    assert verify(jwks, jwks.issuer_obj.token(RESOURCE)) is None
    assert verify(jwks, jwks.issuer_obj.token(RESOURCE, aud="demo-broker")) is None


def test_without_the_option_an_id_token_is_refused_and_access_tokens_work(
    jwks: JwksServer,
) -> None:
    assert verify(jwks, id_token(jwks), require_id_token=False) is None
    assert verify(jwks, jwks.issuer_obj.token(RESOURCE), require_id_token=False) is not None


def call(jwks: JwksServer, token: str) -> httpx2.Response:
    app = create_app(settings(jwks))

    async def run() -> httpx2.Response:
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as c:
            return await c.post(
                "/mcp",
                json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
                headers={
                    "Authorization": f"Bearer {token}",
                    "Accept": "application/json, text/event-stream",
                },
            )

    return asyncio.run(run())


def test_the_gate_answers_an_access_token_with_a_401_that_says_why(jwks: JwksServer) -> None:
    access_token = jwks.issuer_obj.token(RESOURCE)

    response = call(jwks, access_token)

    assert response.status_code == 401
    challenge = response.headers["WWW-Authenticate"]
    assert 'error="invalid_token"' in challenge
    assert "accepts only ID tokens" in challenge and "aud is the app client id" in challenge
    assert access_token not in response.text and access_token not in challenge
