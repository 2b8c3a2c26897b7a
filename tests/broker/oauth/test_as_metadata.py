from __future__ import annotations

from typing import Any

import httpx2
import pytest

from broker.errors import DiscoveryError, IssuerMismatch, PkceNotSupported, UnsafeEndpoint
from broker.oauth.as_metadata import (
    AuthServer,
    as_metadata_urls,
    build_as_metadata_request,
    fallback_auth_server,
    handle_as_metadata_response,
    require_authorization_endpoint,
    require_code_flow,
    require_pkce_s256,
)
from broker.oauth.authorize import build_authorization_request
from broker.oauth.providers import COGNITO, GENERIC, profile_for
from broker.oauth.registration import ClientCredentials

ISSUER = "https://auth.example.com/tenant1"


def metadata(issuer: str = ISSUER, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "issuer": issuer,
        "authorization_endpoint": "https://auth.example.com/tenant1/authorize",
        "token_endpoint": "https://auth.example.com/tenant1/token",
        "code_challenge_methods_supported": ["S256"],
        "response_types_supported": ["code"],
    }
    body.update(extra)
    return {k: v for k, v in body.items() if v is not None}


def reply(body: Any, status: int = 200) -> httpx2.Response:
    return httpx2.Response(status, json=body, request=build_as_metadata_request(ISSUER))


def test_url_order_for_an_issuer_with_a_path() -> None:
    assert as_metadata_urls("https://auth.example.com/t") == [
        "https://auth.example.com/.well-known/oauth-authorization-server/t",
        "https://auth.example.com/.well-known/openid-configuration/t",
        "https://auth.example.com/t/.well-known/openid-configuration",
    ]


def test_url_order_for_an_issuer_without_a_path() -> None:
    expected = [
        "https://auth.example.com/.well-known/oauth-authorization-server",
        "https://auth.example.com/.well-known/openid-configuration",
    ]
    assert as_metadata_urls("https://auth.example.com") == expected
    assert as_metadata_urls("https://auth.example.com/") == expected


def test_valid_metadata_is_accepted() -> None:
    server = handle_as_metadata_response(
        reply(
            metadata(
                registration_endpoint="https://auth.example.com/tenant1/register",
                revocation_endpoint="https://auth.example.com/tenant1/revoke",
                scopes_supported=["openid", "offline_access"],
                authorization_response_iss_parameter_supported=True,
                client_id_metadata_document_supported=True,
                token_endpoint_auth_methods_supported=["none"],
                device_authorization_endpoint="https://auth.example.com/tenant1/device",
                token_endpoint_auth_signing_alg_values_supported=["ES256", "RS256"],
            )
        ),
        ISSUER,
        GENERIC,
    )
    assert server == AuthServer(
        issuer=ISSUER,
        authorization_endpoint="https://auth.example.com/tenant1/authorize",
        token_endpoint="https://auth.example.com/tenant1/token",
        profile=GENERIC,
        registration_endpoint="https://auth.example.com/tenant1/register",
        revocation_endpoint="https://auth.example.com/tenant1/revoke",
        scopes_supported=("openid", "offline_access"),
        token_endpoint_auth_methods_supported=("none",),
        iss_parameter_supported=True,
        client_id_metadata_document_supported=True,
        device_authorization_endpoint="https://auth.example.com/tenant1/device",
        token_endpoint_auth_signing_alg_values_supported=("ES256", "RS256"),
    )


def test_unsafe_device_authorization_endpoint_is_refused() -> None:
    with pytest.raises(UnsafeEndpoint):
        handle_as_metadata_response(
            reply(metadata(device_authorization_endpoint="http://evil.example.com/device")),
            ISSUER,
            GENERIC,
        )


def test_optional_fields_absent_read_as_unsupported() -> None:
    server = handle_as_metadata_response(reply(metadata()), ISSUER, GENERIC)
    assert server == AuthServer(
        issuer=ISSUER,
        authorization_endpoint="https://auth.example.com/tenant1/authorize",
        token_endpoint="https://auth.example.com/tenant1/token",
        profile=GENERIC,
    )


@pytest.mark.parametrize(
    "other",
    ["https://attacker.example.com", ISSUER + "/", "https://AUTH.example.com/tenant1", None],
)
def test_issuer_must_match_character_for_character(other: str | None) -> None:
    with pytest.raises(IssuerMismatch):
        handle_as_metadata_response(reply(metadata(issuer=other or "")), ISSUER, GENERIC)


def discovered(body: dict[str, Any], profile: Any = GENERIC) -> AuthServer:
    server = handle_as_metadata_response(reply(body), ISSUER, profile)
    assert server is not None
    return server


def authorization_request(server: AuthServer) -> object:
    client = ClientCredentials("c", ISSUER)
    return build_authorization_request(server, client, "http://127.0.0.1:1/callback", None, None)


def test_missing_pkce_advertisement_is_recorded_and_refuses_the_code_flow() -> None:
    # Discovery records it (client credentials and other grants without a browser use no PKCE);
    # the authorization-code sign-in refuses to start (MCP authorization: MUST refuse).
    server = discovered(metadata(code_challenge_methods_supported=None))
    assert server.code_challenge_methods_supported is None
    for refuse in (require_pkce_s256, require_code_flow, authorization_request):
        with pytest.raises(PkceNotSupported, match="does not advertise PKCE"):
            refuse(server)


