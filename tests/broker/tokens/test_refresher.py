"""Proactive background refresh (issue 3 "Refresher"), on the token service's locks."""

from __future__ import annotations

import threading
import time

import pytest

from broker.errors import InvalidGrant, ServerUnreachable, StorageTimeout, StorageUnavailable
from broker.store.memory import MemoryTokenStore
from broker.tokens.backoff import Backoff
from broker.tokens.freshness import RefreshPolicy
from broker.tokens.refresher import Refresher
from broker.tokens.service import State, TokenService
from broker.tokens.tokenset import TokenKey, TokenSet
from tests.broker.tokens.service_fakes import KEY, OTHER_KEY, FakeGrant, make_tokens
from tests.support.clock import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def service_with(
    clock: FakeClock, grant: FakeGrant, *tokens: TokenSet
) -> tuple[TokenService, MemoryTokenStore]:
    store = MemoryTokenStore()
    for t in tokens:
        store.put(t)
    backoff = Backoff(base=10, cap=60, rng=lambda: 0.5)
    return TokenService(store, grant, clock=clock, backoff=backoff), store


def test_refreshes_with_fifteen_percent_of_the_lifetime_left_not_before(clock: FakeClock) -> None:
    grant = FakeGrant(clock, lifetime=3600)
    service, store = service_with(clock, grant, make_tokens(clock, lifetime=3600))
    refresher = Refresher(service)
    first = service.get_token(KEY)  # the service now knows the key: the refresher watches it

    assert refresher.run_once() == 30.0  # due in 3060 s; it sleeps at most max_sleep
    clock.advance(3059)
    refresher.run_once()
    assert grant.calls == 0

    clock.advance(2)
    refresher.run_once()
    assert grant.calls == 1
    fresh = store.get(KEY)
    assert fresh is not None and fresh.access_token != first.access_token
    assert service.get_token(KEY).access_token == fresh.access_token  # callers see it at once


def test_a_short_token_is_refreshed_on_time_not_a_second_late(clock: FakeClock) -> None:
    """One refresh per lifetime: the thread sleeps exactly until the refresh is due."""
    grant = FakeGrant(clock, lifetime=5)
    service, _ = service_with(clock, grant, make_tokens(clock, lifetime=5))
    refresher = Refresher(service, min_sleep=1.0)
    service.get_token(KEY, min_valid=0)

    clock.advance(4.0)
    assert refresher.run_once() == pytest.approx(0.25)  # 0.75 s left at 4.25 s: not 1 s
    clock.advance(0.25)
    sleep = refresher.run_once()
    assert sleep == pytest.approx(4.25)  # refreshed; the next one in 4.25 s
    assert grant.calls == 1

    for _ in range(10):
        clock.advance(sleep)
        sleep = refresher.run_once()
    assert grant.calls == 11  # ten more lifetimes, ten more refreshes


def test_each_watched_key_is_refreshed_on_its_own_schedule(clock: FakeClock) -> None:
    grant = FakeGrant(clock, lifetime=3600)
    a = make_tokens(clock, lifetime=400, key=KEY)
    b = make_tokens(clock, lifetime=4000, key=OTHER_KEY)
    service, _ = service_with(clock, grant, a, b)
    refresher = Refresher(service, max_sleep=10_000)
    refresher.watch(KEY)
    refresher.watch(OTHER_KEY)
    service.status(KEY)
    service.status(OTHER_KEY)

    assert refresher.run_once() == pytest.approx(340)
    clock.advance(341)
    refresher.run_once()

    assert grant.calls == 1
    assert service.get_token(KEY).expires_at > a.expires_at
    assert service.get_token(OTHER_KEY) == b


def test_a_failing_server_is_retried_with_backoff_not_in_a_loop(clock: FakeClock) -> None:
    grant = FakeGrant(clock, fail=ServerUnreachable("down"))
    service, _ = service_with(clock, grant, make_tokens(clock, lifetime=3600, age=3100))
    refresher = Refresher(service, max_sleep=10_000)
    service.get_token(KEY, min_valid=0)

    sleeps = [refresher.run_once() for _ in range(5)]

    assert grant.calls == 1
    assert all(s == pytest.approx(7.5) for s in sleeps)  # the backoff delay, not zero
    clock.advance(7.5)
    refresher.run_once()
    assert grant.calls == 2
    assert service.status(KEY).state is State.RETRYING


