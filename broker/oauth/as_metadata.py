"""Authorization server metadata: RFC 8414 and OpenID Connect Discovery 1.0.

URL order for an issuer with a path ``/t`` (RFC 8414 §3.1, §5; OIDC Discovery §4):
``/.well-known/oauth-authorization-server/t``, ``/.well-known/openid-configuration/t``,
``/t/.well-known/openid-configuration``; without a path: ``oauth-authorization-server`` then
``openid-configuration``.

A document is used only if its ``issuer`` equals the issuer the URL was built from, character for
character (RFC 8414 §3.3) and its endpoints are https or loopback http. The 2025-03-26 MCP
revision is served too: without PRM, the server's origin is the issuer, and without any metadata
``/authorize``, ``/token`` and ``/register`` at that origin are used.

Discovery records what PKCE methods the server names and whether it has an authorization endpoint
(RFC 8414 §2: REQUIRED unless no grant type it supports uses it) but refuses neither: the grants
without a browser (client credentials, the workload's and the ID-JAG's assertion grants, the
device flow) use neither. A sign-in with the authorization code refuses a server without PKCE
S256 (MCP authorization: the client MUST refuse to proceed) with :func:`require_pkce_s256`, and
one without an authorization endpoint with :func:`require_authorization_endpoint`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx2
from pydantic import ValidationError

from broker.errors import DiscoveryError, IssuerMismatch, PkceNotSupported
from broker.oauth.endpoints import check_endpoint
from broker.oauth.providers import ProviderProfile

logger = logging.getLogger(__name__)

OAUTH_WELL_KNOWN = "/.well-known/oauth-authorization-server"
OIDC_WELL_KNOWN = "/.well-known/openid-configuration"


@dataclass(frozen=True)
class AuthServer:
    """What the sign-in needs to know about one authorization server."""

    issuer: str
    #: None when the metadata names none (a server for grants without a browser).
    authorization_endpoint: str | None
    token_endpoint: str
    profile: ProviderProfile
    registration_endpoint: str | None = None
    revocation_endpoint: str | None = None
    scopes_supported: tuple[str, ...] | None = None
    token_endpoint_auth_methods_supported: tuple[str, ...] | None = None
    iss_parameter_supported: bool = False
    client_id_metadata_document_supported: bool = False
    #: RFC 8628 §4: where a device without a browser starts a sign-in.
    device_authorization_endpoint: str | None = None
    #: RFC 8414 §2: JWS algorithms accepted for ``private_key_jwt`` client assertions.
    token_endpoint_auth_signing_alg_values_supported: tuple[str, ...] | None = None
    #: RFC 9449 §5.1: JWS algorithms accepted for DPoP proofs (:mod:`broker.oauth.dpop`).
    dpop_signing_alg_values_supported: tuple[str, ...] | None = None
    #: True when no metadata document was found (2025-03-26 endpoint fallback).
    fallback: bool = False
    #: The metadata's ``code_challenge_methods_supported``; None when it names none. The
    #: default (S256) is for the 2025-03-26 fallback, which assumes it, and for metadata cached
    #: before this was recorded (broker/tokens/auth_servers.py), which offered it.
    code_challenge_methods_supported: tuple[str, ...] | None = ("S256",)


def as_metadata_urls(issuer: str) -> list[str]:
    parts = urlsplit(issuer)
    origin = f"{parts.scheme}://{parts.netloc}"
    path = parts.path.rstrip("/")
    if not path:
        return [origin + OAUTH_WELL_KNOWN, origin + OIDC_WELL_KNOWN]
    return [
        f"{origin}{OAUTH_WELL_KNOWN}{path}",
        f"{origin}{OIDC_WELL_KNOWN}{path}",
        f"{origin}{path}{OIDC_WELL_KNOWN}",
    ]


def build_as_metadata_request(url: str) -> httpx2.Request:
    return httpx2.Request("GET", url, headers={"Accept": "application/json"})


def handle_as_metadata_response(
    response: httpx2.Response, issuer: str, profile: ProviderProfile
) -> AuthServer | None:
    """A validated server, or None to try the next URL. 5xx and refusals raise."""
    if response.status_code >= 500:
        raise DiscoveryError(f"authorization server metadata: HTTP {response.status_code}")
    if response.status_code != 200:
        return None
    try:
        body = json.loads(response.content)
    except (ValueError, RecursionError):
        return None
    if not isinstance(body, dict):
        return None
    return validate_as_metadata(body, issuer, profile)


def _strings(value: Any) -> tuple[str, ...] | None:
    if not isinstance(value, list):
        return None
    return tuple(v for v in value if isinstance(v, str))


def _optional_endpoint(body: dict[str, Any], name: str) -> str | None:
    return None if body.get(name) is None else check_endpoint(body[name], name)


def validate_as_metadata(body: dict[str, Any], issuer: str, profile: ProviderProfile) -> AuthServer:
    if body.get("issuer") != issuer:
        raise IssuerMismatch(
            f"authorization server metadata names issuer {str(body.get('issuer'))[:200]!r}, "
            f"expected {issuer!r}"
        )
    authorization_endpoint = _optional_endpoint(body, "authorization_endpoint")
    token_endpoint = check_endpoint(body.get("token_endpoint"), "token_endpoint")
    registration_endpoint = _optional_endpoint(body, "registration_endpoint")
    revocation_endpoint = _optional_endpoint(body, "revocation_endpoint")
    device_authorization_endpoint = _optional_endpoint(body, "device_authorization_endpoint")
    # Imported here: the mcp SDK takes a second and 36 MB to import, and a broker that only
    # refreshes (with cached metadata, broker/tokens/auth_servers.py) never needs it.
    from mcp.shared.auth import OAuthMetadata

    checked = body
    if authorization_endpoint is None:
        # The SDK's model requires it; RFC 8414 §2 does not when no grant uses it. The token
        # endpoint stands in so the rest of the document is still checked.
        checked = {**body, "authorization_endpoint": token_endpoint}
    try:
        OAuthMetadata.model_validate(checked)
    except ValidationError as exc:
        raise DiscoveryError(f"authorization server metadata of {issuer} is invalid") from exc
    return AuthServer(
        issuer=issuer,
        authorization_endpoint=authorization_endpoint,
        token_endpoint=token_endpoint,
        profile=profile,
        scopes_supported=_strings(body.get("scopes_supported")),
        token_endpoint_auth_methods_supported=_strings(
            body.get("token_endpoint_auth_methods_supported")
        ),
        iss_parameter_supported=body.get("authorization_response_iss_parameter_supported") is True,
        client_id_metadata_document_supported=(
            body.get("client_id_metadata_document_supported") is True
        ),
        registration_endpoint=registration_endpoint,
        revocation_endpoint=revocation_endpoint,
        device_authorization_endpoint=device_authorization_endpoint,
        token_endpoint_auth_signing_alg_values_supported=_strings(
            body.get("token_endpoint_auth_signing_alg_values_supported")
        ),
        dpop_signing_alg_values_supported=_strings(body.get("dpop_signing_alg_values_supported")),
        code_challenge_methods_supported=_strings(body.get("code_challenge_methods_supported")),
    )


def require_pkce_s256(server: AuthServer) -> None:
    """Refuse an authorization-code sign-in at a server that does not offer PKCE S256 (MCP
    authorization: the client MUST refuse to proceed), unless its provider profile vouches."""
    methods = server.code_challenge_methods_supported
    if methods is None and not server.profile.pkce_s256_implied:
        raise PkceNotSupported(
            f"{server.issuer} does not advertise PKCE (code_challenge_methods_supported); "
            "refusing to sign in"
        )
    if methods is not None and "S256" not in methods:
        raise PkceNotSupported(f"{server.issuer} does not support PKCE S256; refusing to sign in")


def require_authorization_endpoint(server: AuthServer) -> str:
    """The authorization endpoint of a server a person signs in at in the browser."""
    if server.authorization_endpoint is None:
        raise DiscoveryError(
            f"{server.issuer} has no authorization_endpoint in its metadata: it offers no "
            "sign-in in the browser (only grants without one, such as client credentials)"
        )
    return check_endpoint(server.authorization_endpoint, "authorization_endpoint")


def require_code_flow(server: AuthServer) -> str:
    """Both checks an authorization-code sign-in needs; its authorization endpoint."""
    require_pkce_s256(server)
    return require_authorization_endpoint(server)


def fallback_auth_server(origin: str, profile: ProviderProfile) -> AuthServer:
    """2025-03-26: no metadata anywhere, so the default endpoints at the server's origin."""
    base = check_endpoint(origin.rstrip("/"), "server origin")
    return AuthServer(
        issuer=base,
        authorization_endpoint=f"{base}/authorize",
        token_endpoint=f"{base}/token",
        registration_endpoint=f"{base}/register",
        profile=profile,
        fallback=True,
    )
