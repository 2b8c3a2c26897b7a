"""DPoP proofs on the client side (RFC 9449; MCP SEP-1932), as pure functions of a key and a clock.

A proof (§4.2) is a JWS with header ``typ`` ``dpop+jwt``, ``alg`` ES256 and the *public* ``jwk``,
and claims ``jti`` (fresh random), ``htm`` (the method), ``htu`` (the request URI without query
and fragment, §4.2), ``iat``, plus ``nonce`` when the server demanded one (§8, §9) and, with an
access token, ``ath`` = base64url(SHA-256(token)) (§4.2, §7). It is signed by the client's key
with joserfc. A new proof for every request: a ``jti`` is never reused, not even for a retry.

Servers ask for a nonce with ``use_dpop_nonce``: the token endpoint answers 400 with that error in
its JSON body (§8), a resource server 401 with a ``DPoP`` challenge naming it (§9); either sends
the nonce in ``DPoP-Nonce``, which a server may also send with any answer to replace the one in
use (§8.2). :func:`is_nonce_challenge` and :func:`answered_nonce` judge an answer.

DPoP is used with an authorization server that lists ES256 in
``dpop_signing_alg_values_supported`` (§5.1, :func:`supports_dpop`). Nothing here does I/O; the
key (never shown: its ``repr`` is joserfc's, without the private part) is passed in.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from broker.oauth.www_authenticate import parse_challenges

if TYPE_CHECKING:
    import httpx2
    from joserfc.jwk import ECKey

    from broker.oauth.as_metadata import AuthServer

ALGORITHM = "ES256"
CURVE = "P-256"
PROOF_TYPE = "dpop+jwt"
HEADER = "DPoP"
NONCE_HEADER = "DPoP-Nonce"
SCHEME = "DPoP"
USE_DPOP_NONCE = "use_dpop_nonce"
# RFC 9449 §8.1: nonce = 1*NQCHAR (printable ASCII without '"' and '\\'); bounded here.
_NONCE = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]{1,512}")
_MAX_ERROR_BODY = 64 * 1024


def supports_dpop(server: AuthServer) -> bool:
    """Whether the authorization server takes ES256 proofs (RFC 9449 §5.1)."""
    return ALGORITHM in (server.dpop_signing_alg_values_supported or ())


def new_key() -> ECKey:
    """A fresh P-256 key pair for ES256 proofs."""
    from joserfc.jwk import ECKey

    return ECKey.generate_key(CURVE, private=True)


def key_to_text(key: ECKey) -> str:
    """The private key as a JWK (JSON), to keep in the keyring and nowhere else."""
    return json.dumps(key.as_dict(private=True), sort_keys=True, separators=(",", ":"))


def key_from_text(text: str) -> ECKey:
    """A key written by :func:`key_to_text`; ``ValueError`` (naming no value) when it is not
    a private P-256 key."""
    from joserfc.errors import JoseError
    from joserfc.jwk import ECKey

    try:
        key = ECKey.import_key(json.loads(text))
    except (ValueError, TypeError, JoseError, RecursionError):
        raise ValueError("not a private P-256 JWK") from None
    if not key.is_private or key.as_dict(private=False).get("crv") != CURVE:
        raise ValueError("not a private P-256 JWK")
    return key


def public_jwk(key: ECKey) -> dict[str, Any]:
    """The public part of ``key`` (``kty``, ``crv``, ``x``, ``y``): what a proof carries."""
    return dict(key.as_dict(private=False))


def thumbprint(key: ECKey) -> str:
    """The RFC 7638 SHA-256 thumbprint of the public key: the ``cnf.jkt`` a bound token names."""
    return str(key.thumbprint())


def access_token_hash(access_token: str) -> str:
    """``ath``: base64url (no padding) of the SHA-256 of the ASCII access token (§4.2)."""
    digest = hashlib.sha256(access_token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def htu(url: str) -> str:
    """The ``htu`` of a request to ``url``: the URI without query and fragment (§4.2)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path or "/", "", ""))


def origin(url: str) -> str:
    """Scheme, host and port of ``url``: what a nonce is remembered under."""
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


def build_proof(
    key: ECKey,
    method: str,
    url: str,
    now: float,
    *,
    nonce: str | None = None,
    access_token: str | None = None,
    jti: str | None = None,
) -> str:
    """A signed proof for one request (§4.2): ``htm`` ``method``, ``htu`` ``url`` without query
    and fragment, ``iat`` ``now``, a fresh ``jti``; ``nonce`` and ``ath`` when given."""
    from joserfc import jwt

    claims: dict[str, Any] = {
        "jti": jti or secrets.token_urlsafe(24),
        "htm": method.upper(),
        "htu": htu(url),
        "iat": int(now),
    }
    if nonce is not None:
        claims["nonce"] = nonce
    if access_token is not None:
        claims["ath"] = access_token_hash(access_token)
    header = {"typ": PROOF_TYPE, "alg": ALGORITHM, "jwk": public_jwk(key)}
    return jwt.encode(header, claims, key, algorithms=[ALGORITHM])


def answered_nonce(response: httpx2.Response) -> str | None:
    """The nonce a server sent in ``DPoP-Nonce`` (§8.2), if it is a well-formed one."""
    value = response.headers.get(NONCE_HEADER)
    value = value.strip() if value is not None else None
    return value if value and _NONCE.fullmatch(value) else None


def is_nonce_challenge(response: httpx2.Response) -> bool:
    """Whether ``response`` demands a (new) nonce and sent one to retry with: the token
    endpoint's 400 ``use_dpop_nonce`` (§8) or a resource server's 401 with a ``DPoP`` challenge
    ``error="use_dpop_nonce"`` (§9)."""
    if answered_nonce(response) is None:
        return False
    if response.status_code == 400:
        return _body_error(response) == USE_DPOP_NONCE
    if response.status_code == 401:
        challenge = dpop_challenge(response.headers.get_list("www-authenticate"))
        return challenge is not None and challenge.get("error") == USE_DPOP_NONCE
    return False


def dpop_challenge(headers: list[str]) -> dict[str, str] | None:
    """The parameters of the ``DPoP`` challenge among ``WWW-Authenticate`` values (§7.1)."""
    for value in headers:
        for scheme, params in parse_challenges(value):
            if scheme == "dpop":
                return params
    return None


def token_type_of(response: httpx2.Response) -> str | None:
    """The ``token_type`` of a successful token response, None when it cannot be read."""
    body = _json_body(response)
    value = body.get("token_type") if body is not None else None
    return value if isinstance(value, str) else None


def _body_error(response: httpx2.Response) -> str | None:
    body = _json_body(response)
    error = body.get("error") if body is not None else None
    return error if isinstance(error, str) else None


def _json_body(response: httpx2.Response) -> dict[str, Any] | None:
    try:
        content = response.content
    except Exception:  # a streamed body that was not read: not ours to read here
        return None
    if len(content) > _MAX_ERROR_BODY:
        return None
    try:
        body = json.loads(content)
    except (ValueError, RecursionError):
        return None
    return body if isinstance(body, dict) else None
