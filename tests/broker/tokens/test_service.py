"""The token service: cache, single-flight refresh, durable rotation, faults."""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from broker.errors import (
    InteractionRequired,
    InvalidGrant,
    LockTimeout,
    ServerUnreachable,
    StorageError,
    StorageLocked,
    TokenRequestFailed,
)
from broker.filelock import lock_for
from broker.store.memory import MemoryTokenStore
from broker.tokens.backoff import Backoff
from broker.tokens.freshness import RefreshPolicy, lifetime
from broker.tokens.service import KeyStatus, State, TokenService
from broker.tokens.stamps import FileStamps
from broker.tokens.tokenset import TokenKey, TokenSet
from tests.broker.tokens.service_fakes import (
    CANARY,
    KEY,
    OTHER_KEY,
    FakeGrant,
    make_tokens,
)
from tests.support.clock import FakeClock


class RecordingStore(MemoryTokenStore):
    """The memory store, counting calls, with an optional hook run before each ``put``."""

    def __init__(self) -> None:
        super().__init__()
        self.gets = 0
        self.puts: list[TokenSet] = []
        self.before_put: Callable[[TokenSet], None] | None = None

    def get(self, key: TokenKey) -> TokenSet | None:
        self.gets += 1
        return super().get(key)

    def put(self, tokens: TokenSet) -> None:
        if self.before_put is not None:
            self.before_put(tokens)
        super().put(tokens)
        self.puts.append(tokens)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store() -> RecordingStore:
    return RecordingStore()


def make_service(
    store: RecordingStore, grant: FakeGrant, clock: FakeClock, **kwargs: object
) -> TokenService:
    kwargs.setdefault("backoff", Backoff(base=10, cap=60, rng=lambda: 0.5))
    return TokenService(store, grant, clock=clock, **kwargs)  # type: ignore[arg-type]


