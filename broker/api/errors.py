"""HTTP errors of the local token API, each with its status and wire ``error`` code.

Every error leaves the API as JSON ``{"error": code, "error_description": text}`` (DESIGN §3). The
codes follow OAuth where one fits (RFC 6749 §5.2, RFC 6750 §3.1, RFC 8707 §2 ``invalid_target``,
OIDC ``interaction_required``); descriptions are fixed text or text the broker wrote, never an
echo of a header or the query string.
"""

from __future__ import annotations

from collections.abc import Mapping


class HttpError(Exception):
    status = 400
    error = "invalid_request"

    def __init__(self, description: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(description)
        self.description = description
        self.headers = dict(headers or {})


class InvalidRequest(HttpError):
    """Malformed body, wrong types, unknown fields, a query string."""


class InvalidClient(HttpError):
    """No client secret, or a wrong one (RFC 6750 §3: the challenge names the scheme)."""

    status = 401
    error = "invalid_client"

    def __init__(self, description: str, *, presented: bool) -> None:
        challenge = 'Bearer realm="mcp-broker"'
        if presented:
            challenge += ', error="invalid_token"'
        super().__init__(description, {"WWW-Authenticate": challenge})


class Forbidden(HttpError):
    """A request shape the API never serves: browser, proxy, wrong Host (SECURITY #4–#11)."""

    status = 403
    error = "forbidden"


class AccessDenied(HttpError):
    """This client may not have this server's token (its allowlist, or the user said no)."""

    status = 403
    error = "access_denied"


class ConsentRequired(HttpError):
    """The user has not yet allowed this client this server; they are being asked."""

    status = 403
    error = "consent_required"


class InsufficientScope(HttpError):
    status = 403
    error = "insufficient_scope"


class NotFound(HttpError):
    status = 404
    error = "not_found"


class InvalidTarget(HttpError):
    """The resource is not a configured MCP server (RFC 8707 §2)."""

    status = 404
    error = "invalid_target"


class MethodNotAllowed(HttpError):
    status = 405
    error = "method_not_allowed"


class InteractionRequired(HttpError):
    """The user must sign in; answered at once, never after waiting on a login."""

    status = 409
    error = "interaction_required"


class PayloadTooLarge(HttpError):
    status = 413
    error = "invalid_request"


class UnsupportedMediaType(HttpError):
    status = 415
    error = "invalid_request"


class TemporarilyUnavailable(HttpError):
    """The token side is busy or unreachable right now (a keyring prompt, a server down)."""

    status = 503
    error = "temporarily_unavailable"

    def __init__(self, description: str, retry_after: int = 1) -> None:
        super().__init__(description, {"Retry-After": str(retry_after)})


class ServerError(HttpError):
    status = 500
    error = "server_error"
