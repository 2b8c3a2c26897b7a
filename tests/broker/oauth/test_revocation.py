"""Refresh token revocation on sign-out (RFC 7009 §2.1, §2.2)."""

from __future__ import annotations

import base64
from urllib.parse import parse_qs

import httpx2
import pytest

from broker.errors import ServerUnreachable, TokenRequestFailed
from broker.oauth.as_metadata import AuthServer
from broker.oauth.providers import COGNITO
from broker.oauth.registration import ClientCredentials
from broker.oauth.revocation import build_revocation_request, handle_revocation_response

ISSUER = "https://auth.example.com"
SERVER = AuthServer(
    ISSUER,
    f"{ISSUER}/authorize",
    f"{ISSUER}/token",
    COGNITO,
    revocation_endpoint=f"{ISSUER}/revoke",
)
REFRESH = "CANARY-refresh-token"


def test_a_public_client_sends_the_refresh_token_with_a_hint_and_its_id() -> None:
    request = build_revocation_request(SERVER, ClientCredentials("pub", ISSUER), REFRESH)

    assert (request.method, str(request.url)) == ("POST", f"{ISSUER}/revoke")
    assert parse_qs(request.content.decode()) == {
        "token": [REFRESH],
        "token_type_hint": ["refresh_token"],
        "client_id": ["pub"],
    }
    assert "authorization" not in request.headers


def test_a_confidential_client_authenticates_as_at_the_token_endpoint() -> None:
    client = ClientCredentials("conf", ISSUER, client_secret="s3cret")
    request = build_revocation_request(SERVER, client, REFRESH)

    expected = base64.b64encode(b"conf:s3cret").decode()
    assert request.headers["authorization"] == f"Basic {expected}"
    assert "s3cret" not in request.content.decode()


def test_a_server_without_a_revocation_endpoint_is_not_asked() -> None:
    bare = AuthServer(ISSUER, f"{ISSUER}/authorize", f"{ISSUER}/token", COGNITO)
    with pytest.raises(ValueError, match="no revocation endpoint"):
        build_revocation_request(bare, ClientCredentials("pub", ISSUER), REFRESH)


def answer(status: int) -> httpx2.Response:
    return httpx2.Response(status, request=httpx2.Request("POST", f"{ISSUER}/revoke"))


def test_200_is_success_even_for_an_unknown_token() -> None:
    handle_revocation_response(answer(200))  # RFC 7009 §2.2: no error for invalid tokens


@pytest.mark.parametrize("status", [500, 502, 503, 429])
def test_server_errors_may_pass(status: int) -> None:
    with pytest.raises(ServerUnreachable, match=str(status)):
        handle_revocation_response(answer(status))


@pytest.mark.parametrize("status", [400, 401, 403])
def test_a_refusal_is_a_failed_request(status: int) -> None:
    with pytest.raises(TokenRequestFailed) as refused:
        handle_revocation_response(answer(status))
    assert refused.value.status_code == status
