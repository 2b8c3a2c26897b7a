"""Token requests and responses (RFC 6749 §4.1.3, §5.1, §5.2, §6) with PKCE (RFC 7636 §4.5) and
``resource`` (RFC 8707 §2.2).

``expires_in`` that is missing, not a number, zero, negative or enormous is replaced by a safe
value (SECURITY #27): a missing or unreadable one by :data:`DEFAULT_LIFETIME`, zero or negative
by :data:`MIN_LIFETIME` (a nonsense value must not start a refresh loop), an enormous one by
:data:`MAX_LIFETIME`. A short positive lifetime is kept as it is: lengthening it would hand out
tokens after they expire. The result carries an absolute ``expires_at``.

Expiry is counted from the moment the request was *sent* (the server's clock started later), and
one second of the lifetime is held back: ``expires_in`` is whole seconds and servers that round
their tokens' expiry down to a whole second issue tokens that die up to a second early. When a
provider profile says its access tokens are JWTs (``cognito``), their ``exp`` claim is the exact
expiry and is used instead, provided it agrees with ``expires_in`` to within that second plus
:data:`CLOCK_AGREEMENT` (so the authorization server's clock and ours agree); the claim is only
read, never trusted for anything else, and a token that is not a readable JWT keeps the estimate.
With that exact expiry, the lifetime (which the refresh margins are fractions of) is counted from
the answer's arrival when the caller says when that was: the server issued the token between the
request and its answer, so counting from the request would make the lifetime longer by the
request's latency and a proactive refresh due earlier than 15 % before ``exp`` (a slow answer of
0.25 s made the next refresh of a 5 s token 0.04 s early in the 20 min uptime soak).
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
from broker.oauth.jwt_peek import jwt_claims, jwt_exp
from broker.oauth.registration import ClientCredentials, client_authentication
from broker.safetext import safe_text
from broker.tokens.tokenset import TokenKey, TokenSet

logger = logging.getLogger(__name__)

DEFAULT_LIFETIME = 3600
MIN_LIFETIME = 60
MAX_LIFETIME = 365 * 24 * 3600
#: ``expires_in`` and ``exp`` are whole seconds: a token may die this much before the estimate.
GRANULARITY = 1.0
#: Seconds by which an ``exp`` claim may differ from the estimate (latency, clock difference).
CLOCK_AGREEMENT = 1.0
#: Claims that name the user, most readable first (OIDC Core §5.1, Cognito's own names).
_USER_CLAIMS = ("preferred_username", "cognito:username", "username", "email", "name")
MAX_USER_LENGTH = 64
_FORM_HEADERS = {"Accept": "application/json"}
_ERROR_CODE = re.compile(r"[\x20-\x21\x23-\x5b\x5d-\x7e]{1,100}")


def token_endpoint_request(
    server: AuthServer, client: ClientCredentials, fields: dict[str, str]
) -> httpx2.Request:
    """A POST of ``fields`` to the token endpoint, with ``client``'s authentication."""
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
    return token_endpoint_request(server, client, fields)


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
    return token_endpoint_request(server, client, fields)


def build_client_credentials_request(
    server: AuthServer, client: ClientCredentials, scope: str | None, resource: str | None
) -> httpx2.Request:
    """RFC 6749 §4.4.2 for a confidential client: the machine identity's own access token."""
    fields = {"grant_type": "client_credentials"}
    if scope:
        fields["scope"] = scope
    if resource:
        fields["resource"] = resource
    return token_endpoint_request(server, client, fields)


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


def expiry(sent: float, life: int, access_token: str, exp_claim: bool) -> float:
    """The absolute expiry of a token issued ``life`` seconds of lifetime by a request ``sent``."""
    exact = exact_expiry(sent, life, access_token, exp_claim)
    return exact if exact is not None else _estimate(sent, life)


def exact_expiry(sent: float, life: int, access_token: str, exp_claim: bool) -> float | None:
    """The token's ``exp`` claim when the profile says it is exact and it agrees with
    ``expires_in`` (see the module docstring); None otherwise."""
    claimed = jwt_exp(access_token) if exp_claim else None
    if claimed is not None and abs(claimed - (sent + life)) <= GRANULARITY + CLOCK_AGREEMENT:
        return claimed
    return None


def _estimate(sent: float, life: int) -> float:
    return sent + life - min(GRANULARITY, life / 4)