def test_a_dead_grant_stops_proactive_refresh(clock: FakeClock) -> None:
    grant = FakeGrant(clock, fail=InvalidGrant("revoked", error="invalid_grant"))
    service, _ = service_with(clock, grant, make_tokens(clock, lifetime=3600, age=3100))
    refresher = Refresher(service)
    service.get_token(KEY, min_valid=0)

    for _ in range(5):
        refresher.run_once()
        clock.advance(100)

    assert grant.calls == 1
    assert service.status(KEY).state is State.SIGN_IN_REQUIRED


def test_tiny_lifetimes_never_make_the_thread_spin(clock: FakeClock) -> None:
    grant = FakeGrant(clock, lifetime=0.01)
    service, _ = service_with(clock, grant, make_tokens(clock, lifetime=0.01))
    refresher = Refresher(service, min_sleep=1.0)
    service.get_token(KEY, min_valid=0)

    sleeps = []
    for _ in range(50):
        sleeps.append(refresher.run_once())
        clock.advance(sleeps[-1])

    assert min(sleeps) >= 0.01
    # The service grants at most one refresh a second (min_interval); the thread waits a second
    # whenever a key is still due right after a refresh.
    assert grant.calls <= 1 + sum(sleeps)
    assert sum(sleeps) >= 20


def test_sleep_and_resume_refreshes_on_the_next_wakeup(clock: FakeClock) -> None:
    grant = FakeGrant(clock, lifetime=3600)
    service, _ = service_with(clock, grant, make_tokens(clock, lifetime=3600))
    refresher = Refresher(service)
    service.get_token(KEY)

    clock.jump_wall(5000)  # suspended: the monotonic clock stood still
    refresher.run_once()

    assert grant.calls == 1


def test_the_thread_refreshes_in_the_background_and_stops_cleanly() -> None:
    """Real time: a token of 2 s is refreshed by the thread without any caller asking."""
    from broker.tokens.clock import SystemClock

    real = SystemClock()
    refreshed = threading.Event()

    class SignalingGrant(FakeGrant):
        def __call__(self, tokens: TokenSet) -> TokenSet:
            fresh = super().__call__(tokens)
            refreshed.set()
            return fresh

    fake = FakeClock(wall=real.time(), mono=real.monotonic())
    grant = SignalingGrant(fake, lifetime=3600)
    store = MemoryTokenStore()
    store.put(make_tokens(fake, lifetime=2))
    policy = RefreshPolicy(min_interval=0.0)
    service = TokenService(store, grant, clock=real, policy=policy)
    refresher = Refresher(service, max_sleep=0.2, min_sleep=0.05)
    service.get_token(KEY, min_valid=0)
    refresher.start()
    try:
        assert refreshed.wait(30), "the background refresh never happened"
    finally:
        refresher.stop()

    assert grant.calls == 1
    assert not any(t.name == "token-refresher" for t in threading.enumerate())


def test_a_watched_key_is_read_from_the_store_and_refreshed_when_due(clock: FakeClock) -> None:
    """The running broker watches every signed-in server at start, before any caller asks."""
    grant = FakeGrant(clock, lifetime=3600)
    service, store = service_with(clock, grant, make_tokens(clock, lifetime=3600, age=3100))
    refresher = Refresher(service)
    refresher.watch(KEY)

    refresher.run_once()

    assert grant.calls == 1
    assert store.get(KEY) is not None and store.get(KEY).obtained_at == clock.time()  # type: ignore[union-attr]


def test_one_slow_authorization_server_never_holds_up_another_servers_refresh(
    clock: FakeClock,
) -> None:
    """The slow server's refresh waits until the other server's token is refreshed: done one
    after another on one thread, it would wait in vain (and the other token would go stale)."""
    slow_key, quick_key = sorted([KEY, OTHER_KEY])
    quick_refreshed = threading.Event()
    saw_quick_refreshed: list[bool] = []

    class OneSlowServer(FakeGrant):
        def __call__(self, tokens: TokenSet) -> TokenSet:
            if tokens.key == slow_key:
                saw_quick_refreshed.append(quick_refreshed.wait(10))
            fresh = super().__call__(tokens)
            if tokens.key == quick_key:
                quick_refreshed.set()
            return fresh

    grant = OneSlowServer(clock, lifetime=3600)
    old = [make_tokens(clock, lifetime=3600, age=3100, key=k) for k in (slow_key, quick_key)]
    service, store = service_with(clock, grant, *old)
    refresher = Refresher(service, settle=30)
    refresher.watch(slow_key)
    refresher.watch(quick_key)

    refresher.run_once()

    assert saw_quick_refreshed == [True]
    assert grant.calls == 2
    assert all(store.get(t.key) != t for t in old)  # both refreshed


