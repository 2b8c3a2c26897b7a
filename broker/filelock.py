"""A cross-process lock per key, held on a file in the broker's lock dir.

Used so that only one process refreshes a given token at a time and only one broker runs
(SECURITY #22, #32). ``fcntl.flock`` on POSIX, ``msvcrt.locking`` on Windows: both are released by
the OS when the holder dies, so a crashed broker never leaves a lock behind.

    with lock_for("refresh:" + server_url, paths.lock_dir, timeout=30):
        ...
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import threading
import time
from pathlib import Path
from types import TracebackType

from broker.errors import LockTimeout
from broker.paths import ensure_private_dir, open_private

logger = logging.getLogger(__name__)

_POLL_SECONDS = 0.05


def lock_file_name(key: str) -> str:
    """A file name for ``key`` that is safe on every OS and says nothing about the key."""
    return hashlib.sha256(key.encode()).hexdigest()[:32] + ".lock"


def lock_for(key: str, lock_dir: Path, timeout: float = 10.0) -> FileLock:
    """The lock for ``key`` in ``lock_dir`` (created 0700). Not acquired yet."""
    ensure_private_dir(lock_dir)
    return FileLock(lock_dir / lock_file_name(key), timeout=timeout)


class FileLock:
    """An exclusive lock on ``path``, shared by every process (and thread) that uses that path.

    Not re-entrant: acquiring twice from the same object raises ``RuntimeError``.
    """

    def __init__(self, path: Path, timeout: float = 10.0) -> None:
        self.path = path
        self.timeout = timeout
        self._fd: int | None = None
        self._guard = threading.Lock()

    @property
    def locked(self) -> bool:
        return self._fd is not None

    def acquire(self, timeout: float | None = None) -> None:
        """Wait up to ``timeout`` s (default: the constructor's), else :class:`LockTimeout`."""
        with self._guard:
            if self._fd is not None:
                raise RuntimeError(f"{self.path} is already held by this FileLock")
            fd = open_private(self.path, os.O_RDWR | os.O_CREAT)
            deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
            while not _try_lock(fd):
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise LockTimeout(f"another process holds the lock {self.path}")
                time.sleep(_POLL_SECONDS)
            self._fd = fd
            logger.debug("Acquired %s", self.path)

    def release(self) -> None:
        with self._guard:
            if self._fd is None:
                return
            fd, self._fd = self._fd, None
            try:
                _unlock(fd)
            finally:
                os.close(fd)
            logger.debug("Released %s", self.path)

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


if sys.platform == "win32":
    import msvcrt

    def _try_lock(fd: int) -> bool:
        os.lseek(fd, 0, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def _unlock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)
