"""Discovery as Cognito publishes it: OpenID Provider Metadata (OpenID Connect Discovery 1.0 §3)
at ``<issuer>/.well-known/openid-configuration`` only (no RFC 8414 document), and the JWK Set at
``<issuer>/.well-known/jwks.json``.

Like Cognito, the document has no ``code_challenge_methods_supported`` although S256 works;
``--advertise-pkce`` adds ``["S256"]`` for clients (and the MCP conformance harness) that insist.
``--device-flow`` (not Cognito behaviour) adds ``device_authorization_endpoint`` (RFC 8628 §4).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from demo_server.idp.device import DEVICE_AUTHORIZATION_PATH
from demo_server.idp.extension_options import extension_metadata
from demo_server.idp.sessions import idp
from demo_server.idp.settings import STANDARD_SCOPES, IdpSettings


def openid_configuration(settings: IdpSettings) -> dict[str, Any]:
    base, issuer = settings.base_url, settings.issuer
    doc: dict[str, Any] = {
        "authorization_endpoint": f"{base}/oauth2/authorize",
        "end_session_endpoint": f"{base}/logout",
        "id_token_signing_alg_values_supported": ["RS256"],
        "issuer": issuer,
        "jwks_uri": f"{issuer}/.well-known/jwks.json",
        "response_types_supported": ["code"],
        "revocation_endpoint": f"{base}/oauth2/revoke",
        "scopes_supported": list(STANDARD_SCOPES),
        "subject_types_supported": ["public"],
        "token_endpoint": f"{base}/oauth2/token",
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "userinfo_endpoint": f"{base}/oauth2/userInfo",
    }
    if settings.advertise_pkce:
        doc["code_challenge_methods_supported"] = ["S256"]
    if settings.device_flow:
        doc["device_authorization_endpoint"] = base + DEVICE_AUTHORIZATION_PATH
    doc.update(extension_metadata(settings))
    return doc


def create_blueprint(pool_id: str) -> Blueprint:
    bp = Blueprint("discovery", __name__, url_prefix=f"/{pool_id}/.well-known")

    @bp.get("/openid-configuration")
    def configuration() -> Response:
        return jsonify(openid_configuration(idp().settings))

    @bp.get("/jwks.json")
    def jwks() -> Response:
        keys = idp().settings.keys
        assert keys is not None
        return jsonify(keys.jwks())

    return bp
