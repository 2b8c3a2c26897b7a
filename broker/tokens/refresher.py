"""Proactive background refresh: a daemon thread that refreshes each known key before it expires.

It only decides *when*; each refresh runs on a thread of its own (one slow authorization server
never delays another server's refresh), and every refresh goes through
:meth:`TokenService.refresh`, so it shares the single-flight locks, the backoff and the
generation checks with on-demand requests and can never refresh a key twice. The thread sleeps
until the earliest due key, but never longer than ``max_sleep``: after a suspend the monotonic
clock has stood still while the wall clock has not, and a short sleep is how the thread notices.
"""

from __future__ import annotations

import logging
import threading
import time

from broker.errors import BrokerError
from broker.tokens.service import KeyStatus, State, TokenService
from broker.tokens.tokenset import TokenKey

logger = logging.getLogger(__name__)

#: Shortest sleep between two looks (a due time a hair in the future is as good as now).
_TIMER_SLACK = 0.01


class Refresher:
    def __init__(
        self,
        service: TokenService,
        *,
        max_sleep: float = 30.0,
        min_sleep: float = 1.0,
        settle: float = 2.0,
    ) -> None:
        self._service = service
        self._max_sleep = max_sleep
        self._min_sleep = min_sleep  # never a tight loop, whatever the tokens say (#27)
        self._settle = settle
        self._keys: set[TokenKey] = set()
        self._workers: dict[TokenKey, threading.Thread] = {}
        # When each key's last refresh started (the service's monotonic clock): a key is not
        # started again within ``min_sleep`` of that, however the loop is woken (#27). A refresh
        # that fails at once (the keyring daemon gone: every read raises) ends by waking the loop,
        # and the loop found the key still due: without this it started it again at once, some
        # 500 times a second, each attempt logging a line and leaking keyring's D-Bus connection.
        self._started_at: dict[TokenKey, float] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        service.add_listener(self._on_change)

    def watch(self, key: TokenKey) -> None:
        """Keep ``key`` fresh from now on (keys the service hands out are watched already)."""
        with self._lock:
            self._keys.add(key)
        self._wake.set()

    def unwatch(self, key: TokenKey) -> None:
        with self._lock:
            self._keys.discard(key)

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("the refresher is already running")
        self._thread = threading.Thread(target=self._run, name="token-refresher", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread; a refresh in progress finishes (it holds locks and a store write)."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                logger.warning("the refresher did not stop within %.0fs", timeout)
            self._thread = None
        with self._lock:
            workers = list(self._workers.values())
        for worker in workers:
            worker.join(timeout)

    def run_once(self) -> float:
        """Start the refresh of every due key; return the seconds until the next one is due.

        Each refresh runs on a thread of its own, so one slow authorization server never holds
        up the refresh of another server's token; the loop waits a moment (``settle``, but never
        past the moment another key is due) for them to see their outcome, and a refresh that
        takes longer wakes it when it ends.
        """
        with self._lock:
            keys = [key for key in sorted(self._keys) if key not in self._workers]
        next_due = self._max_sleep
        started: list[TokenKey] = []
        for key in keys:
            if self._stopping.is_set():
                break
            due = self._due(key)
            if due is not None:
                due = max(due, self._held_for(key))
            if due is not None and due <= 0:
                self._start_refresh(key)
                started.append(key)
            elif due is not None:
                next_due = min(next_due, due)
        settled: list[TokenKey] = []
        if started:
            waited_from = time.monotonic()
            settled = self._settled(started, next_due)
            next_due -= time.monotonic() - waited_from  # the other keys came due meanwhile
        for key in settled:
            due = self._due(key)
            if due is not None and due <= 0:
                # Still due right after a refresh (failing, backing off, or tokens that die
                # at birth): look again later, never in a tight loop (#27).
                due = self._min_sleep
            if due is not None:
                next_due = min(next_due, due)
        # Otherwise sleep exactly until the next key is due: a short token's refresh is timed
        # within a fraction of a second of its lifetime.
        return max(_TIMER_SLACK, min(self._max_sleep, next_due))

    def _due(self, key: TokenKey) -> float | None:
        """When ``key`` is due; reading it can fail (a keyring that does not answer yet, e.g.
        just after login or a daemon restart): then look again soon. The thread must outlive
        such a failure, or nothing is refreshed proactively for the rest of the run."""
        try:
            return self._service.refresh_in(key)
        except BrokerError as exc:
            logger.info("proactive refresh for %s: %s", key.resource, exc)
        except Exception:
            logger.exception("proactive refresh for %s failed", key.resource)
        return self._min_sleep

    def _held_for(self, key: TokenKey) -> float:
        """Seconds until ``key`` may be started again (``min_sleep`` after its last start)."""
        started = self._started_at.get(key)
        if started is None:
            return 0.0
        return started + self._min_sleep - self._service.clock.monotonic()

    def _start_refresh(self, key: TokenKey) -> None:
        worker = threading.Thread(
            target=self._refresh, args=(key,), name="token-refresh", daemon=True
        )
        with self._lock:
            self._workers[key] = worker
        self._started_at[key] = self._service.clock.monotonic()
        worker.start()

    def _settled(self, keys: list[TokenKey], within: float) -> list[TokenKey]:
        """The keys among ``keys`` whose refresh ended within the ``settle`` time, or within
        ``within`` (when the next other key is due) if that is sooner: a slow refresh must not
        make another key's refresh late (its thread would sit in the wait meanwhile)."""
        deadline = time.monotonic() + min(self._settle, within)
        with self._lock:
            workers = {key: self._workers.get(key) for key in keys}
        done = []
        for key, worker in workers.items():
            if worker is not None:
                worker.join(max(0.0, deadline - time.monotonic()))
                if worker.is_alive():
                    continue
            done.append(key)
        return done

    def _refresh(self, key: TokenKey) -> None:
        try:
            self._service.refresh(key)
        except BrokerError as exc:
            # The service has recorded the state (sign-in required, retrying); just say so.
            logger.info("proactive refresh for %s: %s", key.resource, exc)
        except Exception:
            logger.exception("proactive refresh for %s failed", key.resource)
        finally:
            with self._lock:
                self._workers.pop(key, None)
            self._wake.set()  # the loop looks again: this key's next refresh is due later

    def _run(self) -> None:
        while not self._stopping.is_set():
            delay = self.run_once()
            self._wake.wait(delay)
            self._wake.clear()

    def _on_change(self, key: TokenKey, status: KeyStatus) -> None:
        if status.state is State.VALID:
            with self._lock:
                if key in self._keys:
                    return
                self._keys.add(key)
            self._wake.set()
