"""Discovery stepped through recorded HTTP exchanges (no sockets)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx2
import pytest

from broker.errors import DiscoveryError, IssuerMismatch, ResourceMismatch
from broker.oauth.discovery import discover, drive
from broker.oauth.providers import COGNITO
from broker.oauth.www_authenticate import parse_bearer_challenge

SERVER = "https://mcp.example.com/mcp"
ISSUER = "https://auth.example.com"


@dataclass
class Recorded:
    """Answers requests from a script, asserting they come in the recorded order."""

    script: list[tuple[str, str, int, Any]]
    seen: list[str] = field(default_factory=list)

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        assert self.script, f"unexpected request {request.method} {request.url}"
        method, url, status, body = self.script.pop(0)
        assert (request.method, str(request.url)) == (method, url)
        self.seen.append(url)
        return httpx2.Response(status, json=body, request=request)

    def done(self) -> bool:
        return not self.script


def prm(resource: str = SERVER, servers: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    return {"resource": resource, "authorization_servers": servers or [ISSUER], **extra}


def asm(issuer: str = ISSUER, **extra: Any) -> dict[str, Any]:
    return {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/authorize",
        "token_endpoint": f"{issuer}/token",
        "code_challenge_methods_supported": ["S256"],
        **extra,
    }


def test_challenge_metadata_url_is_tried_first_and_used() -> None:
    challenge = parse_bearer_challenge(
        'Bearer resource_metadata="https://mcp.example.com/custom.json", scope="a"'
    )
    send = Recorded(
        [
            ("GET", "https://mcp.example.com/custom.json", 200, prm(scopes_supported=["a", "b"])),
            ("GET", f"{ISSUER}/.well-known/oauth-authorization-server", 200, asm()),
        ]
    )
    found = drive(discover(SERVER, challenge), send)
    assert send.done()
    assert found.issuer == ISSUER
    assert found.resource == SERVER
    assert found.prm is not None and found.prm.scopes_supported == ("a", "b")


def test_path_then_root_prm_then_oidc_fallback() -> None:
    send = Recorded(
        [
            ("GET", "https://mcp.example.com/.well-known/oauth-protected-resource/mcp", 404, {}),
            (
                "GET",
                "https://mcp.example.com/.well-known/oauth-protected-resource",
                200,
                prm(resource="https://mcp.example.com"),
            ),
            ("GET", f"{ISSUER}/.well-known/oauth-authorization-server", 404, {}),
            ("GET", f"{ISSUER}/.well-known/openid-configuration", 200, asm()),
        ]
    )
    found = drive(discover(SERVER), send)
    assert send.done() and found.resource == "https://mcp.example.com"


def test_issuer_with_path_tries_the_three_locations_in_order() -> None:
    issuer = "https://auth.example.com/tenant1"
    send = Recorded(
        [
            (
                "GET",
                "https://mcp.example.com/.well-known/oauth-protected-resource/mcp",
                200,
                prm(servers=[issuer]),
            ),
            (
                "GET",
                "https://auth.example.com/.well-known/oauth-authorization-server/tenant1",
                404,
                {},
            ),
            ("GET", "https://auth.example.com/.well-known/openid-configuration/tenant1", 404, {}),
            (
                "GET",
                "https://auth.example.com/tenant1/.well-known/openid-configuration",
                200,
                asm(issuer),
            ),
        ]
    )
    assert drive(discover(SERVER), send).issuer == issuer
    assert send.done()


def test_prm_for_another_resource_stops_discovery() -> None:
    send = Recorded(
        [
            (
                "GET",
                "https://mcp.example.com/.well-known/oauth-protected-resource/mcp",
                200,
                prm(resource="https://evil.example.com/mcp"),
            ),
        ]
    )
    with pytest.raises(ResourceMismatch):
        drive(discover(SERVER), send)


def test_issuer_mismatch_stops_discovery_before_any_endpoint_use() -> None:
    send = Recorded(
        [
            ("GET", "https://mcp.example.com/.well-known/oauth-protected-resource/mcp", 200, prm()),
            (
                "GET",
                f"{ISSUER}/.well-known/oauth-authorization-server",
                200,
                asm("https://attacker.example.com"),
            ),
        ]
    )
    with pytest.raises(IssuerMismatch):
        drive(discover(SERVER), send)
    assert send.done()


def test_no_as_metadata_anywhere_is_an_error_when_prm_exists() -> None:
    send = Recorded(
        [
            ("GET", "https://mcp.example.com/.well-known/oauth-protected-resource/mcp", 200, prm()),
            ("GET", f"{ISSUER}/.well-known/oauth-authorization-server", 404, {}),
            ("GET", f"{ISSUER}/.well-known/openid-configuration", 404, {}),
        ]
    )
    with pytest.raises(DiscoveryError):
        drive(discover(SERVER), send)


def test_2025_03_26_server_without_prm_uses_metadata_at_its_origin() -> None:
    send = Recorded(
        [
            ("GET", "https://mcp.example.com/.well-known/oauth-protected-resource/mcp", 404, {}),
            ("GET", "https://mcp.example.com/.well-known/oauth-protected-resource", 404, {}),
            (
                "GET",
                "https://mcp.example.com/.well-known/oauth-authorization-server",
                200,
                asm("https://mcp.example.com"),
            ),
        ]
    )
    found = drive(discover(SERVER), send)
    assert found.issuer == "https://mcp.example.com" and not found.auth_server.fallback
    assert found.resource == SERVER


def test_2025_03_26_server_without_any_metadata_falls_back_to_default_endpoints() -> None:
    send = Recorded(
        [
            ("GET", "https://mcp.example.com/.well-known/oauth-protected-resource/mcp", 404, {}),
            ("GET", "https://mcp.example.com/.well-known/oauth-protected-resource", 404, {}),
            ("GET", "https://mcp.example.com/.well-known/oauth-authorization-server", 404, {}),
            ("GET", "https://mcp.example.com/.well-known/openid-configuration", 404, {}),
        ]
    )
    found = drive(discover(SERVER), send)
    assert found.auth_server.fallback
    assert found.auth_server.authorization_endpoint == "https://mcp.example.com/authorize"
    assert found.auth_server.token_endpoint == "https://mcp.example.com/token"
    assert found.auth_server.registration_endpoint == "https://mcp.example.com/register"


def test_cognito_discovery_only_needs_the_oidc_document() -> None:
    issuer = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_AbC123"
    cognito = asm(
        issuer,
        code_challenge_methods_supported=None,
        authorization_endpoint="https://p.auth.us-east-1.amazoncognito.com/oauth2/authorize",
        token_endpoint="https://p.auth.us-east-1.amazoncognito.com/oauth2/token",
    )
    del cognito["code_challenge_methods_supported"]
    send = Recorded(
        [
            (
                "GET",
                "https://mcp.example.com/.well-known/oauth-protected-resource/mcp",
                200,
                prm(servers=[issuer]),
            ),
            (
                "GET",
                "https://cognito-idp.us-east-1.amazonaws.com/.well-known/oauth-authorization-server/us-east-1_AbC123",
                400,
                {},
            ),
            (
                "GET",
                "https://cognito-idp.us-east-1.amazonaws.com/.well-known/openid-configuration/us-east-1_AbC123",
                400,
                {},
            ),
            ("GET", f"{issuer}/.well-known/openid-configuration", 200, cognito),
        ]
    )
    found = drive(discover(SERVER), send)
    assert found.auth_server.profile is COGNITO
    assert found.auth_server.profile.callback_ports == (53682, 53683, 53684)
