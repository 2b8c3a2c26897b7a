from __future__ import annotations

from dataclasses import replace
from urllib.parse import parse_qs, urlsplit

from broker.oauth.as_metadata import AuthServer
from broker.oauth.authorize import build_authorization_request
from broker.oauth.providers import GENERIC
from broker.oauth.registration import ClientCredentials

ISSUER = "https://auth.example.com"
SERVER = AuthServer(
    issuer=ISSUER,
    authorization_endpoint=f"{ISSUER}/oauth2/authorize?tenant=t1",
    token_endpoint=f"{ISSUER}/token",
    profile=GENERIC,
)
CLIENT = ClientCredentials("client-1", ISSUER)
REDIRECT = "http://127.0.0.1:53682/callback"


def query(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


def test_authorization_url_carries_pkce_state_resource_and_scope() -> None:
    request = build_authorization_request(
        SERVER, CLIENT, REDIRECT, "files:read offline_access", "https://mcp.example.com/mcp"
    )
    params = query(request.url)
    assert request.url.startswith(f"{ISSUER}/oauth2/authorize?")
    assert params["tenant"] == ["t1"]  # the endpoint's own query is kept
    assert params["response_type"] == ["code"]
    assert params["client_id"] == ["client-1"]
    assert params["redirect_uri"] == [REDIRECT]
    assert params["state"] == [request.state]
    assert params["code_challenge"] == [request.pkce.challenge]
    assert params["code_challenge_method"] == ["S256"]
    assert params["scope"] == ["files:read offline_access"]
    assert params["resource"] == ["https://mcp.example.com/mcp"]
    assert request.pkce.verifier not in request.url


def test_scope_and_resource_are_left_out_when_absent() -> None:
    params = query(build_authorization_request(SERVER, CLIENT, REDIRECT, None, None).url)
    assert "scope" not in params and "resource" not in params


def test_request_remembers_what_the_callback_check_needs() -> None:
    server = replace(SERVER, iss_parameter_supported=True)
    request = build_authorization_request(server, CLIENT, REDIRECT, None, None)
    assert request.issuer == ISSUER and request.iss_required
    assert request.state not in repr(request) and request.pkce.verifier not in repr(request)
