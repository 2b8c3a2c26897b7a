"""Time as the broker sees it: a wall clock (token expiry is absolute) and a monotonic clock.

Both are injected so that tests can move them independently, the way a suspended laptop or an NTP
step moves them (SECURITY.md #28).
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def time(self) -> float:
        """Wall-clock seconds since the epoch (may jump)."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin that never go backwards (may stop while asleep)."""
        ...


class SystemClock:
    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()