def display_user(
    id_token: str | None, access_token: str, jwt_access_tokens: bool, key: TokenKey
) -> str | None:
    """Who signed in, to show in the tray and ``status``; display only, never used to decide
    anything. From the ID token the token endpoint returned, or, when the provider profile says
    access tokens are JWTs (Cognito's carry ``username``), from the access token. Neither is
    validated (the broker is not their audience for anything else); a claim set is only read
    when it names the issuer signed in to and this client (ID token ``aud``, Cognito access
    token ``client_id``), so another issuer's or client's token names nobody. Printable
    characters only, at most :data:`MAX_USER_LENGTH`."""
    sources = []
    if id_token:
        claims = jwt_claims(id_token)
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if claims.get("iss") == key.issuer and key.client_id in audiences:
            sources.append(claims)
    if jwt_access_tokens:
        claims = jwt_claims(access_token)
        if claims.get("iss") == key.issuer and claims.get("client_id") == key.client_id:
            sources.append(claims)
    for claims in sources:
        for name in _USER_CLAIMS:
            value = claims.get(name)
            if isinstance(value, str):
                shown = safe_text(value, MAX_USER_LENGTH)
                if shown:
                    return shown
    return None


def token_error(response: httpx2.Response) -> TokenRequestFailed:
    """The error of a refused token request (RFC 6749 §5.2), its code checked, to raise."""
    try:
        body = json.loads(response.content)
    except (ValueError, RecursionError):
        body = None
    return _error(response, body)


def _error(response: httpx2.Response, body: Any) -> TokenRequestFailed:
    code = body.get("error") if isinstance(body, dict) else None
    # RFC 6749 §5.2 limits error codes to printable ASCII without '"' and '\\'.
    code = code if isinstance(code, str) and _ERROR_CODE.fullmatch(code) else ""
    message = f"the token endpoint refused the request (HTTP {response.status_code}"
    message += f", {code})" if code else ")"
    cls = InvalidGrant if code == "invalid_grant" else TokenRequestFailed
    return cls(message, error=code, status_code=response.status_code)


def handle_token_response(
    response: httpx2.Response,
    key: TokenKey,
    requested_scope: str | None,
    previous_refresh_token: str | None = None,
    now: float | None = None,
    *,
    exp_claim: bool = False,
    received: float | None = None,
) -> TokenSet:
    """A :class:`TokenSet` from a successful response; :class:`TokenRequestFailed` otherwise.

    ``now`` is when the request was sent (default: now), ``received`` when its answer came. On
    refresh, a response without a new refresh token keeps ``previous_refresh_token``.
    ``exp_claim``: the provider's access tokens are JWTs whose ``exp`` gives the exact expiry (see
    the module docstring).
    """
    try:
        body = json.loads(response.content)
    except (ValueError, RecursionError):
        body = None
    if response.status_code != 200 or not isinstance(body, dict):
        raise _error(response, body)
    access_token = body.get("access_token")
    token_type = body.get("token_type", "Bearer")
    if not isinstance(access_token, str) or not access_token:
        raise TokenRequestFailed("the token response has no access_token")
    token_type = _token_type(token_type, response)
    refresh = body.get("refresh_token")
    scope = body.get("scope")
    issued = time.time() if now is None else now
    life = lifetime(body.get("expires_in"))
    exact = exact_expiry(issued, life, access_token, exp_claim)
    id_token = body.get("id_token")
    return TokenSet(
        key=key,
        access_token=access_token,
        expires_at=exact if exact is not None else _estimate(issued, life),
        scope=scope if isinstance(scope, str) else requested_scope,
        refresh_token=refresh if isinstance(refresh, str) and refresh else previous_refresh_token,
        # An exact expiry does not depend on when the request went out: count the lifetime
        # from the answer (never before the request), so no refresh margin grows by latency.
        obtained_at=max(issued, received) if exact is not None and received is not None else issued,
        user=display_user(
            id_token if isinstance(id_token, str) else None, access_token, exp_claim, key
        ),
        id_token=id_token if isinstance(id_token, str) and id_token else None,
        token_type=token_type,
    )


def _token_type(token_type: object, response: httpx2.Response) -> str:
    """``Bearer``, or ``DPoP`` (RFC 9449 §5) when the request carried a DPoP proof; any other
    type, or a DPoP token the broker did not ask for, is refused."""
    kind = token_type.lower() if isinstance(token_type, str) else None
    if kind == "bearer":
        return "Bearer"
    if kind == "dpop" and _sent_proof(response):
        return "DPoP"
    raise TokenRequestFailed("the token response is not a Bearer token")


def _sent_proof(response: httpx2.Response) -> bool:
    try:
        return "dpop" in response.request.headers
    except RuntimeError:  # a response made without its request
        return False
