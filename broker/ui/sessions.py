"""Who may see the control page: single-use launch tokens and the sessions they open.

- A **launch token** is 256 random bits, minted by the running broker for ``mcp-broker open``
  (an authenticated call to the token API as the default client) or for the tray, valid for
  :data:`LAUNCH_LIFETIME` seconds and redeemable once. Only its SHA-256 is kept.
- Redeeming it opens a **session**: a fresh 256-bit cookie value (again only its SHA-256 is
  kept), a key that is part of every page's path (``/ui/s/KEY/servers``: the cookie alone opens
  nothing, and browsers send it to every port of 127.0.0.1) and a CSRF token, which every
  state-changing form must carry. A session ends
  after :data:`SESSION_IDLE` seconds without a request or :data:`SESSION_MAX` seconds in all;
  at most :data:`MAX_SESSIONS` live at once (the oldest goes first).

Everything is in memory: a broker restart ends every session.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

LAUNCH_LIFETIME = 60.0
SESSION_IDLE = 30 * 60.0
SESSION_MAX = 12 * 3600.0
MAX_SESSIONS = 16
MAX_LAUNCHES = 32


def _same(presented: str | None, expected: str) -> bool:
    return presented is not None and hmac.compare_digest(
        presented.encode("utf-8", "replace"), expected.encode()
    )


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8", "replace")).digest()


class LaunchTokens:
    """Single-use tokens that open a session, each naming the page to land on."""

    def __init__(
        self, lifetime: float = LAUNCH_LIFETIME, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._lifetime = lifetime
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens: dict[bytes, tuple[float, str]] = {}

    def mint(self, landing: str) -> str:
        token = secrets.token_urlsafe(32)
        now = self._clock()
        with self._lock:
            self._drop_expired(now)
            while len(self._tokens) >= MAX_LAUNCHES:
                del self._tokens[min(self._tokens, key=lambda k: self._tokens[k][0])]
            self._tokens[_digest(token)] = (now + self._lifetime, landing)
        return token

    def redeem(self, token: str) -> str | None:
        """The landing page of ``token``, which is used up; None if unknown, used or expired.

        Looked up by its SHA-256: timing can at most tell something about a digest, which
        says nothing about the token."""
        with self._lock:
            found = self._tokens.pop(_digest(token), None)
        if found is None or self._clock() >= found[0]:
            return None
        return found[1]

    def _drop_expired(self, now: float) -> None:
        for key, (expires, _) in list(self._tokens.items()):
            if now >= expires:
                del self._tokens[key]


@dataclass
class Session:
    """One browser's session. ``key`` is in the path of every page of it (``/ui/s/KEY/…``),
    ``csrf`` in every form it renders: a cookie alone opens nothing (browsers send cookies for
    127.0.0.1 to every port, so another local server the browser visits could receive it)."""

    key: str
    csrf: str
    created: float
    last_seen: float
    notes: list[tuple[str, str]] = field(default_factory=list)
    """Messages for the next page shown (kind, text): what the last action did."""

    def csrf_matches(self, presented: str | None) -> bool:
        return _same(presented, self.csrf)

    def key_matches(self, presented: str | None) -> bool:
        return _same(presented, self.key)

    def note(self, kind: str, text: str) -> None:
        self.notes.append((kind, text))

    def take_notes(self) -> list[tuple[str, str]]:
        notes, self.notes = self.notes, []
        return notes


class Sessions:
    """The open sessions, by the SHA-256 of their cookie value."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._sessions: dict[bytes, Session] = {}

    def open(self) -> tuple[str, Session]:
        """A new session and the cookie value that names it (given to the browser only)."""
        cookie = secrets.token_urlsafe(32)
        now = self._clock()
        session = Session(secrets.token_urlsafe(24), secrets.token_urlsafe(32), now, now)
        with self._lock:
            self._drop_stale(now)
            while len(self._sessions) >= MAX_SESSIONS:
                del self._sessions[min(self._sessions, key=lambda k: self._sessions[k].created)]
            self._sessions[_digest(cookie)] = session
        return cookie, session

    def find(self, cookie: str | None) -> Session | None:
        if not cookie:
            return None
        now = self._clock()
        with self._lock:
            self._drop_stale(now)
            session = self._sessions.get(_digest(cookie))
            if session is not None:
                session.last_seen = now
        return session

    def end(self, cookie: str | None) -> None:
        if cookie:
            with self._lock:
                self._sessions.pop(_digest(cookie), None)

    def _drop_stale(self, now: float) -> None:
        for key, session in list(self._sessions.items()):
            if now - session.last_seen >= SESSION_IDLE or now - session.created >= SESSION_MAX:
                del self._sessions[key]
