"""One broker per user (SECURITY.md #32): an OS file lock in the broker's lock dir.

The lock is an ``flock`` (``msvcrt.locking`` on Windows) held for the broker's lifetime, so the
OS drops it when the process dies: a crashed broker never blocks the next start. Next to it,
``state/instance.json`` (0600) says who holds it, so that a second start can name the running one
instead of just failing::

    with hold_instance(paths) as instance:   # AlreadyRunning if another broker runs
        instance.publish(api_url="http://127.0.0.1:PORT")
        ...
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from broker.errors import AlreadyRunning, LockTimeout
from broker.filelock import FileLock, lock_for
from broker.paths import BrokerPaths, write_private_file

logger = logging.getLogger(__name__)

LOCK_KEY = "mcp-broker instance"


@dataclass(frozen=True)
class RunningBroker:
    """What the running broker published about itself."""

    pid: int
    started_at: float
    api_url: str | None = None

    def describe(self) -> str:
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.started_at))
        api = f", token API at {self.api_url}" if self.api_url else ""
        return f"pid {self.pid}, started {since}{api}"


class Instance:
    """This process's claim to be the user's one broker."""

    def __init__(self, paths: BrokerPaths) -> None:
        paths.ensure_private_dirs()
        self._lock: FileLock = lock_for(LOCK_KEY, paths.lock_dir, timeout=0)
        self._info = paths.state_dir / "instance.json"
        self._me = RunningBroker(os.getpid(), time.time())

    def acquire(self) -> Instance:
        try:
            self._lock.acquire()
        except LockTimeout:
            other = read_running(self._info)
            who = other.describe() if other else "it has not said who it is yet"
            raise AlreadyRunning(
                f"another mcp-broker is already running for this user ({who}). Use that one, "
                "or quit it from its tray menu first."
            ) from None
        self.publish()
        return self

    def publish(self, api_url: str | None = None) -> None:
        """Say who holds the lock (and where its API is), for a second start to report."""
        self._me = RunningBroker(self._me.pid, self._me.started_at, api_url)
        write_private_file(self._info, json.dumps(self._me.__dict__))

    def release(self) -> None:
        if not self._lock.locked:
            return
        try:
            self._info.unlink(missing_ok=True)
        finally:
            self._lock.release()

    def __enter__(self) -> Instance:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def hold_instance(paths: BrokerPaths) -> Instance:
    """Take the instance lock or raise :class:`AlreadyRunning` naming the holder."""
    return Instance(paths).acquire()


def read_running(info: Path) -> RunningBroker | None:
    """The holder's published details, or None when missing or unreadable."""
    try:
        data = json.loads(info.read_text())
        return RunningBroker(
            int(data["pid"]),
            float(data["started_at"]),
            str(data["api_url"]) if data.get("api_url") else None,
        )
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        return None