def run_threads(n: int, target: Callable[[], object]) -> list[object]:
    """Run ``target`` on ``n`` threads started together; results (or exceptions) in a list."""
    results: list[object] = []
    lock = threading.Lock()
    barrier = threading.Barrier(n)

    def worker() -> None:
        barrier.wait(30)
        try:
            value: object = target()
        except Exception as exc:
            value = exc
        with lock:
            results.append(value)

    threads = [threading.Thread(target=worker) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    return results


# --- #21 -----------------------------------------------------------------------------------------


def test_cached_token_with_enough_life_is_served_without_any_server_call(
    store: RecordingStore, clock: FakeClock
) -> None:
    stored = make_tokens(clock, lifetime=3600)
    store.put(stored)
    grant = FakeGrant(clock)
    service = make_service(store, grant, clock)

    served = [service.get_token(KEY, min_valid=60) for _ in range(100)]
    clock.advance(1000)
    served.append(service.get_token(KEY, min_valid=60))

    assert grant.calls == 0
    assert all(t.access_token == stored.access_token for t in served)
    assert store.gets == 1  # the hot path never touches the store either


def test_a_token_too_short_for_min_valid_is_refreshed(
    store: RecordingStore, clock: FakeClock
) -> None:
    store.put(make_tokens(clock, lifetime=3600, age=3500))  # 100 s left
    grant = FakeGrant(clock)
    service = make_service(store, grant, clock)

    assert service.get_token(KEY, min_valid=60).access_token == store.puts[0].access_token
    fresh = service.get_token(KEY, min_valid=300)

    assert grant.calls == 1
    assert fresh.seconds_left(clock.time()) > 300


# --- #22 -----------------------------------------------------------------------------------------


def test_refresh_is_single_flight_across_50_callers(
    store: RecordingStore, clock: FakeClock
) -> None:
    store.put(make_tokens(clock, lifetime=3600, age=4000))  # expired
    grant = FakeGrant(clock, gate=threading.Event())
    service = make_service(store, grant, clock)
    opener = threading.Thread(target=lambda: (grant.entered.wait(30), grant.gate.set()))  # type: ignore[union-attr]
    opener.start()

    results = run_threads(50, lambda: service.get_token(KEY))
    opener.join(30)

    assert grant.calls == 1
    assert all(isinstance(r, TokenSet) for r in results), results
    assert len({r.access_token for r in results}) == 1  # type: ignore[union-attr]
    assert results[0].access_token == store.get(KEY).access_token  # type: ignore[union-attr]


def test_two_services_sharing_store_and_file_lock_refresh_once(
    store: RecordingStore, clock: FakeClock, tmp_path: Path
) -> None:
    """Two processes' worth of services (separate caches and thread locks) share one refresh."""
    store.put(make_tokens(clock, lifetime=3600, age=4000))
    grant = FakeGrant(clock, gate=threading.Event())

    def file_lock(key: TokenKey) -> object:
        return lock_for(f"refresh:{key}", tmp_path / "locks", timeout=30)

    services = [
        make_service(store, grant, clock, lock_factory=file_lock),
        make_service(store, grant, clock, lock_factory=file_lock),
    ]
    opener = threading.Thread(target=lambda: (grant.entered.wait(30), grant.gate.set()))  # type: ignore[union-attr]
    opener.start()
    counter = iter(range(1000))
    lock = threading.Lock()

    def ask() -> TokenSet:
        with lock:
            n = next(counter)
        return services[n % 2].get_token(KEY)

    results = run_threads(20, ask)
    opener.join(30)

    assert grant.calls == 1
    assert len({r.access_token for r in results}) == 1  # type: ignore[union-attr]


# --- #23 -----------------------------------------------------------------------------------------


def test_rotated_refresh_token_is_stored_before_any_caller_gets_the_access_token(
    store: RecordingStore, clock: FakeClock
) -> None:
    old = make_tokens(clock, lifetime=3600, age=4000)
    store.put(old)
    grant = FakeGrant(clock, rotate=True)
    service = make_service(store, grant, clock)
    handed_out: list[TokenSet] = []
    seen_at_put: list[int] = []
    store.before_put = lambda tokens: seen_at_put.append(len(handed_out))

    def ask() -> TokenSet:
        tokens = service.get_token(KEY)
        handed_out.append(tokens)
        return tokens

    run_threads(10, ask)

    assert seen_at_put == [0]  # the write happened while nobody had the new token yet
    assert store.get(KEY).refresh_token != old.refresh_token  # type: ignore[union-attr]
    assert store.get(KEY) == handed_out[0]


def test_failed_store_write_withholds_the_token_and_retries_without_a_second_grant(
    store: RecordingStore, clock: FakeClock
) -> None:
    store.put(make_tokens(clock, lifetime=3600, age=4000))
    grant = FakeGrant(clock, rotate=True)
    service = make_service(store, grant, clock)

    def locked(tokens: TokenSet) -> None:
        raise StorageLocked("the keyring is locked")

    store.before_put = locked
    with pytest.raises(StorageLocked):
        service.get_token(KEY)
    store.before_put = None
    tokens = service.get_token(KEY)

    assert grant.calls == 1  # the rotated refresh token was not spent twice
    assert store.get(KEY) == tokens


def test_a_refresh_without_a_new_refresh_token_keeps_the_old_one(
    store: RecordingStore, clock: FakeClock
) -> None:
    old = make_tokens(clock, lifetime=3600, age=4000)
    store.put(old)
    service = make_service(store, FakeGrant(clock, rotate=False), clock)

    service.get_token(KEY)

    assert store.get(KEY).refresh_token == old.refresh_token  # type: ignore[union-attr]


# --- #24 -----------------------------------------------------------------------------------------


class Killed(BaseException):
    """Stands in for SIGKILL between the token response and the store write."""


def test_death_between_token_response_and_store_leaves_a_clean_sign_in_required(
    store: RecordingStore, clock: FakeClock
) -> None:
    old = make_tokens(clock, lifetime=3600, age=4000)
    store.put(old)
    grant = FakeGrant(clock, rotate=True, valid_refresh_tokens={old.refresh_token or ""})
    first = make_service(store, grant, clock)

    def die(tokens: TokenSet) -> None:
        raise Killed

    store.before_put = die
    with pytest.raises(Killed):
        first.get_token(KEY)
    store.before_put = None

    restarted = make_service(store, grant, clock)  # the old refresh token was rotated away
    with pytest.raises(InteractionRequired, match="revoked"):
        restarted.get_token(KEY)
    for _ in range(20):
        with pytest.raises(InteractionRequired):
            restarted.get_token(KEY)

    assert grant.calls == 2  # once before the crash, once after: no loop
    assert restarted.status(KEY).state is State.SIGN_IN_REQUIRED
    assert store.get(KEY) is None  # the dead grant is not tried again on the next start
    again = make_service(store, grant, clock)
    with pytest.raises(InteractionRequired):
        again.get_token(KEY)
    assert grant.calls == 2


def test_death_before_store_with_a_still_valid_token_keeps_serving_it(
    store: RecordingStore, clock: FakeClock
) -> None:
    old = make_tokens(clock, lifetime=3600, age=3000)  # 600 s left
    store.put(old)
    restarted = make_service(store, FakeGrant(clock), clock)

    assert restarted.get_token(KEY, min_valid=60).access_token == old.access_token


# --- #25 -----------------------------------------------------------------------------------------


def test_invalid_grant_means_sign_in_required_at_once_and_no_retry_storm(
    store: RecordingStore, clock: FakeClock
) -> None:
    store.put(make_tokens(clock, lifetime=3600, age=4000))
    grant = FakeGrant(clock, fail=InvalidGrant("refresh token expired", error="invalid_grant"))
    service = make_service(store, grant, clock)
    changes: list[KeyStatus] = []
    service.add_listener(lambda key, status: changes.append(status))

    results = run_threads(30, lambda: service.get_token(KEY))
    clock.advance(3600)
    with pytest.raises(InteractionRequired) as later:
        service.get_token(KEY)

    assert grant.calls == 1
    assert all(isinstance(r, InteractionRequired) for r in results)
    assert "refresh token expired" in str(later.value)
    status = service.status(KEY)
    assert status.state is State.SIGN_IN_REQUIRED
    assert status.reason and "refresh token expired" in status.reason
    assert [c.state for c in changes].count(State.SIGN_IN_REQUIRED) == 1  # one notification


def test_other_token_endpoint_refusals_also_need_the_user(
    store: RecordingStore, clock: FakeClock
) -> None:
    store.put(make_tokens(clock, lifetime=3600, age=4000))
    failure = TokenRequestFailed("refused (HTTP 401, invalid_client)", "invalid_client", 401)
    service = make_service(store, FakeGrant(clock, fail=failure), clock)

    with pytest.raises(InteractionRequired, match="invalid_client"):
        service.get_token(KEY)


def test_sign_in_in_another_process_is_picked_up(store: RecordingStore, clock: FakeClock) -> None:
    service = make_service(store, FakeGrant(clock), clock, recheck_interval=2.0)
    with pytest.raises(InteractionRequired, match="not signed in"):
        service.get_token(KEY)
    store.put(make_tokens(clock))  # `mcp-broker login` elsewhere
    clock.advance(3)

    assert service.get_token(KEY).access_token == store.get(KEY).access_token  # type: ignore[union-attr]


# --- #26 -----------------------------------------------------------------------------------------


def test_server_down_serves_still_valid_token_backs_off_and_recovers(
    store: RecordingStore, clock: FakeClock
) -> None:
    old = make_tokens(clock, lifetime=3600, age=3500)  # 100 s left, below min_valid 300
    store.put(old)
    grant = FakeGrant(clock, fail=ServerUnreachable("connection refused"))
    service = make_service(store, grant, clock, backoff=Backoff(base=10, cap=40, rng=lambda: 1.0))

    served = [service.get_token(KEY, min_valid=300) for _ in range(20)]
    assert grant.calls == 1  # the 19 others were inside the backoff window
    assert {t.access_token for t in served} == {old.access_token}
    assert service.status(KEY).state is State.RETRYING

    clock.advance(11)
    service.get_token(KEY, min_valid=300)
    assert grant.calls == 2
    clock.advance(21)
    service.get_token(KEY, min_valid=300)
    assert grant.calls == 3

    grant.fail = None
    clock.advance(41)
    recovered = service.get_token(KEY, min_valid=300)
    assert recovered.access_token != old.access_token
    assert service.status(KEY) == KeyStatus(
        KEY, State.VALID, expires_at=recovered.expires_at, scope=None
    )


def test_server_down_and_token_expired_raises_unreachable_without_hammering(
    store: RecordingStore, clock: FakeClock
) -> None:
    store.put(make_tokens(clock, lifetime=3600, age=4000))
    grant = FakeGrant(clock, fail=ServerUnreachable("name resolution failed"))
    service = make_service(store, grant, clock)

    results = run_threads(20, lambda: service.get_token(KEY))

    assert grant.calls == 1
    assert all(isinstance(r, ServerUnreachable) for r in results)


def test_unexpected_exception_in_the_grant_backs_off_like_a_network_error(
    store: RecordingStore, clock: FakeClock
) -> None:
    store.put(make_tokens(clock, lifetime=3600, age=4000))
    grant = FakeGrant(clock, fail=lambda: ValueError("bug"))
    service = make_service(store, grant, clock)

    for _ in range(5):
        with pytest.raises(ServerUnreachable):
            service.get_token(KEY)
    assert grant.calls == 1


def test_a_busy_file_lock_serves_the_still_valid_token(
    store: RecordingStore, clock: FakeClock
) -> None:
    old = make_tokens(clock, lifetime=3600, age=3500)
    store.put(old)

    def busy(key: TokenKey) -> object:
        raise LockTimeout("another process holds the lock")

    service = make_service(store, FakeGrant(clock), clock, lock_factory=busy)

    assert service.get_token(KEY, min_valid=300).access_token == old.access_token
    clock.advance(200)
    with pytest.raises(LockTimeout):
        service.get_token(KEY, min_valid=300)


def test_backoff_is_bounded_and_jittered() -> None:
    low = Backoff(base=2, cap=60, rng=lambda: 0.0)
    high = Backoff(base=2, cap=60, rng=lambda: 0.999)

    assert [low.delay(n) for n in (1, 2, 3)] == [1.0, 2.0, 4.0]
    assert high.delay(3) == pytest.approx(8, abs=0.01)
    assert all(30 <= low.delay(n) <= high.delay(n) <= 60 for n in (6, 10, 1000))
    assert low.delay(1, retry_after=45) == 45
    assert low.delay(1, retry_after=10_000) == 60


# --- #27 -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("lifetime", [0.0, -30.0, 0.001])
def test_an_already_expired_fresh_token_does_not_cause_a_tight_loop(
    store: RecordingStore, clock: FakeClock, lifetime: float
) -> None:
    store.put(make_tokens(clock, lifetime=3600, age=4000))
    grant = FakeGrant(clock, lifetime=lifetime)
    service = make_service(store, grant, clock)

    results = []
    for _ in range(50):
        results.append(_catch(service.get_token, KEY))
        clock.advance(0.01)

    assert grant.calls == 1
    assert all(isinstance(r, (TokenSet, ServerUnreachable)) for r in results)
    assert isinstance(results[-1], ServerUnreachable)


def test_margins_scale_with_short_lifetimes(clock: FakeClock) -> None:
    policy = RefreshPolicy()
    short = make_tokens(clock, lifetime=4)
    long = make_tokens(clock, lifetime=3600)

    assert policy.skew_for(short) == pytest.approx(0.2) and policy.skew_for(long) == 30.0
    assert policy.threshold(short, 3600) == pytest.approx(0.4)  # a caller's demand is capped
    assert policy.threshold(long, None) == 60.0 and policy.threshold(long, 3600) == 360.0
    assert policy.refresh_offset(short) == pytest.approx(3.4)  # 15% of the lifetime left
    assert policy.refresh_offset(long) == pytest.approx(3060.0)
    # Callers are still served after the proactive refresh is due, so they do not wait for it.
    for tokens in (short, long):
        left_at_refresh = lifetime(tokens) - policy.refresh_offset(tokens)
        assert left_at_refresh > policy.threshold(tokens, 1e9) >= policy.skew_for(tokens)


@pytest.mark.parametrize(
    "fractions",
    [
        {"lead_fraction": 0.1, "max_demand_fraction": 0.1},  # callers would wait for refreshes
        {"max_skew_fraction": 0.2},  # a token would never be handed out after the lead
        {"lead_fraction": 1.0},
        {"max_skew_fraction": -0.1},
    ],
)
def test_an_inconsistent_policy_is_refused(fractions: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="skew <= demand < lead"):
        RefreshPolicy(**fractions)


def test_a_caller_asking_for_more_than_a_lifetime_does_not_refresh_every_time(
    store: RecordingStore, clock: FakeClock
) -> None:
    store.put(make_tokens(clock, lifetime=10, age=20))
    grant = FakeGrant(clock, lifetime=10)
    service = make_service(store, grant, clock)

    for _ in range(10):
        service.get_token(KEY, min_valid=3600)

    assert grant.calls == 1


# --- #28 -----------------------------------------------------------------------------------------


def test_wall_clock_jump_forward_refreshes(store: RecordingStore, clock: FakeClock) -> None:
    store.put(make_tokens(clock, lifetime=3600))
    grant = FakeGrant(clock)
    service = make_service(store, grant, clock)
    first = service.get_token(KEY)

    clock.jump_wall(7200)  # resumed after two hours asleep: monotonic time stood still
    second = service.get_token(KEY)

    assert grant.calls == 1
    assert second.access_token != first.access_token
    assert second.seconds_left(clock.time()) > 60


def test_wall_clock_stepped_back_cannot_stretch_a_token(
    store: RecordingStore, clock: FakeClock
) -> None:
    store.put(make_tokens(clock, lifetime=600))
    grant = FakeGrant(clock)
    service = make_service(store, grant, clock)
    first = service.get_token(KEY)

    clock.jump_wall(-3600)
    clock.advance(590)  # by the wall it looks like an hour is left; it is ten seconds
    second = service.get_token(KEY)

    assert grant.calls == 1
    assert second.access_token != first.access_token


def test_no_token_is_served_past_expiry_minus_skew_even_when_server_is_down(
    store: RecordingStore, clock: FakeClock
) -> None:
    store.put(make_tokens(clock, lifetime=3600, age=3500))
    grant = FakeGrant(clock, fail=ServerUnreachable("down"))
    service = make_service(store, grant, clock)
    service.get_token(KEY, min_valid=0)

    clock.advance(100 - 30)  # exactly at expiry minus the 30 s skew
    with pytest.raises(ServerUnreachable):
        service.get_token(KEY, min_valid=0)


# --- #29 -----------------------------------------------------------------------------------------


def test_sign_out_during_an_in_flight_refresh_discards_its_result(
    store: RecordingStore, clock: FakeClock, tmp_path: Path
) -> None:
    store.put(make_tokens(clock, lifetime=3600, age=4000))
    grant = FakeGrant(clock, gate=threading.Event())

    def file_lock(key: TokenKey) -> object:
        return lock_for(f"refresh:{key}", tmp_path, timeout=30)

    service = make_service(store, grant, clock, lock_factory=file_lock)
    outcome: dict[str, object] = {}
    caller = threading.Thread(
        target=lambda: outcome.setdefault("caller", _catch(service.get_token, KEY))
    )
    caller.start()
    assert grant.entered.wait(30)

    signer_out = threading.Thread(
        target=lambda: outcome.setdefault("sign_out", service.sign_out(KEY))
    )
    signer_out.start()
    _wait_for(lambda: service.status(KEY).state is State.SIGNED_OUT)
    grant.gate.set()  # type: ignore[union-attr]
    caller.join(30)
    signer_out.join(30)

    assert isinstance(outcome["caller"], InteractionRequired)
    removed = outcome["sign_out"]
    assert isinstance(removed, list) and len(removed) == 1
    assert store.get(KEY) is None
    assert store.puts[-1].access_token == removed[0].access_token  # only the original put
    with pytest.raises(InteractionRequired):
        service.get_token(KEY)


def test_sign_out_returns_what_to_revoke_and_forgets_everything(
    store: RecordingStore, clock: FakeClock
) -> None:
    tokens = make_tokens(clock)
    store.put(tokens)
    service = make_service(store, FakeGrant(clock), clock)
    service.get_token(KEY)

    removed = service.sign_out(KEY)

    assert [t.refresh_token for t in removed] == [tokens.refresh_token]
    assert store.get(KEY) is None
    with pytest.raises(InteractionRequired, match="signed out"):
        service.get_token(KEY)


def test_new_sign_in_replaces_state_and_discards_older_refresh(
    store: RecordingStore, clock: FakeClock
) -> None:
    grant = FakeGrant(clock, fail=InvalidGrant("gone", error="invalid_grant"))
    store.put(make_tokens(clock, age=4000))
    service = make_service(store, grant, clock)
    with pytest.raises(InteractionRequired):
        service.get_token(KEY)

    fresh = make_tokens(clock)
    service.put(fresh)

    assert service.get_token(KEY) == fresh
    assert store.get(KEY) == fresh


# --- #30 -----------------------------------------------------------------------------------------


def test_a_token_for_one_resource_is_never_returned_for_another(
    store: RecordingStore, clock: FakeClock
) -> None:
    store.put(make_tokens(clock, key=KEY))
    service = make_service(store, FakeGrant(clock), clock)

    assert service.get_token(KEY).key == KEY
    with pytest.raises(InteractionRequired):
        service.get_token(OTHER_KEY)


def test_a_refresh_answer_for_another_resource_is_refused(
    store: RecordingStore, clock: FakeClock
) -> None:
    store.put(make_tokens(clock, key=KEY, age=4000))

    def wrong_resource(tokens: TokenSet) -> TokenSet:
        return make_tokens(clock, key=OTHER_KEY)

    service = make_service(store, wrong_resource, clock)  # type: ignore[arg-type]

    with pytest.raises(InteractionRequired, match="another resource"):
        service.get_token(KEY)
    assert store.get(OTHER_KEY) is None


def test_a_store_answer_for_another_key_is_ignored(clock: FakeClock) -> None:
    class ConfusedStore(RecordingStore):
        def get(self, key: TokenKey) -> TokenSet | None:
            return make_tokens(clock, key=OTHER_KEY)

    service = TokenService(ConfusedStore(), FakeGrant(clock), clock=clock)

    with pytest.raises(InteractionRequired):
        service.get_token(KEY)


# --- #52 (canaries) ------------------------------------------------------------------------------


def test_no_token_value_reaches_the_log(
    store: RecordingStore, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    store.put(make_tokens(clock, age=4000))
    grant = FakeGrant(clock, rotate=True)
    service = make_service(store, grant, clock)
    service.get_token(KEY)
    grant.fail = ServerUnreachable("down")
    clock.advance(3600)
    with pytest.raises(ServerUnreachable):
        service.get_token(KEY)
    grant.fail = InvalidGrant("dead", error="invalid_grant")
    clock.advance(600)
    with pytest.raises(InteractionRequired):
        service.get_token(KEY)
    service.sign_out(KEY)

    assert caplog.records  # it did log
    assert CANARY not in caplog.text
    assert all(CANARY not in repr(s) for s in store.puts)


def test_storage_errors_reach_the_caller(clock: FakeClock) -> None:
    class BrokenStore(RecordingStore):
        def get(self, key: TokenKey) -> TokenSet | None:
            raise StorageError("no keyring")

    service = TokenService(BrokenStore(), FakeGrant(clock), clock=clock)

    with pytest.raises(StorageError, match="no keyring"):
        service.get_token(KEY)


def _catch(fn: Callable[..., object], *args: object) -> object:
    try:
        return fn(*args)
    except Exception as exc:
        return exc


def _wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    done = threading.Event()
    for _ in range(int(timeout / 0.01)):
        if condition():
            return
        done.wait(0.01)
    raise AssertionError("condition not reached")


def test_a_torn_read_during_another_process_write_is_read_again_under_the_lock(
    clock: FakeClock,
) -> None:
    """A keyring entry being rewritten by another process reads as unreadable (None)."""
    tokens = make_tokens(clock)
    locked: list[bool] = []

    class TornStore(RecordingStore):
        def get(self, key: TokenKey) -> TokenSet | None:
            return None  # the cached-path read raced a writer

        def reload(self, key: TokenKey) -> TokenSet | None:
            return tokens if locked and locked[-1] else None

    @contextmanager
    def lock(key: TokenKey) -> Iterator[None]:
        locked.append(True)
        yield
        locked.append(False)

    grant = FakeGrant(clock)
    service = TokenService(TornStore(), grant, clock=clock, lock_factory=lock)

    assert service.get_token(KEY) == tokens
    assert grant.calls == 0


def test_callers_get_the_still_valid_token_while_a_refresh_is_in_flight(
    store: RecordingStore, clock: FakeClock
) -> None:
    current = make_tokens(clock, lifetime=10, age=9)  # past the refresh point, 1 s left
    store.put(current)
    grant = FakeGrant(clock, lifetime=10, gate=threading.Event())
    service = make_service(store, grant, clock)
    refreshing = threading.Thread(target=service.refresh, args=(KEY,))
    refreshing.start()
    try:
        assert grant.entered.wait(10)
        # Not usable for 60 s (or the 1 s demand cap), but valid beyond the skew: served at
        # once, not after the refresh.
        served: list[object] = []
        asker = threading.Thread(target=lambda: served.append(service.get_token(KEY, 60)))
        asker.start()
        asker.join(5)
        assert [getattr(t, "access_token", t) for t in served] == [current.access_token]
        clock.advance(0.6)  # now within the skew (0.5 s of a 10 s token): no longer servable
        waiter = threading.Thread(target=service.get_token, args=(KEY,))
        waiter.start()
        waiter.join(0.2)
        assert waiter.is_alive()  # it waits for the refresh instead of getting an expiring token
    finally:
        assert grant.gate is not None
        grant.gate.set()
        refreshing.join(10)
    waiter.join(10)
    assert grant.calls == 1
    assert service.get_token(KEY).access_token != current.access_token


# --- sign-in stamps: another process signs in or out ---------------------------------------------


class CachingView(MemoryTokenStore):
    """One process's view of a shared store, caching like the keyring store: ``get`` answers
    from the cache once it has read a key, ``reload`` reads the shared store."""

    def __init__(self, shared: MemoryTokenStore) -> None:
        super().__init__()
        self.shared = shared

    def get(self, key: TokenKey) -> TokenSet | None:
        return super().get(key) or self.reload(key)

    def reload(self, key: TokenKey) -> TokenSet | None:
        tokens = self.shared.get(key)
        if tokens is not None:
            super().put(tokens)
        return tokens

    def put(self, tokens: TokenSet) -> None:
        self.shared.put(tokens)
        super().put(tokens)

    def delete(self, key: TokenKey) -> None:
        self.shared.delete(key)
        super().delete(key)


def test_a_sign_out_in_another_process_stops_this_one_serving_the_token(
    store: RecordingStore, clock: FakeClock, tmp_path: Path
) -> None:
    """The tray keeps tokens in memory; ``mcp-broker logout`` runs in another process."""
    store.put(make_tokens(clock, lifetime=3600))
    grant = FakeGrant(clock)
    tray = make_service(CachingView(store), grant, clock, stamps=FileStamps(tmp_path))  # type: ignore[arg-type]
    cli = make_service(CachingView(store), grant, clock, stamps=FileStamps(tmp_path))  # type: ignore[arg-type]
    served = tray.get_token(KEY)

    removed = cli.sign_out(KEY)
    assert [t.access_token for t in removed] == [served.access_token]
    assert tray.get_token(KEY) == served  # within the follow interval: not looked yet

    clock.advance(1.0)
    with pytest.raises(InteractionRequired):
        tray.get_token(KEY)
    assert tray.status(KEY).state is State.SIGNED_OUT
    assert grant.calls == 0


def test_a_sign_in_in_another_process_replaces_the_token_held_here(
    store: RecordingStore, clock: FakeClock, tmp_path: Path
) -> None:
    store.put(make_tokens(clock, lifetime=3600))
    grant = FakeGrant(clock)
    tray = make_service(store, grant, clock, stamps=FileStamps(tmp_path))
    cli = make_service(store, grant, clock, stamps=FileStamps(tmp_path))
    old = tray.get_token(KEY)

    new = make_tokens(clock, lifetime=3600)
    cli.put(new)
    clock.advance(1.0)

    assert tray.get_token(KEY) == new != old
    assert grant.calls == 0


def test_this_process_own_sign_in_is_not_mistaken_for_another(
    store: RecordingStore, clock: FakeClock, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    service = make_service(store, FakeGrant(clock), clock, stamps=FileStamps(tmp_path))
    tokens = make_tokens(clock)
    service.put(tokens)
    caplog.set_level(logging.INFO, logger="broker.tokens.service")

    clock.advance(5)
    assert service.get_token(KEY) == tokens
    assert "another process" not in caplog.text  # the stamp it sees is its own


def test_stamp_files_hold_nothing_about_the_key_or_its_tokens(
    store: RecordingStore, clock: FakeClock, tmp_path: Path
) -> None:
    service = make_service(store, FakeGrant(clock), clock, stamps=FileStamps(tmp_path / "s"))
    tokens = make_tokens(clock)
    service.put(tokens)
    service.sign_out(KEY)

    (stamp,) = (tmp_path / "s").iterdir()
    content = stamp.read_bytes()
    assert len(content) == 16
    for secret in (tokens.access_token, tokens.refresh_token, KEY.resource, KEY.issuer):
        assert secret is not None and secret.encode() not in content
        assert secret not in stamp.name
    assert stamp.stat().st_mode & 0o077 == 0


def test_a_refresh_without_an_id_token_keeps_the_user_shown(
    store: RecordingStore, clock: FakeClock
) -> None:
    store.put(dataclasses.replace(make_tokens(clock, lifetime=3600, age=4000), user="ada"))
    service = make_service(store, FakeGrant(clock), clock)

    fresh = service.get_token(KEY)

    assert fresh.user == "ada" and service.status(KEY).user == "ada"


def test_a_refresh_failing_after_a_sign_in_elsewhere_gives_way_to_the_new_tokens(
    store: RecordingStore, clock: FakeClock, tmp_path: Path
) -> None:
    store.put(make_tokens(clock, lifetime=3600, age=4000))  # expired: the tray must refresh
    grant = FakeGrant(clock, gate=threading.Event(), fail=ServerUnreachable("down"))
    tray = make_service(CachingView(store), grant, clock, stamps=FileStamps(tmp_path))  # type: ignore[arg-type]
    cli = make_service(CachingView(store), FakeGrant(clock), clock, stamps=FileStamps(tmp_path))  # type: ignore[arg-type]
    tray.status(KEY)
    results: list[object] = []
    refreshing = threading.Thread(target=lambda: results.append(_catch(tray.get_token, KEY)))
    refreshing.start()
    assert grant.entered.wait(10)

    new = make_tokens(clock, lifetime=3600)
    cli.put(new)  # the user signs in again from a terminal while the tray's refresh hangs
    clock.advance(1.0)
    assert grant.gate is not None
    grant.gate.set()  # ... and then that refresh fails
    refreshing.join(10)

    assert results == [new]  # not ServerUnreachable for a backoff period
    assert tray.get_token(KEY) == new
    assert tray.status(KEY).state is State.VALID and grant.calls == 1
