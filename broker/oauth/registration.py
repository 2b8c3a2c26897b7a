"""Which client identity to sign in with, and how it authenticates at the token endpoint.

Priority (MCP authorization, "Client Registration Approaches"): a pre-registered client for this
issuer; a Client ID Metadata Document URL when the AS says
``client_id_metadata_document_supported``; Dynamic Client Registration (RFC 7591, with
``application_type: native``) when there is a ``registration_endpoint``; else the user has to
configure a client id. Credentials are bound to the issuer that issued them.

Token endpoint authentication (RFC 6749 §2.3.1, RFC 7591 §2): ``client_secret_basic``,
``client_secret_post`` or ``none``; a machine identity with a private key uses
``private_key_jwt`` (RFC 7523 §2.2, :mod:`broker.oauth.client_assertion`).
"""

from __future__ import annotations

import base64
import enum
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import httpx2

from broker.errors import ClientRegistrationRequired, RegistrationFailed
from broker.oauth.as_metadata import AuthServer

BASIC = "client_secret_basic"
POST = "client_secret_post"
NONE = "none"
PRIVATE_KEY_JWT = "private_key_jwt"
SUPPORTED_METHODS = (BASIC, POST, NONE)
CLIENT_NAME = "mcp-oauth-broker"


class Registration(enum.Enum):
    PREREGISTERED = "preregistered"
    CIMD = "client_id_metadata_document"
    DCR = "dynamic_client_registration"


@dataclass(frozen=True)
class ClientCredentials:
    """A client identity, bound to the issuer it belongs to. ``repr`` hides the secret."""

    client_id: str
    issuer: str
    client_secret: str | None = field(default=None, repr=False)
    #: PEM private key of a ``private_key_jwt`` client (a machine identity).
    private_key: str | None = field(default=None, repr=False)
    auth_method: str | None = None
    #: Redirect URIs registered by DCR; empty when unknown (pre-registered, CIMD).
    redirect_uris: tuple[str, ...] = ()
    registration: Registration = Registration.PREREGISTERED

    def accepts_redirect(self, redirect_uri: str) -> bool:
        return not self.redirect_uris or redirect_uri in self.redirect_uris


def is_client_metadata_url(url: str | None) -> bool:
    """A CIMD client id is an https URL with a path (draft-ietf-oauth-client-id-metadata)."""
    if not url:
        return False
    parts = urlsplit(url)
    return parts.scheme == "https" and bool(parts.hostname) and parts.path not in ("", "/")


def choose_registration(
    server: AuthServer, preregistered: ClientCredentials | None, client_metadata_url: str | None
) -> Registration:
    if preregistered is not None and preregistered.issuer == server.issuer:
        return Registration.PREREGISTERED
    if server.client_id_metadata_document_supported and is_client_metadata_url(client_metadata_url):
        return Registration.CIMD
    if server.registration_endpoint:
        return Registration.DCR
    raise ClientRegistrationRequired(
        f"{server.issuer} offers no client registration: configure a client id for it "
        "(for Cognito, the app client id of the user pool)"
    )


def metadata_document_client(client_metadata_url: str, issuer: str) -> ClientCredentials:
    return ClientCredentials(
        client_id=client_metadata_url,
        issuer=issuer,
        auth_method=NONE,
        registration=Registration.CIMD,
    )


def token_auth_method(server: AuthServer, client: ClientCredentials) -> str:
    """The method to use with ``client`` at ``server``'s token endpoint."""
    if client.private_key is not None:
        return PRIVATE_KEY_JWT
    if client.client_secret is None:
        return NONE
    if client.auth_method in (BASIC, POST):
        return client.auth_method
    # RFC 8414 §2: the default when the AS lists nothing is client_secret_basic.
    offered = server.token_endpoint_auth_methods_supported or (BASIC,)
    return POST if POST in offered and BASIC not in offered else BASIC


def _requested_method(server: AuthServer) -> str:
    offered = server.token_endpoint_auth_methods_supported
    if offered is None or NONE in offered:
        return NONE
    return BASIC if BASIC in offered or POST not in offered else POST


def build_registration_request(
    server: AuthServer, redirect_uri: str, scope: str | None = None
) -> httpx2.Request:
    """RFC 7591 §3.1 registration of a native public client (or whatever the AS insists on)."""
    if not server.registration_endpoint:
        raise ClientRegistrationRequired(f"{server.issuer} has no registration endpoint")
    body: dict[str, Any] = {
        "client_name": CLIENT_NAME,
        "redirect_uris": [redirect_uri],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": _requested_method(server),
        "application_type": "native",
    }
    if scope:
        body["scope"] = scope
    return httpx2.Request(
        "POST",
        server.registration_endpoint,
        json=body,
        headers={"Accept": "application/json"},
    )


def handle_registration_response(
    response: httpx2.Response, server: AuthServer, redirect_uri: str
) -> ClientCredentials:
    if response.status_code not in (200, 201):
        raise RegistrationFailed(
            f"{server.issuer} refused client registration (HTTP {response.status_code})"
        )
    try:
        body = json.loads(response.content)
    except (ValueError, RecursionError):
        body = None
    if not isinstance(body, dict) or not isinstance(body.get("client_id"), str):
        raise RegistrationFailed(f"{server.issuer} sent an invalid registration response")
    secret = body.get("client_secret") if isinstance(body.get("client_secret"), str) else None
    method = body.get("token_endpoint_auth_method")
    if method not in SUPPORTED_METHODS:
        method = _requested_method(server) if secret is None else None
    uris = body.get("redirect_uris")
    registered = tuple(u for u in uris if isinstance(u, str)) if isinstance(uris, list) else ()
    return ClientCredentials(
        client_id=body["client_id"],
        issuer=server.issuer,
        client_secret=secret or None,
        auth_method=method,
        redirect_uris=registered or (redirect_uri,),
        registration=Registration.DCR,
    )


def client_authentication(
    server: AuthServer, client: ClientCredentials, now: float | None = None
) -> tuple[dict[str, str], dict[str, str]]:
    """``(headers, form fields)`` that authenticate ``client`` at the token endpoint."""
    method = token_auth_method(server, client)
    if method == PRIVATE_KEY_JWT and client.private_key is not None:
        from broker.oauth.client_assertion import ASSERTION_TYPE, client_assertion

        assertion = client_assertion(
            client.private_key,
            client.client_id,
            server.issuer,
            server.token_endpoint_auth_signing_alg_values_supported,
            now,
        )
        return {}, {
            "client_id": client.client_id,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion,
        }
    if method == BASIC and client.client_secret is not None:
        # RFC 6749 §2.3.1: both parts are form-urlencoded before base64.
        pair = f"{quote(client.client_id, safe='')}:{quote(client.client_secret, safe='')}"
        return {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode()}, {}
    if method == POST and client.client_secret is not None:
        return {}, {"client_id": client.client_id, "client_secret": client.client_secret}
    return {}, {"client_id": client.client_id}
