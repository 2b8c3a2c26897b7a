"""What the API needs from the token side, and how it calls it without getting stuck.

:class:`broker.app.Broker` is a :class:`TokenProvider`; tests pass fakes. The API never calls the
provider on a request thread directly: a keyring unlock prompt or a slow store can block a call
for a long time, and waitress has few threads. :class:`BoundedCalls` runs provider calls on its
own daemon threads and lets a request wait at most ``timeout`` seconds; requests for a server
whose call is stuck are turned away at once. Either way the client gets
``503 temporarily_unavailable`` and the API keeps answering everything else (SECURITY #31).

Handing a call to another thread costs two thread wake-ups, more than the rest of a request, so
:class:`RecentTokens` keeps the token set the provider last returned for each server for one second
and answers from it on the request thread while it is still fresh enough for the caller
(:meth:`broker.tokens.freshness.RefreshPolicy.threshold`). The provider stays the authority: a
sign-out is seen within that second (or at once through :meth:`RecentTokens.forget`).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Protocol, TypeVar

from broker.tokens.freshness import RefreshPolicy
from broker.tokens.tokenset import TokenSet

logger = logging.getLogger(__name__)

T = TypeVar("T")

STUCK_AFTER = 0.5  # seconds: a call waiting this long means the token side is stuck


class StatusRow(Protocol):
    """One server as ``/v1/status`` shows it (a ``broker.tokens.status.ServerStatus``): never
    a token."""

    @property
    def url(self) -> str: ...

    @property
    def state(self) -> str: ...


class TokenProvider(Protocol):
    def token(self, url: str, min_valid: float | None = None) -> TokenSet:
        """A token for the configured server ``url``; raises ``InteractionRequired`` at once
        when the user must sign in, never waiting on a login."""
        ...

    def status(self) -> Sequence[StatusRow]: ...


class Busy(Exception):
    """The provider did not answer in time, or too many requests are waiting on it."""


class BoundedCalls:
    """A fixed pool of daemon threads that run provider calls for waiting request threads.

    Calls are single-flight per key (the server URL): concurrent requests for one server share
    one call, so a server whose call hangs holds one worker, not all of them. Once a call has
    run longer than ``STUCK_AFTER``, further requests for its key are answered ``Busy`` at once
    instead of tying up more request threads; other servers are not affected.
    """

    def __init__(self, workers: int, name: str = "mcp-broker-api-call") -> None:
        self._jobs: queue.SimpleQueue[tuple[Callable[[], object], Future[object], str] | None]
        self._jobs = queue.SimpleQueue()
        self._inflight: dict[str, tuple[Future[object], float]] = {}
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True)
            for i in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    def call(self, key: str, fn: Callable[[], T], timeout: float) -> T:
        now = time.monotonic()
        with self._lock:
            running = self._inflight.get(key)
            if running is None:
                future: Future[object] = Future()
                self._inflight[key] = (future, now)
                self._jobs.put((fn, future, key))
            elif now - running[1] > STUCK_AFTER:
                raise Busy("the token side is not answering for this server")
            else:
                future = running[0]
        try:
            return future.result(timeout)  # type: ignore[return-value]
        except FutureTimeout:
            raise Busy("the token side did not answer in time") from None

    def close(self, timeout: float = 2.0) -> None:
        """Stop the workers; a worker stuck in a provider call is a daemon and is left behind."""
        for _ in self._threads:
            self._jobs.put(None)
        for thread in self._threads:
            thread.join(timeout)

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            fn, future, key = job
            try:
                future.set_running_or_notify_cancel()
                try:
                    future.set_result(fn())
                except BaseException as exc:
                    future.set_exception(exc)
            finally:
                with self._lock:
                    if self._inflight.get(key, (None,))[0] is future:
                        del self._inflight[key]


class RecentTokens:
    """The provider's latest answer per server, reused for about ``ttl`` seconds.

    When the entry is older than ``ttl``, one request asks the provider again while the others
    keep getting the entry (still fresh enough for them), so a busy server does not send a
    burst of requests through the provider threads each second. Lock-free: single dict
    operations are atomic in CPython, and a lost race only means one extra provider call.
    """

    def __init__(self, ttl: float = 1.0, policy: RefreshPolicy | None = None) -> None:
        self.ttl = ttl
        self._policy = policy or RefreshPolicy()
        self._items: dict[str, tuple[float, TokenSet]] = {}
        self._asking: dict[str, float] = {}  # resource -> when one request went to ask

    def get(self, resource: str, min_valid: float | None) -> TokenSet | None:
        item = self._items.get(resource)
        if item is None:
            return None
        seen_at, tokens = item
        if tokens.seconds_left() <= self._policy.threshold(tokens, min_valid):
            return None
        now = time.monotonic()
        if now - seen_at <= self.ttl:
            return tokens
        if now - self._asking.get(resource, -1e18) <= self.ttl:
            return tokens  # another request is asking the provider right now
        self._asking[resource] = now
        return None

    def put(self, resource: str, tokens: TokenSet) -> None:
        if self.ttl > 0:
            self._items[resource] = (time.monotonic(), tokens)
        self._asking.pop(resource, None)

    def forget(self, resource: str | None = None) -> None:
        if resource is None:
            self._items.clear()
            self._asking.clear()
        else:
            self._items.pop(resource, None)
            self._asking.pop(resource, None)
