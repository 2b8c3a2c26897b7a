"""Fakes for the token service tests: token sets with canary values and a scripted refresh grant."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from broker.errors import InvalidGrant
from broker.tokens.tokenset import TokenKey, TokenSet
from tests.support.clock import FakeClock

KEY = TokenKey("https://as.example/pool", "client-1", "https://mcp.example/mcp")
OTHER_KEY = TokenKey("https://as.example/pool", "client-1", "https://other.example/mcp")
CANARY = "CANARY-SECRET-"  # every token value starts with this; no log line may contain it


def make_tokens(
    clock: FakeClock,
    lifetime: float = 3600.0,
    key: TokenKey = KEY,
    refresh: str | None = "auto",
    age: float = 0.0,
) -> TokenSet:
    """A token set obtained ``age`` seconds ago with ``lifetime``; unique canary token values."""
    n = next(_serial)
    obtained = clock.time() - age
    return TokenSet(
        key=key,
        access_token=f"{CANARY}access-{n}",
        expires_at=obtained + lifetime,
        refresh_token=f"{CANARY}refresh-{n}" if refresh == "auto" else refresh,
        obtained_at=obtained,
    )


_serial = itertools.count(1)


@dataclass
class FakeGrant:
    """A refresh grant that issues new tokens (rotating the refresh token if asked) and counts.

    ``fail`` (an exception instance or a callable returning one) makes the next calls raise.
    ``gate``: when set, each call signals ``entered`` and waits for ``gate`` before answering.
    """

    clock: FakeClock
    lifetime: float = 3600.0
    rotate: bool = False
    fail: BaseException | Callable[[], BaseException] | None = None
    gate: threading.Event | None = None
    calls: int = 0
    entered: threading.Event = field(default_factory=threading.Event)
    valid_refresh_tokens: set[str] | None = None  # None: accept any
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, tokens: TokenSet) -> TokenSet:
        with self._lock:
            self.calls += 1
        self.entered.set()
        if self.gate is not None:
            assert self.gate.wait(30), "test gate never opened"
        if self.fail is not None:
            raise self.fail() if callable(self.fail) else self.fail
        valid = self.valid_refresh_tokens
        if valid is not None and tokens.refresh_token not in valid:
            raise InvalidGrant("refresh token revoked", error="invalid_grant", status_code=400)
        fresh = make_tokens(
            self.clock, self.lifetime, key=tokens.key, refresh="auto" if self.rotate else None
        )
        if self.rotate and self.valid_refresh_tokens is not None:
            self.valid_refresh_tokens.discard(tokens.refresh_token or "")
            self.valid_refresh_tokens.add(fresh.refresh_token or "")
        return fresh
