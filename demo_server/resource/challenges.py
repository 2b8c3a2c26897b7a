"""Bearer challenges: 401 and 403 responses with ``WWW-Authenticate`` (RFC 6750 §3, §3.1).

Every challenge carries ``resource_metadata`` (RFC 9728 §5.1) so clients can discover the
authorization server, and ``scope`` (RFC 6750 §3) so they know what to ask for: the MCP
authorization spec's scope-selection and step-up rules read it.
"""

from __future__ import annotations

from starlette.responses import JSONResponse

from demo_server.resource.settings import ResourceSettings

ID_TOKEN_ONLY = (
    "This server accepts only ID tokens (token_use=id) whose aud is the app client id; "  # noqa: S105
    "the token is not one, or is invalid or expired"
)


class BearerError:
    """RFC 6750 §3.1 error codes."""

    INVALID_TOKEN = "invalid_token"  # noqa: S105 - an error code, not a secret
    INSUFFICIENT_SCOPE = "insufficient_scope"


def quote(value: str) -> str:
    """An RFC 9110 §5.6.4 quoted-string."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def www_authenticate(params: dict[str, str]) -> str:
    return "Bearer " + ", ".join(f"{name}={quote(value)}" for name, value in params.items())


def unauthorized(settings: ResourceSettings, *, token_presented: bool) -> JSONResponse:
    """401: no token (no error code, RFC 6750 §3.1) or a rejected one (``invalid_token``)."""
    params: dict[str, str] = {}
    body = {"error": "unauthorized", "error_description": "Bearer access token required"}
    if token_presented:
        description = (
            ID_TOKEN_ONLY
            if settings.require_id_token
            else "The access token is invalid, expired or not issued for this resource"
        )
        params = {"error": BearerError.INVALID_TOKEN, "error_description": description}
        body = {"error": BearerError.INVALID_TOKEN, "error_description": description}
    params["resource_metadata"] = settings.resource_metadata_url
    params["scope"] = settings.tools_scope
    return JSONResponse(body, status_code=401, headers=challenge_headers(params))


def insufficient_scope(settings: ResourceSettings, needed: list[str]) -> JSONResponse:
    """403 ``insufficient_scope`` naming every scope the request needs (MCP step-up)."""
    description = "This request needs the scopes: " + " ".join(needed)
    params = {
        "error": BearerError.INSUFFICIENT_SCOPE,
        "scope": " ".join(needed),
        "resource_metadata": settings.resource_metadata_url,
        "error_description": description,
    }
    body = {"error": BearerError.INSUFFICIENT_SCOPE, "error_description": description}
    return JSONResponse(body, status_code=403, headers=challenge_headers(params))


def challenge_headers(params: dict[str, str]) -> dict[str, str]:
    return {"WWW-Authenticate": www_authenticate(params), "Cache-Control": "no-store"}
