"""A clock that tests move by hand: one fake for every injected clock in broker/ and demo_server/.

The broker injects a ``Clock`` (``time()`` for token expiry, ``monotonic()`` for intervals) and the
demo servers inject a plain callable. ``FakeClock`` is both: calling it reads the wall clock, which
is also ``now`` (settable). ``advance`` moves both clocks; ``jump_wall`` moves only the wall clock,
the way an NTP step or a suspend does.
"""

from __future__ import annotations

import threading


class FakeClock:
    def __init__(self, wall: float = 1_000_000.0, mono: float = 500.0) -> None:
        self.wall = wall
        self.mono = mono
        self._lock = threading.Lock()

    def time(self) -> float:
        with self._lock:
            return self.wall

    def monotonic(self) -> float:
        with self._lock:
            return self.mono

    def __call__(self) -> float:
        return self.time()

    @property
    def now(self) -> float:
        return self.time()

    @now.setter
    def now(self, value: float) -> None:
        with self._lock:
            self.wall = value

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.wall += seconds
            self.mono += seconds

    def jump_wall(self, seconds: float) -> None:
        """An NTP step, or a suspend during which the monotonic clock stood still."""
        with self._lock:
            self.wall += seconds
