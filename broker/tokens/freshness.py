"""When a token may be handed out, and when it should be refreshed.

All margins scale down with the token's lifetime, so that a token of a few seconds (the demo
authorization server, or an authorization server sending a strange ``expires_in``) still gets a
sane schedule instead of being "already due" at birth, which would be a tight refresh loop
(SECURITY.md #27).

A token is judged on two clocks (SECURITY.md #28): the wall clock (``expires_at`` is absolute,
so a resumed laptop sees the token as expired at once) and the monotonic time since the token was
seen, which a wall clock stepped backwards cannot stretch. The smaller remaining time wins.
"""

from __future__ import annotations

from dataclasses import dataclass

from broker.tokens.clock import Clock
from broker.tokens.tokenset import TokenSet


@dataclass(frozen=True)
class RefreshPolicy:
    """Three margins before expiry, each a fraction of the lifetime (seconds for the skew):

    ``lead`` > ``max_demand`` >= ``skew``. The background refresh starts with ``lead`` left; callers
    keep getting the current token until ``max_demand`` (or what they asked, if less) is left, so
    they do not wait for the refresh; while a refresh is in flight they get it down to ``skew``.
    One refresh per lifetime, then, and no caller queues behind the authorization server unless a
    refresh takes longer than the lead leaves it.
    """

    lead_fraction: float = 0.15
    """Refresh proactively once only this fraction of the lifetime is left."""
    max_demand_fraction: float = 0.10
    """A caller may demand at most this fraction of the lifetime (less than the lead)."""
    skew: float = 30.0
    """Never hand out a token within this many seconds of its expiry ..."""
    max_skew_fraction: float = 0.05
    """... or within this fraction of its lifetime, if that is smaller."""
    default_min_valid: float = 60.0
    """Seconds of validity a caller gets when it does not say."""
    min_interval: float = 1.0
    """Never run the refresh grant for one key more often than this (seconds)."""

    def __post_init__(self) -> None:
        if not 0 <= self.max_skew_fraction <= self.max_demand_fraction < self.lead_fraction < 1:
            raise ValueError("the refresh policy needs skew <= demand < lead < 1 (fractions)")

    def skew_for(self, tokens: TokenSet) -> float:
        return min(self.skew, self.max_skew_fraction * lifetime(tokens))

    def threshold(self, tokens: TokenSet, min_valid: float | None) -> float:
        """Seconds that must be left for ``tokens`` to be handed to a caller asking ``min_valid``.

        A caller cannot demand more than the part of the lifetime a token still has when its
        proactive refresh is due, or callers would wait for every refresh (or cause one).
        """
        wanted = self.default_min_valid if min_valid is None else max(0.0, min_valid)
        wanted = min(wanted, self.max_demand_fraction * lifetime(tokens))
        return max(self.skew_for(tokens), wanted)

    def refresh_offset(self, tokens: TokenSet) -> float:
        """Seconds after ``obtained_at`` at which a proactive refresh is due."""
        return (1 - self.lead_fraction) * lifetime(tokens)


def lifetime(tokens: TokenSet) -> float:
    return max(0.0, tokens.expires_at - tokens.obtained_at)


@dataclass(frozen=True)
class Sighting:
    """A token set and the moment (on both clocks) this process started trusting it."""

    tokens: TokenSet
    wall: float
    mono: float

    @classmethod
    def now(cls, tokens: TokenSet, clock: Clock) -> Sighting:
        return cls(tokens, clock.time(), clock.monotonic())

    def remaining(self, clock: Clock) -> float:
        """Seconds of validity left, the smaller of the wall-clock and monotonic views."""
        by_wall = self.tokens.expires_at - clock.time()
        by_mono = (self.tokens.expires_at - self.wall) - (clock.monotonic() - self.mono)
        return min(by_wall, by_mono)

    def usable(self, clock: Clock, policy: RefreshPolicy, min_valid: float | None) -> bool:
        return self.remaining(clock) > policy.threshold(self.tokens, min_valid)

    def servable(self, clock: Clock, policy: RefreshPolicy) -> bool:
        """Still valid beyond the skew (what is served while the authorization server is down)."""
        return self.remaining(clock) > policy.skew_for(self.tokens)

    def refresh_in(self, clock: Clock, policy: RefreshPolicy) -> float:
        """Seconds until a proactive refresh is due (<= 0: due now)."""
        due_left = lifetime(self.tokens) - policy.refresh_offset(self.tokens)
        return self.remaining(clock) - due_left
