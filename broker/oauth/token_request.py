"""Token requests and responses (RFC 6749 §4.1.3, §5.1, §5.2, §6) with PKCE (RFC 7636 §4.5) and
``resource`` (RFC 8707 §2.2).

``expires_in`` that is missing, not a number, zero, negative or enormous is replaced by a safe
value (SECURITY #27): a missing or unreadable one by :data:`DEFAULT_LIFETIME`, zero or negative
by :data:`MIN_LIFETIME` (a nonsense value must not start a refresh loop), an enormous one by
:data:`MAX_LIFETIME`. A short positive lifetime is kept as it is: lengthening it would hand out
tokens after they expire. The result carries an absolute ``expires_at``.
"""

from __future__ import annotations

import json
import logging
import re
import time
from typing import Any

import httpx2

from broker.errors import InvalidGrant, TokenRequestFailed
from broker.oauth.as_metadata import AuthServer
from broker.oauth.registration import ClientCredentials, client_authentication
from broker.tokens import TokenKey, TokenSet

logger = logging.getLogger(__name__)

DEFAULT_LIFETIME = 3600
MIN_LIFETIME = 60
MAX_LIFETIME = 365 * 24 * 3600
_FORM_HEADERS = {"Accept": "application/json"}
_ERROR_CODE = re.compile(r"[\x20-\x21\x23-\x5b\x5d-\x7e]{1,100}")


def _token_request(
    server: AuthServer, client: ClientCredentials, fields: dict[str, str]
) -> httpx2.Request:
    headers, auth_fields = client_authentication(server, client)
    return httpx2.Request(
        "POST",
        server.token_endpoint,
        data={**fields, **auth_fields},
        headers={**_FORM_HEADERS, **headers},
    )


def build_token_request(
    server: AuthServer,
    client: ClientCredentials,
    code: str,
    verifier: str,
    redirect_uri: str,
    resource: str | None,
) -> httpx2.Request:
    fields = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "code_verifier": verifier,
    }
    if resource:
        fields["resource"] = resource
    return _token_request(server, client, fields)


def build_refresh_request(
    server: AuthServer,
    client: ClientCredentials,
    refresh_token: str,
    resource: str | None,
    scope: str | None = None,
) -> httpx2.Request:
    fields = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    if scope:
        fields["scope"] = scope
    if resource:
        fields["resource"] = resource
    return _token_request(server, client, fields)


def lifetime(expires_in: Any) -> int:
    """A safe lifetime in seconds for whatever the server sent as ``expires_in``."""
    if isinstance(expires_in, bool):
        return DEFAULT_LIFETIME
    try:
        seconds = float(expires_in)
    except (TypeError, ValueError, OverflowError):
        return DEFAULT_LIFETIME
    if seconds != seconds:  # NaN
        return DEFAULT_LIFETIME
    if seconds <= 0:
        return MIN_LIFETIME
    return int(min(max(seconds, 1), MAX_LIFETIME))


def _error(response: httpx2.Response, body: Any) -> TokenRequestFailed:
    code = body.get("error") if isinstance(body, dict) else None
    # RFC 6749 §5.2 limits error codes to printable ASCII without '"' and '\\'.
    code = code if isinstance(code, str) and _ERROR_CODE.fullmatch(code) else ""
    message = f"the token endpoint refused the request (HTTP {response.status_code}"
    message += f", {code})" if code else ")"
    cls = InvalidGrant if code == InvalidGrant.wire_error else TokenRequestFailed
    return cls(message, error=code, status_code=response.status_code)


def handle_token_response(
    response: httpx2.Response,
    key: TokenKey,
    requested_scope: str | None,
    previous_refresh_token: str | None = None,
    now: float | None = None,
) -> TokenSet:
    """A :class:`TokenSet` from a successful response; :class:`TokenRequestFailed` otherwise.

    On refresh, a response without a new refresh token keeps ``previous_refresh_token``.
    """
    try:
        body = json.loads(response.content)
    except ValueError:
        body = None
    if response.status_code != 200 or not isinstance(body, dict):
        raise _error(response, body)
    access_token = body.get("access_token")
    token_type = body.get("token_type", "Bearer")
    if not isinstance(access_token, str) or not access_token:
        raise TokenRequestFailed("the token response has no access_token")
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        raise TokenRequestFailed("the token response is not a Bearer token")
    refresh = body.get("refresh_token")
    scope = body.get("scope")
    issued = time.time() if now is None else now
    return TokenSet(
        key=key,
        access_token=access_token,
        expires_at=issued + lifetime(body.get("expires_in")),
        scope=scope if isinstance(scope, str) else requested_scope,
        refresh_token=refresh if isinstance(refresh, str) and refresh else previous_refresh_token,
        obtained_at=issued,
    )
