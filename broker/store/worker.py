"""Run blocking keyring calls off the caller's thread, one at a time, with a bounded wait.

A Secret Service call can hang (a stuck D-Bus peer, an unlock prompt nobody answers). The caller
waits at most ``timeout`` and gets :class:`StorageTimeout`; the call keeps running on a daemon
thread, which never blocks interpreter exit (SECURITY #47). Jobs run strictly in order, so the
store's write ordering holds across callers. A job whose caller already gave up is never started,
and while one job is stuck new callers fail at once instead of queueing behind it.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import Future, wait
from typing import Any, TypeVar

from broker.errors import StorageTimeout

logger = logging.getLogger(__name__)

T = TypeVar("T")
_Job = tuple[Future[Any], Callable[[], Any]] | None


class _Busy:
    """Since when the worker has been running its current job (monotonic), if it is."""

    def __init__(self) -> None:
        self.since: float | None = None


class BoundedWorker:
    def __init__(self, name: str, timeout: float) -> None:
        self.timeout = timeout
        self._jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._busy = _Busy()
        self._thread = threading.Thread(
            target=_serve, args=(self._jobs, self._busy), name=name, daemon=True
        )
        self._thread.start()
        # The thread holds no reference to self, so a forgotten worker still stops.
        self._finalizer = weakref.finalize(self, self._jobs.put, None)

    def call(self, fn: Callable[[], T], what: str) -> T:
        """Run ``fn`` on the worker thread; raise :class:`StorageTimeout` after ``timeout``."""
        since = self._busy.since
        if since is not None and time.monotonic() - since > self.timeout:
            raise StorageTimeout(
                f"the keyring has not answered for over {self.timeout:g} s; cannot {what} now"
            )
        future: Future[T] = Future()
        self._jobs.put((future, fn))
        done, _ = wait([future], timeout=self.timeout)
        if done:
            return future.result()  # the job's own result or exception
        future.cancel()  # not started yet: it never will be
        logger.warning("Keyring did not answer within %g s (%s)", self.timeout, what)
        raise StorageTimeout(
            f"the keyring did not answer within {self.timeout:g} s; cannot {what} now"
        )

    def close(self, wait: float = 0.0) -> None:
        """Stop the thread after the jobs already queued; wait up to ``wait`` s for them
        (at shutdown, so a just-rotated refresh token still reaches the keyring)."""
        self._finalizer()
        if wait > 0:
            self._thread.join(wait)


def _serve(jobs: queue.SimpleQueue[_Job], busy: _Busy) -> None:
    while (job := jobs.get()) is not None:
        future, fn = job
        if not future.set_running_or_notify_cancel():
            continue
        busy.since = time.monotonic()
        try:
            result = fn()
        except BaseException as exc:
            future.set_exception(exc)
        else:
            future.set_result(result)
        finally:
            busy.since = None
