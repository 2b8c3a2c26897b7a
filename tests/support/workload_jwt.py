"""A fake workload platform for workload identity federation tests: a test key that signs workload
JWTs (as a Kubernetes cluster or a CI's OIDC issuer would), its JWK set in a file, and the JWT
file the workload reads, written owner-only (0600) and replaced atomically as a platform renews
it."""

from __future__ import annotations

import base64
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from tests.support.jwt_issuer import signing_key

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class WorkloadIssuer:
    """Signs workload JWTs for ``issuer`` with ``key`` (``kid``; RS256, or ES256 for an EC key)."""

    def __init__(
        self, issuer: str, key: RSAKey | ECKey | None = None, kid: str = "workload-kid-1"
    ) -> None:
        self.issuer = issuer
        self.key = key if key is not None else signing_key(2)
        self.kid = kid
        self.alg = "ES256" if isinstance(self.key, ECKey) else "RS256"

    def jwks(self) -> dict[str, Any]:
        public = dict(self.key.as_dict(private=False))
        public.update({"kid": self.kid, "use": "sig", "alg": self.alg})
        return {"keys": [public]}

    def write_jwks(self, path: Path) -> Path:
        path.write_text(json.dumps(self.jwks()), encoding="utf-8")
        return path

    def claims(self, audience: Any, **overrides: Any) -> dict[str, Any]:
        """A Kubernetes-like projected token's claims; ``overrides`` replace (None drops) one."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": "system:serviceaccount:ci:agent",
            "aud": audience,
            "exp": now + 600,
            "iat": now,
            "nbf": now,
            "jti": str(uuid.uuid4()),
        }
        claims.update(overrides)
        return {name: value for name, value in claims.items() if value is not None}

    def sign(
        self,
        claims: dict[str, Any],
        typ: str | None = None,
        kid: str | None = "",
        key: RSAKey | ECKey | None = None,
    ) -> str:
        """``kid`` "": this issuer's; None: no kid. ``key``: sign with another key instead."""
        header: dict[str, Any] = {"alg": self.alg}
        if kid is not None:
            header["kid"] = kid or self.kid
        if typ is not None:
            header["typ"] = typ
        return jwt.encode(header, claims, key or self.key, algorithms=[self.alg], default_type=None)

    def token(self, audience: Any, **overrides: Any) -> str:
        return self.sign(self.claims(audience, **overrides))

    def unsigned(self, claims: dict[str, Any]) -> str:
        """``alg: none`` (RFC 7519 §6): an empty signature."""
        header = {"alg": "none", "kid": self.kid}
        return f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}."

    def hs256_with_public_key(self, claims: dict[str, Any]) -> str:
        """The key-confusion forgery: HS256 keyed with the public key's PEM."""
        import hashlib
        import hmac

        header = {"alg": "HS256", "kid": self.kid}
        signing_input = (
            f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
        )
        secret = self.key.as_pem(private=False)
        mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{b64url(mac)}"


def write_token_file(path: Path, token: str) -> None:
    """Put ``token`` in ``path`` as a platform renews it: owner-only, replaced in one step."""
    temporary = path.with_name(path.name + ".new")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as file:
        file.write(token + "\n")
    os.replace(temporary, path)
