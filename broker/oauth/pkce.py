"""PKCE (RFC 7636) with S256 only, and the ``state`` value (RFC 6749 §10.12).

The verifier comes from :mod:`secrets` (86 characters of the unreserved alphabet, within the
43–128 of RFC 7636 §4.1); ``state`` carries 256 bits. Neither ever appears in a ``repr`` or log.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from authlib.oauth2.rfc7636 import create_s256_code_challenge

S256 = "S256"


@dataclass(frozen=True)
class Pkce:
    verifier: str = field(repr=False)
    challenge: str
    method: str = S256


def new_pkce() -> Pkce:
    verifier = secrets.token_urlsafe(64)
    return Pkce(verifier=verifier, challenge=str(create_s256_code_challenge(verifier)))


def new_state() -> str:
    return secrets.token_urlsafe(32)


def states_equal(a: str | None, b: str) -> bool:
    """Constant-time comparison of a received ``state`` with the expected one."""
    return a is not None and secrets.compare_digest(a.encode(), b.encode())
