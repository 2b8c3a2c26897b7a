"""RS256 signing keys (RFC 7517/7518): one for access tokens and one for ID tokens, like Cognito.

Each key has its own ``kid``; both public halves are published in the pool's ``jwks.json``.
Keys are generated at start (in memory) unless PEM files are given in the config file.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from joserfc.jwk import KeyParameters, RSAKey

KEY_BITS = 2048


def new_rsa_key(kid: str | None = None) -> RSAKey:
    """A fresh 2048-bit RSA key for RS256 with a random ``kid``."""
    params: KeyParameters = {"kid": kid or secrets.token_urlsafe(16), "use": "sig", "alg": "RS256"}
    return RSAKey.generate_key(KEY_BITS, parameters=params)


def load_rsa_key(pem_path: Path, kid: str) -> RSAKey:
    """Import a PEM private key file as an RS256 signing key."""
    params: KeyParameters = {"kid": kid, "use": "sig", "alg": "RS256"}
    key = RSAKey.import_key(pem_path.read_bytes(), parameters=params)
    if not key.is_private:
        raise ValueError(f"{pem_path} holds no private key")
    return key


@dataclass(frozen=True)
class SigningKeys:
    """The two signing keys of a pool."""

    access: RSAKey
    id: RSAKey

    @classmethod
    def generate(cls) -> SigningKeys:
        return cls(access=new_rsa_key(), id=new_rsa_key())

    def jwks(self) -> dict[str, Any]:
        """The public JWK Set (RFC 7517 §5), as served at ``<issuer>/.well-known/jwks.json``."""
        return {"keys": [key.as_dict(private=False) for key in (self.id, self.access)]}
