"""The ID-JAG token exchange (RFC 8693) and the JWT bearer grant (RFC 7523) as built and judged."""

from __future__ import annotations

import base64
import json
from urllib.parse import parse_qs

import httpx2
import pytest

from broker.errors import InvalidGrant, TokenRequestFailed
from broker.oauth.as_metadata import AuthServer
from broker.oauth.idjag import (
    ID_JAG_TYPE,
    build_exchange_request,
    build_jwt_bearer_request,
    handle_exchange_response,
    id_token_fresh,
)
from broker.oauth.providers import GENERIC
from broker.oauth.registration import ClientCredentials

IDP = AuthServer("https://idp.example", "https://idp.example/a", "https://idp.example/t", GENERIC)
AS = AuthServer("https://as.example", "https://as.example/a", "https://as.example/t", GENERIC)


def jwt(claims: dict[str, object]) -> str:
    part = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"eyJhbGciOiJub25lIn0.{part}.sig"


def fields(request: httpx2.Request) -> dict[str, list[str]]:
    return parse_qs(request.content.decode())


def test_the_exchange_asks_for_an_id_jag_for_the_audience_and_resource() -> None:
    client = ClientCredentials("broker-at-idp", IDP.issuer)
    request = build_exchange_request(
        IDP, client, "CANARY-id", AS.issuer, "https://mcp.example/mcp", "tools"
    )
    assert str(request.url) == IDP.token_endpoint
    assert fields(request) == {
        "grant_type": ["urn:ietf:params:oauth:grant-type:token-exchange"],
        "requested_token_type": [ID_JAG_TYPE],
        "subject_token": ["CANARY-id"],
        "subject_token_type": ["urn:ietf:params:oauth:token-type:id_token"],
        "audience": [AS.issuer],
        "resource": ["https://mcp.example/mcp"],
        "scope": ["tools"],
        "client_id": ["broker-at-idp"],
    }


def test_the_jwt_bearer_grant_authenticates_a_confidential_client_with_basic() -> None:
    client = ClientCredentials("ent", AS.issuer, client_secret="CANARY-secret")
    request = build_jwt_bearer_request(AS, client, "CANARY-jag", None, "https://mcp.example/mcp")
    assert fields(request) == {
        "grant_type": ["urn:ietf:params:oauth:grant-type:jwt-bearer"],
        "assertion": ["CANARY-jag"],
        "resource": ["https://mcp.example/mcp"],
    }
    assert request.headers["authorization"].startswith("Basic ")


def test_a_workload_without_secret_sends_its_client_id_only() -> None:
    request = build_jwt_bearer_request(AS, ClientCredentials("wl", AS.issuer), "a.b.c", "s", None)
    assert fields(request)["client_id"] == ["wl"] and "authorization" not in request.headers


def test_an_exchange_answer_gives_the_id_jag_and_its_expiry() -> None:
    grant = jwt({"exp": 1234})
    body = {"access_token": grant, "issued_token_type": ID_JAG_TYPE, "token_type": "N_A"}
    jag = handle_exchange_response(httpx2.Response(200, json=body))
    assert jag.assertion == grant and jag.expires_at == 1234
    assert grant not in repr(jag)


@pytest.mark.parametrize(
    "body",
    [
        {"access_token": "x.y.z", "token_type": "Bearer"},  # no issued_token_type
        {"access_token": "x.y.z", "issued_token_type": "urn:ietf:params:oauth:token-type:jwt"},
        {"issued_token_type": ID_JAG_TYPE},
        [],
    ],
)
def test_an_answer_that_is_not_an_id_jag_is_refused(body: object) -> None:
    with pytest.raises(TokenRequestFailed):
        handle_exchange_response(httpx2.Response(200, json=body))


def test_a_refused_exchange_is_an_oauth_error() -> None:
    response = httpx2.Response(400, json={"error": "invalid_grant"})
    with pytest.raises(InvalidGrant):
        handle_exchange_response(response)


def test_id_token_freshness_reads_exp() -> None:
    assert id_token_fresh(jwt({"exp": 1000}), now=900, margin=60)
    assert not id_token_fresh(jwt({"exp": 1000}), now=950, margin=60)
    assert not id_token_fresh(None, now=0, margin=60)