def test_a_slow_refresh_never_makes_another_keys_refresh_late(clock: FakeClock) -> None:
    """One key's refresh is in flight and slow; another key comes due a moment later. The loop
    must look again when that key is due, not sit out the whole ``settle`` wait for the slow one
    (with 5 s tokens that wait outlasts the 0.75 s a token has left when its refresh is due)."""
    slow_key, later_key = KEY, OTHER_KEY
    later_refreshed = threading.Event()
    saw_later_refreshed: list[bool] = []

    class OneSlowRefresh(FakeGrant):
        def __call__(self, tokens: TokenSet) -> TokenSet:
            if tokens.key == slow_key:
                saw_later_refreshed.append(later_refreshed.wait(10))
            fresh = super().__call__(tokens)
            if tokens.key == later_key:
                later_refreshed.set()
            return fresh

    grant = OneSlowRefresh(clock, lifetime=3600)
    due_now = make_tokens(clock, lifetime=3600, age=3100, key=slow_key)
    due_soon = make_tokens(clock, lifetime=3600, age=3059.5, key=later_key)  # due in 0.5 s
    service, _ = service_with(clock, grant, due_now, due_soon)
    refresher = Refresher(service, settle=30)
    refresher.watch(slow_key)
    refresher.watch(later_key)

    # The first look starts the slow refresh and returns by the time the other key is due; a
    # later look starts the other key's refresh while the slow one is still running.
    for _ in range(5):
        clock.advance(refresher.run_once())
        if later_refreshed.is_set():
            break
    refresher.stop()

    assert saw_later_refreshed == [True]
    assert grant.calls == 2


class FailingFirstReads(TokenService):
    """A service whose store does not answer for the first ``failures`` reads of the schedule
    (a keyring that is slow at login, or restarting)."""

    failures = 2

    def refresh_in(self, key: TokenKey) -> float | None:
        if self.failures:
            self.failures -= 1
            raise StorageTimeout("the keyring did not answer within 10 s; cannot read tokens now")
        return super().refresh_in(key)


def test_the_thread_survives_a_keyring_that_does_not_answer_and_refreshes_later(
    clock: FakeClock,
) -> None:
    grant = FakeGrant(clock, lifetime=3600)
    store = MemoryTokenStore()
    store.put(make_tokens(clock, lifetime=3600))
    service = FailingFirstReads(store, grant, clock=clock)
    refresher = Refresher(service, min_sleep=0.01, max_sleep=0.05)
    refresher.watch(KEY)
    clock.advance(3590)  # due
    refresher.start()
    try:
        deadline = time.monotonic() + 10
        while grant.calls == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        refresher.stop()
    assert service.failures == 0
    assert grant.calls == 1


class GoneKeyring(MemoryTokenStore):
    """A store whose daemon went away after the tokens were loaded: every read raises."""

    gone = False
    reads = 0

    def reload(self, key: TokenKey) -> TokenSet | None:
        if self.gone:
            self.reads += 1
            raise StorageUnavailable("The keyring could not be opened (no Secret Service).")
        return super().reload(key)


def test_a_refresh_that_fails_at_once_is_not_started_again_in_a_tight_loop() -> None:
    """The keyring daemon gone (the 20 min soak saw it): each refresh fails at once and wakes
    the loop; the key is still due, and was started again at once, ~500 times a second. Now a
    key is started at most once per ``min_sleep``."""
    from broker.tokens.clock import SystemClock

    real = SystemClock()
    store = GoneKeyring()
    store.put(
        TokenSet(KEY, "CANARY-SECRET-a", expires_at=real.time() + 0.5, refresh_token="CANARY-r")
    )
    service = TokenService(store, FakeGrant(FakeClock()), clock=real)
    service.get_token(KEY, min_valid=0)
    store.gone = True
    refresher = Refresher(service, min_sleep=0.2, max_sleep=0.5)
    refresher.watch(KEY)
    refresher.start()
    time.sleep(1.5)
    refresher.stop()

    assert 1 <= store.reads <= 1.5 / 0.2 + 1, store.reads
