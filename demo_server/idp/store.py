"""In-memory, thread-safe state: codes, refresh tokens and revoked sign-ins.

Codes are popped on first lookup, so a code can be redeemed once even under concurrent requests
(RFC 6749 §4.1.2). Refresh tokens are keyed by their SHA-256, so the store never holds one.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable

from demo_server.idp.models import AuthorizationCode, RefreshTokenRecord

logger = logging.getLogger(__name__)


def token_key(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class Store:
    """Short-lived grant state of one server instance."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._codes: dict[str, AuthorizationCode] = {}
        self._refresh: dict[str, RefreshTokenRecord] = {}
        self._revoked_origins: set[str] = set()
        self.reused_refresh_tokens = 0
        """Presentations of a refresh token already rotated out (within the grace or after):
        a client that stores every rotated token before using it never makes one, so tests
        and operators can watch this count stay at 0."""

    def save_code(self, code: AuthorizationCode) -> None:
        with self._lock:
            self._drop_expired_codes()
            self._codes[code.code] = code

    def pop_code(self, code: str) -> AuthorizationCode | None:
        """The unexpired code, removed so that it can never be used again."""
        with self._lock:
            found = self._codes.pop(code, None)
        if found is None or found.expires_at <= self._clock():
            return None
        return found

    def save_refresh(self, token: str, record: RefreshTokenRecord) -> None:
        with self._lock:
            self._refresh[token_key(token)] = record

    def find_refresh(self, token: str) -> RefreshTokenRecord | None:
        """The record of a refresh token that may still be used, else None."""
        with self._lock:
            record = self._refresh.get(token_key(token))
            if record is None or record.origin_jti in self._revoked_origins:
                return None
            if record.usable_until is not None:
                self.reused_refresh_tokens += 1
                logger.warning(
                    "a rotated-out refresh token was presented again (%d so far)",
                    self.reused_refresh_tokens,
                )
        now = self._clock()
        if record.expires_at <= now:
            return None
        if record.usable_until is not None and record.usable_until <= now:
            return None
        return record

    def known_refresh(self, token: str) -> RefreshTokenRecord | None:
        """Any record of this token, even a spent one (revocation accepts those)."""
        with self._lock:
            return self._refresh.get(token_key(token))

    def retire(self, record: RefreshTokenRecord, grace_seconds: int) -> None:
        """A rotated-out refresh token stays usable for the grace period only."""
        with self._lock:
            if record.usable_until is None:
                record.usable_until = self._clock() + grace_seconds

    def revoke_origin(self, origin_jti: str) -> None:
        """Revoke a sign-in: every refresh token and access token that came from it."""
        with self._lock:
            self._revoked_origins.add(origin_jti)

    def is_origin_revoked(self, origin_jti: str) -> bool:
        with self._lock:
            return origin_jti in self._revoked_origins

    def _drop_expired_codes(self) -> None:
        now = self._clock()
        for key in [k for k, c in self._codes.items() if c.expires_at <= now]:
            del self._codes[key]