def test_plain_only_pkce_refuses_the_code_flow_even_for_cognito() -> None:
    body = metadata(code_challenge_methods_supported=["plain"])
    for profile in (GENERIC, COGNITO):
        server = discovered(body, profile)
        assert server.code_challenge_methods_supported == ("plain",)
        for refuse in (require_pkce_s256, authorization_request):
            with pytest.raises(PkceNotSupported, match="does not support PKCE S256"):
                refuse(server)


def test_cognito_profile_vouches_for_s256() -> None:
    body = metadata(code_challenge_methods_supported=None)
    server = discovered(body, COGNITO)
    assert server == AuthServer(
        issuer=ISSUER,
        authorization_endpoint="https://auth.example.com/tenant1/authorize",
        token_endpoint="https://auth.example.com/tenant1/token",
        profile=COGNITO,
        code_challenge_methods_supported=None,
    )
    assert require_code_flow(server) == "https://auth.example.com/tenant1/authorize"
    request = authorization_request(server)
    assert "code_challenge_method=S256" in request.url  # type: ignore[attr-defined]


def test_metadata_without_an_authorization_endpoint_serves_grants_without_a_browser() -> None:
    # RFC 8414 §2: REQUIRED unless no grant type the server supports uses it.
    body = metadata(authorization_endpoint=None, code_challenge_methods_supported=None)
    body["grant_types_supported"] = ["client_credentials"]
    server = discovered(body)
    assert (server.authorization_endpoint, server.token_endpoint) == (
        None,
        "https://auth.example.com/tenant1/token",
    )
    with_pkce = discovered(metadata(authorization_endpoint=None))
    for refuse in (require_authorization_endpoint, require_code_flow, authorization_request):
        with pytest.raises(DiscoveryError, match="no authorization_endpoint"):
            refuse(with_pkce)


def test_the_rest_of_a_document_without_an_authorization_endpoint_is_still_checked() -> None:
    body = metadata(authorization_endpoint=None, scopes_supported="openid")
    with pytest.raises(DiscoveryError, match="is invalid"):
        handle_as_metadata_response(reply(body), ISSUER, GENERIC)


@pytest.mark.parametrize(
    "issuer",
    [
        "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_AbC123",
        "https://issuer-cognito-idp.eu-west-2.amazonaws.com/eu-west-2_x",
    ],
)
def test_cognito_is_recognised_by_issuer_host(issuer: str) -> None:
    assert profile_for(issuer) is COGNITO


@pytest.mark.parametrize(
    "issuer",
    [
        "https://cognito-idp.us-east-1.amazonaws.com.evil.example/x",
        "http://cognito-idp.us-east-1.amazonaws.com/x",
        "https://evilcognito-idp.us-east-1.amazonaws.com/x",
    ],
)
def test_lookalike_hosts_are_not_cognito(issuer: str) -> None:
    assert profile_for(issuer) is GENERIC


def test_configured_profile_wins() -> None:
    assert profile_for("http://127.0.0.1:9000/us-east-1_Demo00001", "cognito") is COGNITO


@pytest.mark.parametrize(
    "endpoint",
    [
        "javascript:alert(document.cookie)",
        "file:///etc/passwd",
        "data:text/html,<script>alert(1)</script>",
        "http://auth.example.com/authorize",
        "//auth.example.com/authorize",
        "https://auth.example.com/a b",
        42,
    ],
)
def test_unsafe_authorization_endpoint_is_refused(endpoint: object) -> None:
    with pytest.raises(UnsafeEndpoint):
        handle_as_metadata_response(
            reply(metadata(authorization_endpoint=endpoint)), ISSUER, GENERIC
        )


def test_loopback_http_endpoints_are_allowed() -> None:
    issuer = "http://127.0.0.1:9000/pool"
    body = metadata(
        issuer=issuer,
        authorization_endpoint="http://localhost:9000/authorize",
        token_endpoint="http://[::1]:9000/token",
    )
    server = handle_as_metadata_response(reply(body), issuer, GENERIC)
    assert server is not None
    assert (server.issuer, server.authorization_endpoint, server.token_endpoint) == (
        issuer,
        "http://localhost:9000/authorize",
        "http://[::1]:9000/token",
    )


def test_not_found_means_next_url_and_server_error_stops() -> None:
    assert handle_as_metadata_response(reply({}, 404), ISSUER, GENERIC) is None
    assert handle_as_metadata_response(reply({}, 302), ISSUER, GENERIC) is None
    with pytest.raises(DiscoveryError):
        handle_as_metadata_response(reply({}, 503), ISSUER, GENERIC)


def test_2025_03_26_fallback_endpoints_sit_at_the_origin() -> None:
    server = fallback_auth_server("http://localhost:3000", GENERIC)
    assert (server.issuer, server.authorization_endpoint, server.token_endpoint) == (
        "http://localhost:3000",
        "http://localhost:3000/authorize",
        "http://localhost:3000/token",
    )
    assert server.registration_endpoint == "http://localhost:3000/register"
    assert server.fallback
    # Without metadata nothing says otherwise: S256 is assumed, as the 2025-03-26 revision does.
    assert server.code_challenge_methods_supported == ("S256",)
    assert require_code_flow(server) == "http://localhost:3000/authorize"
