"""The token service: "give me a valid access token for key K with at least N seconds left".

Order of answers: the in-memory cache (no I/O, SECURITY.md #21); else one refresh per key at a
time, across threads (a per-key lock) and processes (a per-key file lock, after which the store is
read again because another process may have refreshed already, #22); else ``InteractionRequired``
at once (#25). The refresh grant itself, the store, the lock and the clocks are injected.

Invariants:

- A refreshed token set is written to the store before any caller sees it, so a rotated refresh
  token is never only in memory (#23). If the process dies before the write, the store still holds
  the previous set: its access token while valid, then ``invalid_grant`` and "sign-in required"
  (#24), never a loop.
- Each key has a generation, bumped by sign-in and sign-out; a refresh that started under an older
  generation is thrown away (#29).
- Failures that may pass (server down, 5xx, 429, timeouts) start a jittered backoff; until it ends,
  callers get the still-valid token or ``ServerUnreachable`` without touching the server (#26).
- Tokens are stored and cached only under the key they were asked for; a set whose key differs is
  refused (#30).
- Sign-in and sign-out bump the key's stamp (:mod:`broker.tokens.stamps`); a service that sees
  another process's stamp (checked at most once per ``follow_interval``) drops what it holds for
  the key and reads the store again, so a sign-out anywhere ends every process's serving of the
  token.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import logging
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

from broker.errors import (
    AuthorizationError,
    BrokerError,
    InteractionRequired,
    LockTimeout,
    ServerUnreachable,
    StorageError,
)
from broker.store.base import TokenStore
from broker.tokens.backoff import Backoff
from broker.tokens.clock import Clock, SystemClock
from broker.tokens.dpop import is_bound
from broker.tokens.freshness import RefreshPolicy, Sighting
from broker.tokens.stamps import SignInStamps
from broker.tokens.tokenset import TokenKey, TokenSet

logger = logging.getLogger(__name__)

RefreshGrant = Callable[[TokenSet], TokenSet]
"""Runs the refresh-token grant for a stored set and returns the new set (same key).

Raises ``InteractionRequired`` (or another ``AuthorizationError``) when the grant is dead
(``invalid_grant`` and friends), ``ServerUnreachable`` when the failure may pass. The broker's is
:class:`broker.tokens.grant.RefreshGrant`.
"""
LockFactory = Callable[[TokenKey], AbstractContextManager[object]]
Listener = Callable[[TokenKey, "KeyStatus"], None]


class State(enum.Enum):
    UNKNOWN = "unknown"
    """Nothing read yet for this key."""
    VALID = "valid"
    SIGNED_OUT = "signed_out"
    SIGN_IN_REQUIRED = "sign_in_required"
    RETRYING = "retrying"
    """The last refresh failed for a passing reason; a retry is scheduled."""


@dataclass(frozen=True)
class KeyStatus:
    """What may be shown about a key: never a token."""

    key: TokenKey
    state: State
    reason: str | None = None
    expires_at: float | None = None
    scope: str | None = None
    failures: int = 0
    user: str | None = None
    dpop_bound: bool = False
    """The tokens are DPoP-bound (RFC 9449): only the broker's bridge and ``call`` can use them."""


class _Entry:
    def __init__(self, key: TokenKey) -> None:
        self.key = key
        self.refresh_lock = threading.Lock()  # single flight within this process
        self.mu = threading.Lock()  # guards the fields below and commits to the store
        self.sighting: Sighting | None = None
        self.state = State.UNKNOWN
        self.reason: str | None = None
        self.generation = 0
        self.failures = 0
        self.retry_at: float | None = None  # monotonic
        self.last_error: BrokerError | None = None
        self.store_checked_at: float | None = None  # monotonic, for signed-out keys
        self.unsaved: TokenSet | None = None  # refreshed but not yet written to the store
        self.granted_at: float | None = None  # monotonic time of the last refresh grant
        self.stamp: bytes | None = None  # the sign-in stamp last seen (broker.tokens.stamps)
        self.stamp_checked_at: float | None = None  # monotonic
        self.store_cache_stale = False  # another process changed the key: read past the cache


def _interaction_required(state: State, reason: str) -> InteractionRequired:
    if state is State.SIGN_IN_REQUIRED:
        return InteractionRequired(f"sign-in required: {reason}")
    return InteractionRequired(reason)


UNREACHABLE = "can't reach the authorization server"
"""How a key whose refresh fails for a passing reason is described (status, tray): the user
must not be told to sign in while the server is merely away, and the refresh token is kept."""


