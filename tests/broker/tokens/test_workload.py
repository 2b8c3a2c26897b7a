"""Workload identity federation's tokens: the JWT read from its file for every token and redeemed
with the JWT bearer grant; a refusal names the file and, when the JWT there has expired, says so.
Recorded exchanges, no network."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from urllib.parse import parse_qs

import httpx2
import pytest

from broker.config import ServerConfig
from broker.errors import InvalidGrant
from broker.oauth.as_metadata import AuthServer
from broker.oauth.discovery import Discovered
from broker.oauth.providers import GENERIC
from broker.tokens.tokenset import WORKLOAD_JWT
from broker.tokens.workload import workload_tokens

AS_ISSUER = "https://as.example/pool"
URL = "https://mcp.example/mcp"
FOUND = Discovered(URL, URL, AuthServer(AS_ISSUER, f"{AS_ISSUER}/a", f"{AS_ISSUER}/t", GENERIC))


def jwt(claims: dict[str, object]) -> str:
    part = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"eyJhbGciOiJSUzI1NiJ9.{part}.CANARY-signature"


class AuthorizationServer:
    def __init__(self, error: str | None = None) -> None:
        self.error = error
        self.assertions: list[str] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        fields = parse_qs(request.content.decode())
        assert fields["grant_type"] == ["urn:ietf:params:oauth:grant-type:jwt-bearer"]
        assert fields["client_id"] == ["wl"] and "client_secret" not in fields
        self.assertions.append(fields["assertion"][0])
        if self.error:
            body = {"error": self.error, "error_description": "The workload JWT has expired."}
            return httpx2.Response(400, json=body)
        body = {"access_token": f"at-{len(self.assertions)}", "token_type": "Bearer"}
        return httpx2.Response(200, json={**body, "expires_in": 60})


def server(path: Path) -> ServerConfig:
    return ServerConfig(URL, client_id="wl", workload_token_file=str(path), issuer=AS_ISSUER)


def test_the_file_is_read_anew_for_each_token(tmp_path: Path) -> None:
    path = tmp_path / "token"
    send = AuthorizationServer()
    first, second = jwt({"sub": "a", "exp": time.time() + 600}), jwt({"sub": "b"})
    path.write_text(first + "\n")
    tokens = workload_tokens(send, server(path), FOUND, None)
    path.write_text(second)
    workload_tokens(send, server(path), FOUND, None)
    assert send.assertions == [first, second]
    assert tokens.grant == WORKLOAD_JWT and tokens.refresh_token is None
    assert tokens.key.resource == URL and tokens.access_token == "at-1"


@pytest.mark.parametrize(
    ("claims", "expected"),
    [
        ({"exp": 1_700_000_000}, "expired at 2023-11-14 22:13:20 UTC"),
        ({"exp": time.time() + 600}, "was not accepted"),
        ({}, "was not accepted"),
    ],
)
def test_a_refused_jwt_is_reported_with_its_file_and_never_shown(
    tmp_path: Path, claims: dict[str, object], expected: str
) -> None:
    path = tmp_path / "token"
    assertion = jwt(claims)
    path.write_text(assertion)
    with pytest.raises(InvalidGrant) as refused:
        workload_tokens(AuthorizationServer("invalid_grant"), server(path), FOUND, None)
    message = str(refused.value)
    assert refused.value.error == "invalid_grant" and refused.value.status_code == 400
    assert f"the workload JWT in {path} " in message and expected in message
    assert "reads the file again" in message
    assert "CANARY" not in message and assertion.split(".")[1] not in message
