"""A small test client for the enterprise and DPoP parts of the local stack, with real keys:
DPoP proofs (RFC 9449 §4) from an ES256 key, ID-JAGs signed like a foreign IdP would, and the
requests of the flow (sign-in, token exchange, JWT bearer grant, MCP call) over real HTTP."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
import uuid
from typing import Any

import httpx2
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from tests.support.idp_flow import CALLBACK, DEMO_CLIENT, authorize_params, pkce_pair, single

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ID_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token"
ID_JAG_TYPE = "urn:ietf:params:oauth:token-type:id-jag"
ID_JAG_TYP = "oauth-id-jag+jwt"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def ath(token: str) -> str:
    return b64url(hashlib.sha256(token.encode("ascii")).digest())


class DpopKey:
    """An ES256 key pair that signs DPoP proofs; ``jkt`` is its RFC 7638 thumbprint."""

    def __init__(self) -> None:
        self.key = ECKey.generate_key("P-256")
        self.jkt = self.key.thumbprint()

    def public_jwk(self) -> dict[str, Any]:
        return dict(self.key.as_dict(private=False))

    def proof(
        self,
        method: str,
        url: str,
        access_token: str | None = None,
        nonce: str | None = None,
        **overrides: Any,
    ) -> str:
        """A well-formed proof; ``overrides`` replace claims (None drops one) or, with a
        ``header_`` prefix, header parameters."""
        header: dict[str, Any] = {"typ": "dpop+jwt", "alg": "ES256", "jwk": self.public_jwk()}
        claims: dict[str, Any] = {
            "jti": secrets.token_urlsafe(16),
            "htm": method,
            "htu": url,
            "iat": int(time.time()),
        }
        if access_token is not None:
            claims["ath"] = ath(access_token)
        if nonce is not None:
            claims["nonce"] = nonce
        for name, value in overrides.items():
            target, name = (header, name[7:]) if name.startswith("header_") else (claims, name)
            if value is None:
                target.pop(name, None)
            else:
                target[name] = value
        return jwt.encode(header, claims, self.key, algorithms=["ES256"], default_type=None)


def id_jag_claims(
    issuer: str,
    audience: Any,
    client_id: str,
    resource: Any,
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """ID-JAG claims as draft §3 lists them; ``overrides`` replace (None drops) a claim."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": "enterprise-user-1",
        "aud": audience,
        "client_id": client_id,
        "jti": str(uuid.uuid4()),
        "exp": now + 300,
        "iat": now,
        "resource": resource,
        "scope": f"{resource}/tools" if isinstance(resource, str) else None,
        "email": "user1@enterprise.example",
    }
    claims.update(overrides or {})
    return {name: value for name, value in claims.items() if value is not None}


def sign_id_jag(key: RSAKey, kid: str, claims: dict[str, Any], typ: str | None = ID_JAG_TYP) -> str:
    header: dict[str, Any] = {"alg": "RS256", "kid": kid}
    if typ is not None:
        header["typ"] = typ
    return jwt.encode(header, claims, key, algorithms=["RS256"], default_type=None)


def unverified_claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def unverified_header(token: str) -> dict[str, Any]:
    part = token.split(".")[0]
    return dict(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))))


# --- the flow's requests, over real HTTP ----------------------------------------------------


def sign_in(base_url: str, scope: str = "openid email") -> dict[str, Any]:
    """Tokens of the demo client at an idp started with ``auto_login`` (no form to fill)."""
    verifier, challenge = pkce_pair()
    params = authorize_params(challenge, scope=scope)
    response = httpx2.get(f"{base_url}/oauth2/authorize", params=params, timeout=10.0)
    assert response.status_code == 302, response.text
    code = single(response.headers["location"], "code")
    body = {
        "grant_type": "authorization_code",
        "client_id": DEMO_CLIENT,
        "code": code,
        "redirect_uri": CALLBACK,
        "code_verifier": verifier,
    }
    tokens = httpx2.post(f"{base_url}/oauth2/token", data=body, timeout=10.0)
    assert tokens.status_code == 200, tokens.text
    return dict(tokens.json())


def exchange_request(id_token: str, audience: str, resource: str, **extra: str) -> dict[str, str]:
    """RFC 8693 §2.1 request for an ID-JAG (SEP-990 §4)."""
    data = {
        "grant_type": TOKEN_EXCHANGE,
        "client_id": DEMO_CLIENT,
        "requested_token_type": ID_JAG_TYPE,
        "subject_token": id_token,
        "subject_token_type": ID_TOKEN_TYPE,
        "audience": audience,
        "resource": resource,
    }
    data.update(extra)
    return {k: v for k, v in data.items() if v != ""}


def redeem(
    base_url: str,
    assertion: str,
    client: tuple[str, str],
    dpop: DpopKey | None = None,
    **extra: str,
) -> httpx2.Response:
    """RFC 7523 §2.1 JWT bearer grant with client_secret_basic, with a DPoP proof if a key."""
    url = f"{base_url}/oauth2/token"
    headers = {"DPoP": dpop.proof("POST", url)} if dpop else {}
    data = {"grant_type": JWT_BEARER, "assertion": assertion, **extra}
    return httpx2.post(url, data=data, auth=client, headers=headers, timeout=10.0)
