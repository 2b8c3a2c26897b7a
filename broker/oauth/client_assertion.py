"""``private_key_jwt`` client authentication (RFC 7523 §2.2, §3; OIDC Core §9).

The client proves who it is with a JWT it signs with its private key, sent as
``client_assertion`` with ``client_assertion_type =
urn:ietf:params:oauth:client-assertion-type:jwt-bearer``. Claims: ``iss`` = ``sub`` = the
client id, ``jti`` a fresh random value (the AS may refuse a replay), ``iat``, and a short
``exp`` (:data:`LIFETIME`).

``aud`` is the authorization server's *issuer identifier*, as one string: RFC 7523 §3 lets the
token endpoint URL serve, but that left room for audience confusion between servers, and its
update (draft-ietf-oauth-rfc7523bis §4) requires the issuer; the MCP client-credentials extension
(SEP-1046) and its conformance scenario ``auth/client-credentials-jwt`` check it so.

The algorithm follows the key (RSA: RS256, P-256: ES256, P-384: ES384, P-521: ES512; Ed25519
is not offered while its JWS name moves from ``EdDSA`` to ``Ed25519``, RFC 9864), and must be
one the AS lists in ``token_endpoint_auth_signing_alg_values_supported`` when it lists any (for
RSA, PS256 when the AS takes that and not RS256). Signing is authlib's
(:func:`authlib.oauth2.rfc7523.assertion.sign_jwt_bearer_assertion` on joserfc). The key is
never logged or repeated in a message.
"""

from __future__ import annotations

import secrets
import time

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from broker.errors import ConfigError

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: Seconds an assertion is valid: long enough for one request, short against replay.
LIFETIME = 60
_CURVES = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
_KEY_TYPES = {"RS": "RSA", "PS": "RSA", "ES": "EC"}


def _load(private_key_pem: str) -> object:
    try:
        return serialization.load_pem_private_key(private_key_pem.encode(), password=None)
    except (ValueError, TypeError) as exc:
        # Not repeated: the text may be a key with a typo.
        raise ConfigError(
            "the private key is not an unencrypted PEM private key (PKCS#8 or traditional)"
        ) from exc


def signing_alg(private_key_pem: str, supported: tuple[str, ...] | None = None) -> str:
    """The JWS algorithm for this key that the AS accepts; :class:`ConfigError` if none."""
    key = _load(private_key_pem)
    if isinstance(key, rsa.RSAPrivateKey):
        candidates = ["RS256", "PS256"]
    elif isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name in _CURVES:
        candidates = [_CURVES[key.curve.name]]
    else:
        raise ConfigError("the private key must be RSA or EC (P-256, P-384, P-521)")
    for alg in candidates:
        if supported is None or alg in supported:
            return alg
    raise ConfigError(
        f"the authorization server accepts client assertions signed with "
        f"{', '.join(supported or ()) or 'no algorithm'}, not with this key ({candidates[0]})"
    )


def client_assertion(
    private_key_pem: str,
    client_id: str,
    audience: str,
    supported_algs: tuple[str, ...] | None = None,
    now: float | None = None,
) -> str:
    """A signed client assertion for one token request."""
    from authlib.oauth2.rfc7523.assertion import sign_jwt_bearer_assertion
    from joserfc.jwk import import_key

    alg = signing_alg(private_key_pem, supported_algs)
    key = import_key(private_key_pem, _KEY_TYPES[alg[:2]])  # type: ignore[call-overload]
    issued = int(time.time() if now is None else now)
    token = sign_jwt_bearer_assertion(
        key=key,
        issuer=client_id,
        audience=audience,
        subject=client_id,
        issued_at=issued,
        expires_at=issued + LIFETIME,
        claims={"jti": secrets.token_urlsafe(32)},
        alg=alg,
    )
    return token if isinstance(token, str) else bytes(token).decode()