def _retry_reason(error: BrokerError) -> str:
    if isinstance(error, ServerUnreachable):
        return f"{UNREACHABLE}: {error}"
    return str(error)  # e.g. another process holds the key's lock


def _thread_only_lock(key: TokenKey) -> AbstractContextManager[object]:
    return contextlib.nullcontext()


class TokenService:
    def __init__(
        self,
        store: TokenStore,
        refresh_grant: RefreshGrant,
        *,
        lock_factory: LockFactory = _thread_only_lock,
        clock: Clock | None = None,
        policy: RefreshPolicy | None = None,
        backoff: Backoff | None = None,
        recheck_interval: float = 2.0,
        stamps: SignInStamps | None = None,
        follow_interval: float = 1.0,
    ) -> None:
        self._store = store
        self._refresh_grant = refresh_grant
        self._lock_factory = lock_factory
        self.clock: Clock = clock or SystemClock()
        self.policy = policy or RefreshPolicy()
        self._backoff = backoff or Backoff()
        # Both are polls, made only when a caller asks for a token (never on a timer), at most
        # once a second per key (the stamp file) or every two seconds (the keyring, for a key
        # that needs a sign-in): another process's sign-in or sign-out can only be seen by
        # reading them, there is no portable change notification.
        self._recheck_interval = recheck_interval
        self._stamps = stamps
        self._follow_interval = follow_interval
        self._entries: dict[TokenKey, _Entry] = {}
        self._entries_lock = threading.Lock()
        self._listeners: list[Listener] = []

    # -- public -------------------------------------------------------------------------------

    def get_token(self, key: TokenKey, min_valid: float | None = None) -> TokenSet:
        """A token set for ``key`` valid for at least ``min_valid`` seconds (policy-capped).

        Raises ``InteractionRequired`` when the user must sign in, ``ServerUnreachable`` when the
        authorization server cannot be reached and no still-valid token is left, and
        ``StorageError`` when the store cannot be used.
        """
        entry = self._entry(key)
        self._follow_other_processes(entry)
        self._load_once(entry)
        fast = self._cached(entry, min_valid)
        if fast is not None:
            return fast
        self._raise_if_sign_in_required(entry)
        if not entry.refresh_lock.acquire(blocking=False):
            # A refresh is running: while the current token is still valid beyond the skew,
            # callers get it at once instead of queueing behind the authorization server and
            # the keyring write (a slow refresh must not stall every client).
            servable = self._servable(entry)
            if servable is not None:
                return servable
            entry.refresh_lock.acquire()
        try:
            cached = self._cached(entry, min_valid)
            if cached is not None:
                return cached
            self._raise_if_sign_in_required(entry)
            return self._obtain(entry, min_valid)
        finally:
            entry.refresh_lock.release()

    def refresh(self, key: TokenKey) -> TokenSet:
        """Refresh now unless a refresh is already running or backing off (proactive refresh)."""
        entry = self._entry(key)
        self._follow_other_processes(entry)
        self._load_once(entry)
        self._raise_if_sign_in_required(entry)
        with entry.refresh_lock:
            self._raise_if_sign_in_required(entry)
            return self._obtain(entry, None)

    def put(self, tokens: TokenSet) -> None:
        """Store a fresh sign-in's tokens; any refresh still running for the key is discarded."""
        entry = self._entry(tokens.key)
        with entry.mu:
            entry.generation += 1
            entry.unsaved = None
        # Under the key's file lock, like every write, so that no reader in another process
        # sees half of it and no refresh there interleaves with it.
        with self._lock_factory(tokens.key), entry.mu:
            self._store.put(tokens)
            self._accept_locked(entry, tokens)
            self._bump_locked(entry)
        self._notify(entry)

    def sign_out(self, key: TokenKey) -> list[TokenSet]:
        """Forget every token of ``key`` (cache and store) and return what was removed, so the
        caller can revoke the refresh tokens. An in-flight refresh is discarded (#29)."""
        entry = self._entry(key)
        removed: list[TokenSet] = []
        with entry.mu:
            entry.generation += 1
            entry.unsaved = None
            if entry.sighting is not None:
                removed.append(entry.sighting.tokens)
                entry.sighting = None
            removed.extend(self._delete_locked(entry))
            self._set_state_locked(entry, State.SIGNED_OUT, "signed out")
            self._bump_locked(entry)
        # Another process may be between its token response and its store write: wait for it
        # (it holds the key's file lock while refreshing) and delete what it wrote.
        try:
            with self._lock_factory(key), entry.mu:
                removed.extend(self._delete_locked(entry))
                # Again: another process may have read what that refresh wrote, and the stamp
                # written above, before this delete.
                self._bump_locked(entry)
        except LockTimeout:
            logger.warning("sign-out of %s: another process is still refreshing", key.resource)
        self._notify(entry)
        unique: dict[tuple[str, str | None], TokenSet] = {}
        for tokens in removed:
            unique.setdefault((tokens.access_token, tokens.refresh_token), tokens)
        return list(unique.values())

    def status(self, key: TokenKey) -> KeyStatus:
        """The key's state, reading the store if this process has not seen the key yet."""
        entry = self._entry(key)
        self._follow_other_processes(entry)
        self._load_once(entry)
        return self._status(entry)

    def refresh_in(self, key: TokenKey) -> float | None:
        """Seconds until ``key`` should be refreshed proactively, or None when nothing is due."""
        entry = self._entry(key)
        self._follow_other_processes(entry)
        self._load_once(entry)
        with entry.mu:
            if entry.state in (State.SIGN_IN_REQUIRED, State.SIGNED_OUT, State.UNKNOWN):
                return None
            if entry.retry_at is not None:
                return entry.retry_at - self.clock.monotonic()
            if entry.sighting is None or not entry.sighting.tokens.renewable:
                return None
            return entry.sighting.refresh_in(self.clock, self.policy)

    def add_listener(self, listener: Listener) -> None:
        """Called (from any thread) after a key's state changes, e.g. to notify the user once."""
        self._listeners.append(listener)

    # -- the slow path (entry.refresh_lock held) ----------------------------------------------

    def _obtain(self, entry: _Entry, min_valid: float | None) -> TokenSet:
        now = self.clock.monotonic()
        if entry.retry_at is not None and now < entry.retry_at:
            return self._fallback(entry)
        recent = entry.granted_at is not None and now - entry.granted_at < self.policy.min_interval
        if recent and entry.unsaved is None:
            # Tokens that die at once must not turn every request into a refresh (#27).
            return self._fallback(entry)
        generation = entry.generation
        try:
            with self._lock_factory(entry.key):
                return self._obtain_locked(entry, generation, min_valid)
        except LockTimeout as exc:
            # Another process is stuck mid-refresh: keep serving what is still valid, and let
            # the callers queued behind this one answer at once instead of waiting in turn.
            return self._failed(entry, generation, exc, None)

    def _obtain_locked(self, entry: _Entry, generation: int, min_valid: float | None) -> TokenSet:
        if entry.unsaved is not None:
            return self._commit(entry, generation, entry.unsaved, write=True)
        stored = self._read_store(entry, fresh=True)
        if stored is None:
            raise self._sign_in_required(entry, generation, "not signed in", State.SIGNED_OUT)
        current = entry.sighting
        if current is not None and current.tokens == stored:
            seen = current  # keep the original sighting: re-anchoring would forget elapsed time
        else:
            seen = Sighting.now(stored, self.clock)
        if seen is not current and seen.usable(self.clock, self.policy, min_valid):
            # Another process (or an earlier run) has refreshed already: adopt its tokens.
            return self._commit(entry, generation, stored, write=False)
        if not stored.renewable:
            if seen.servable(self.clock, self.policy):
                return stored
            reason = "the token expired and there is no refresh token"
            raise self._sign_in_required(entry, generation, reason)
        return self._run_grant(entry, generation, stored)

    def _run_grant(self, entry: _Entry, generation: int, stored: TokenSet) -> TokenSet:
        logger.info("refreshing tokens for %s", entry.key.resource)
        entry.granted_at = self.clock.monotonic()
        try:
            fresh = self._merge(entry.key, stored, self._refresh_grant(stored))
        except AuthorizationError as exc:
            # invalid_grant, invalid_client, ...: retrying cannot help, the user must sign in.
            raise self._sign_in_required(entry, generation, str(exc)) from exc
        except BrokerError as exc:  # unreachable, a garbled answer, the keyring: try again later
            return self._failed(entry, generation, exc, None)
        except Exception as exc:
            logger.warning("refresh for %s failed: %s", entry.key.resource, type(exc).__name__)
            error = ServerUnreachable("refresh failed unexpectedly")
            return self._failed(entry, generation, error, None)
        if not Sighting.now(fresh, self.clock).servable(self.clock, self.policy):
            # An expires_in of 0 or less: back off instead of refreshing again at once (#27).
            error = ServerUnreachable("the authorization server returned an already expired token")
            return self._failed(entry, generation, error, None)
        return self._commit(entry, generation, fresh, write=True)

    def _merge(self, key: TokenKey, stored: TokenSet, fresh: TokenSet) -> TokenSet:
        if fresh.key != key:
            raise AuthorizationError("the refreshed tokens belong to another resource")
        if fresh.refresh_token is None:  # no rotation: the old refresh token stays good
            fresh = dataclasses.replace(fresh, refresh_token=stored.refresh_token)
        if fresh.user is None:  # a refresh response without an ID token: still the same user
            fresh = dataclasses.replace(fresh, user=stored.user)
        if fresh.id_token is None:
            fresh = dataclasses.replace(fresh, id_token=stored.id_token)
        if fresh.grant is None:
            fresh = dataclasses.replace(fresh, grant=stored.grant)
        return fresh

    def _commit(self, entry: _Entry, generation: int, tokens: TokenSet, *, write: bool) -> TokenSet:
        with entry.mu:
            if entry.generation != generation:
                entry.unsaved = None
                logger.info("discarding a refresh for %s: signed in or out meanwhile", tokens.key)
                raise InteractionRequired("signed out while the token was being refreshed")
            if write:
                # Durable before anyone sees it (#23). If the store fails, keep the set to write
                # later rather than spend the (maybe rotated) refresh token again.
                entry.unsaved = tokens
                self._store.put(tokens)
                entry.unsaved = None
            self._accept_locked(entry, tokens)
        self._notify(entry)
        return tokens

    def _failed(
        self, entry: _Entry, generation: int, error: BrokerError, retry_after: float | None
    ) -> TokenSet:
        self._follow_other_processes(entry)  # a sign-in elsewhere may be why it failed
        with entry.mu:
            moved = entry.generation != generation
            if not moved:
                entry.failures += 1
                delay = self._backoff.delay(entry.failures, retry_after)
                entry.retry_at = self.clock.monotonic() + delay
                entry.last_error = error
                self._set_state_locked(entry, State.RETRYING, _retry_reason(error))
        if moved:
            # Signed in or out (here or in another process) while this refresh ran: its failure
            # says nothing about the tokens now in force (#29).
            logger.info("a refresh for %s failed after a sign-in or sign-out", entry.key.resource)
            return self._current(entry)
        logger.warning(
            "refresh for %s failed (%s); retrying in %.1fs", entry.key.resource, error, delay
        )
        self._notify(entry)
        return self._fallback(entry)

    def _current(self, entry: _Entry) -> TokenSet:
        """What is in force after a sign-in or sign-out (the refresh lock is held)."""
        if entry.state is State.UNKNOWN and self._load_from_store(entry):
            self._notify(entry)
        servable = self._servable(entry)
        if servable is not None:
            return servable
        raise _interaction_required(entry.state, entry.reason or "sign-in required")

    def _fallback(self, entry: _Entry) -> TokenSet:
        """While backing off: the token if still valid beyond the skew (#26), else the error."""
        servable = self._servable(entry)
        if servable is not None:
            return servable
        if entry.last_error is not None:
            raise entry.last_error
        raise ServerUnreachable("the authorization server returns tokens that expire at once")

    def _sign_in_required(
        self, entry: _Entry, generation: int, reason: str, state: State = State.SIGN_IN_REQUIRED
    ) -> InteractionRequired:
        with entry.mu:
            if entry.generation == generation:
                entry.sighting = None
                self._set_state_locked(entry, state, reason)
                if state is State.SIGN_IN_REQUIRED:
                    # A dead grant stays dead: drop it so a restart does not try it again.
                    self._delete_locked(entry)
        logger.info("sign-in required for %s: %s", entry.key.resource, reason)
        self._notify(entry)
        return _interaction_required(state, reason)

    # -- helpers ------------------------------------------------------------------------------

    def _entry(self, key: TokenKey) -> _Entry:
        with self._entries_lock:
            entry = self._entries.get(key)
            if entry is None:
                entry = self._entries[key] = _Entry(key)
            return entry

    def _servable(self, entry: _Entry) -> TokenSet | None:
        sighting = entry.sighting
        if sighting is not None and sighting.servable(self.clock, self.policy):
            return sighting.tokens
        return None

    def _cached(self, entry: _Entry, min_valid: float | None) -> TokenSet | None:
        sighting = entry.sighting
        if sighting is not None and sighting.usable(self.clock, self.policy, min_valid):
            return sighting.tokens
        return None

    def _load_once(self, entry: _Entry) -> None:
        if entry.state is State.UNKNOWN:
            with entry.refresh_lock:
                loaded = self._load_from_store(entry)
            if loaded:
                self._notify(entry)

    def _load_from_store(self, entry: _Entry) -> bool:
        generation = entry.generation
        if self._stamps is not None and entry.stamp_checked_at is None:
            # Before the store is read: a sign-in or sign-out after this point is noticed.
            entry.stamp = self._stamps.read(entry.key)
            entry.stamp_checked_at = self.clock.monotonic()
        stored = self._read_store(entry, fresh=entry.store_cache_stale)
        entry.store_cache_stale = False
        if stored is None:
            # Missing, or unreadable because another process is writing it right now: only a
            # read under the lock that every writer holds can tell.
            with self._lock_factory(entry.key):
                stored = self._read_store(entry, fresh=True)
        with entry.mu:
            if entry.generation != generation or entry.state is not State.UNKNOWN:
                return False
            entry.store_checked_at = self.clock.monotonic()
            if stored is None:
                self._set_state_locked(entry, State.SIGNED_OUT, "not signed in")
            else:
                self._accept_locked(entry, stored)
            return True

    def _follow_other_processes(self, entry: _Entry) -> None:
        """Forget the key's tokens if another process signed in or out since we last looked."""
        if self._stamps is None or entry.stamp_checked_at is None:
            return  # not loaded yet: loading records the stamp
        now = self.clock.monotonic()
        if now - entry.stamp_checked_at < self._follow_interval:
            return
        entry.stamp_checked_at = now
        stamp = self._stamps.read(entry.key)
        if stamp == entry.stamp:
            return
        with entry.mu:
            if stamp == entry.stamp:
                return
            entry.stamp = stamp
            entry.generation += 1  # a refresh in flight here belongs to the old sign-in (#29)
            entry.sighting = None
            entry.unsaved = None
            entry.failures = 0
            entry.last_error = None
            entry.store_cache_stale = True
            self._set_state_locked(entry, State.UNKNOWN, None)
        logger.info("%s was signed in or out by another process", entry.key.resource)

    def _bump_locked(self, entry: _Entry) -> None:
        if self._stamps is not None:
            entry.stamp = self._stamps.bump(entry.key)
            entry.stamp_checked_at = self.clock.monotonic()

    def _raise_if_sign_in_required(self, entry: _Entry) -> None:
        """Answer at once for a key that needs the user; re-read the store now and then in
        case a sign-in happened in another process."""
        if entry.state not in (State.SIGN_IN_REQUIRED, State.SIGNED_OUT):
            return
        now = self.clock.monotonic()
        checked = entry.store_checked_at
        if checked is None or now - checked >= self._recheck_interval:
            entry.store_checked_at = now
            stored = self._read_store(entry, fresh=True)
            if stored is not None:
                with entry.mu:
                    if entry.state in (State.SIGN_IN_REQUIRED, State.SIGNED_OUT):
                        entry.generation += 1
                        self._accept_locked(entry, stored)
                return
        raise _interaction_required(entry.state, entry.reason or "sign-in required")

    def _read_store(self, entry: _Entry, *, fresh: bool) -> TokenSet | None:
        # ``reload`` bypasses the store's cache: another process may have refreshed (#22).
        stored = self._store.reload(entry.key) if fresh else self._store.get(entry.key)
        if stored is not None and stored.key != entry.key:
            logger.error("the store returned tokens of another key for %s", entry.key.resource)
            return None
        return stored

    def _delete_locked(self, entry: _Entry) -> list[TokenSet]:
        removed = []
        with contextlib.suppress(StorageError):
            stored = self._read_store(entry, fresh=True)
            if stored is not None:
                removed.append(stored)
        self._store.delete(entry.key)
        return removed

    def _accept_locked(self, entry: _Entry, tokens: TokenSet) -> None:
        entry.sighting = Sighting.now(tokens, self.clock)
        entry.failures = 0
        entry.retry_at = None
        entry.last_error = None
        self._set_state_locked(entry, State.VALID, None)

    def _set_state_locked(self, entry: _Entry, state: State, reason: str | None) -> None:
        entry.state = state
        entry.reason = reason
        if state is not State.RETRYING:
            entry.retry_at = None

    def _status(self, entry: _Entry) -> KeyStatus:
        with entry.mu:
            tokens = entry.sighting.tokens if entry.sighting else None
            return KeyStatus(
                key=entry.key,
                state=entry.state,
                reason=entry.reason,
                expires_at=tokens.expires_at if tokens else None,
                scope=tokens.scope if tokens else None,
                failures=entry.failures,
                user=tokens.user if tokens else None,
                dpop_bound=tokens is not None and is_bound(tokens),
            )

    def _notify(self, entry: _Entry) -> None:
        status = self._status(entry)
        for listener in list(self._listeners):
            try:
                listener(entry.key, status)
            except Exception:
                logger.exception("a token state listener failed")
