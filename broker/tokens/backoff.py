"""Bounded, jittered exponential backoff for refreshes that failed for a passing reason.

"Equal jitter": half of the exponential step is fixed and half is random, so a retry is never
immediate (no tight loop, SECURITY.md #26/#27) and many brokers that lost the same authorization
server do not come back in lockstep.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Backoff:
    base: float = 2.0
    """Delay after the first failure, before jitter (seconds)."""
    cap: float = 300.0
    """No delay is ever longer than this."""
    factor: float = 2.0
    rng: Callable[[], float] = field(default=random.random, repr=False, compare=False)

    def delay(self, failures: int, retry_after: float | None = None) -> float:
        """Seconds to wait after ``failures`` consecutive failures (1 for the first).

        A server's ``Retry-After`` is honoured when it asks for longer, up to ``cap``.
        """
        step = min(self.cap, self.base * self.factor ** max(0, min(failures, 64) - 1))
        delay = step / 2 + step / 2 * self.rng()
        if retry_after is not None and retry_after > delay:
            delay = min(self.cap, retry_after)
        return delay
