"""Small helpers for driving the local authorization server's authorization-code flow in tests."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from urllib.parse import parse_qs, urlsplit

DEMO_CLIENT = "demo-broker"
CALLBACK = "http://127.0.0.1:53682/callback"
MCP_RESOURCE = "http://127.0.0.1:8000/mcp"


def pkce_pair() -> tuple[str, str]:
    """(verifier, S256 challenge) per RFC 7636 §4.1-4.2."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def authorize_params(challenge: str | None, **extra: str) -> dict[str, str]:
    params = {
        "response_type": "code",
        "client_id": DEMO_CLIENT,
        "redirect_uri": CALLBACK,
        "state": secrets.token_urlsafe(16),
        "scope": "openid email",
    }
    if challenge is not None:
        params.update(code_challenge=challenge, code_challenge_method="S256")
    params.update(extra)
    return {k: v for k, v in params.items() if v != ""}


def csrf_from(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token in the login form"
    return match.group(1)


def query_of(location: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(location).query)


def single(location: str, name: str) -> str:
    values = query_of(location).get(name, [])
    assert len(values) == 1, f"{name} in {location!r}"
    return values[0]
