"""Reading a JWT's claims without verifying it (RFC 7519 §7.2 steps 1-7 only, no signature).

The broker is not the audience of the tokens it keeps; it reads a few claims for its own
bookkeeping only: an ``exp`` to schedule the next refresh, a user name to display. Nothing read
here decides whom to trust. Standard library only, so that the token path can use it without
loading the protocol modules.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from typing import Any

MAX_JWT_PAYLOAD = 16 * 1024  # base64url characters of the payload read at most


def jwt_claims(token: str) -> dict[str, Any]:
    """The payload of a JWS compact token, read without verification; {} if unreadable."""
    parts = token.split(".")
    if len(parts) != 3 or len(parts[1]) > MAX_JWT_PAYLOAD:
        return {}
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error, RecursionError):  # RecursionError: absurdly deep JSON
        return {}
    return payload if isinstance(payload, dict) else {}


def jwt_exp(token: str) -> float | None:
    """The ``exp`` claim of a JWS compact token, read without verification; None if unreadable."""
    exp = jwt_claims(token).get("exp")
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        return None
    try:
        value = float(exp)
    except OverflowError:  # an integer of hundreds of digits
        return None
    return value if math.isfinite(value) else None
