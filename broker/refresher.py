"""Proactive background refresh: a daemon thread that refreshes each known key before it expires.

It only decides *when*; every refresh goes through :meth:`TokenService.refresh`, so it shares the
single-flight locks, the backoff and the generation checks with on-demand requests and can never
refresh a key twice. The thread sleeps until the earliest due key, but never longer than
``max_sleep``: after a suspend the monotonic clock has stood still while the wall clock has not,
and a short sleep is how the thread notices (SECURITY.md #28).
"""

from __future__ import annotations

import logging
import threading

from broker.errors import BrokerError
from broker.service import KeyStatus, State, TokenService
from broker.tokens import TokenKey

logger = logging.getLogger(__name__)

#: Shortest sleep between two looks (a due time a hair in the future is as good as now).
_TIMER_SLACK = 0.01


class Refresher:
    def __init__(
        self, service: TokenService, *, max_sleep: float = 30.0, min_sleep: float = 1.0
    ) -> None:
        self._service = service
        self._max_sleep = max_sleep
        self._min_sleep = min_sleep  # never a tight loop, whatever the tokens say (#27)
        self._keys: set[TokenKey] = set()
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

    def run_once(self) -> float:
        """Refresh every due key; return the seconds until the next one is due."""
        with self._lock:
            keys = sorted(self._keys)
        next_due = self._max_sleep
        for key in keys:
            if self._stopping.is_set():
                break
            due = self._due(key)
            if due is not None and due <= 0:
                self._refresh(key)
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

    def _refresh(self, key: TokenKey) -> None:
        try:
            self._service.refresh(key)
        except BrokerError as exc:
            # The service has recorded the state (sign-in required, retrying); just say so.
            logger.info("proactive refresh for %s: %s", key.resource, exc)
        except Exception:
            logger.exception("proactive refresh for %s failed", key.resource)

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
