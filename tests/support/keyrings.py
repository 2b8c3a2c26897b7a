"""keyring backends for tests: one that enforces Windows' entry limit, one that hangs, one that
crashes part-way through a write. Never chosen by keyring's own detection (no priority)."""

from __future__ import annotations

import threading
from typing import Any

from keyring.backend import KeyringBackend
from keyring.compat import properties
from keyring.errors import PasswordDeleteError, PasswordSetError

WINDOWS_MAX_CHARS = 1280
WINDOWS_MAX_BYTES = 2560


class SimulatedCrash(RuntimeError):
    """The process 'died' at this call: nothing after it happened."""


class LimitedKeyring(KeyringBackend):
    """An in-memory keyring that refuses any entry Windows Credential Manager would refuse.

    ``crash_after`` simulates a crash: that many more set/delete calls succeed, the next raises.
    ``calls`` counts every call, so tests can see whether the keyring was touched at all.
    """

    @properties.classproperty
    def priority(cls) -> float:
        raise RuntimeError("test backend: never chosen by detection")

    def __init__(self, entries: dict[tuple[str, str], str] | None = None) -> None:
        super().__init__()
        self.entries = {} if entries is None else entries
        self.calls = 0
        self.crash_after: int | None = None

    def get_password(self, service: str, username: str) -> str | None:
        self.calls += 1
        return self.entries.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.calls += 1
        self._maybe_crash()
        if (
            len(password) > WINDOWS_MAX_CHARS
            or len(password.encode("utf-16-le")) > WINDOWS_MAX_BYTES
        ):
            raise PasswordSetError(f"entry of {len(password)} characters exceeds the limit")
        self.entries[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self.calls += 1
        self._maybe_crash()
        if self.entries.pop((service, username), None) is None:
            raise PasswordDeleteError("no such entry")

    def _maybe_crash(self) -> None:
        if self.crash_after is None:
            return
        if self.crash_after == 0:
            raise SimulatedCrash("simulated crash")
        self.crash_after -= 1


class HangingKeyring(LimitedKeyring):
    """Blocks every call while ``hang`` is set, until ``release`` is set."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.hang = threading.Event()
        self.release = threading.Event()
        self.entered = threading.Event()

    def _wait(self) -> None:
        if self.hang.is_set():
            self.entered.set()
            self.release.wait()

    def get_password(self, service: str, username: str) -> str | None:
        self._wait()
        return super().get_password(service, username)

    def set_password(self, service: str, username: str, password: str) -> None:
        self._wait()
        super().set_password(service, username, password)

    def delete_password(self, service: str, username: str) -> None:
        self._wait()
        super().delete_password(service, username)


class RaisingKeyring(LimitedKeyring):
    """Raises ``error`` from every call while it is set (e.g. keyring.errors.KeyringLocked)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.error: BaseException | None = None

    def get_password(self, service: str, username: str) -> str | None:
        self._raise()
        return super().get_password(service, username)

    def set_password(self, service: str, username: str, password: str) -> None:
        self._raise()
        super().set_password(service, username, password)

    def delete_password(self, service: str, username: str) -> None:
        self._raise()
        super().delete_password(service, username)

    def _raise(self) -> None:
        if self.error is not None:
            raise self.error


class CrashingDeletes(KeyringBackend):
    """A real backend whose delete calls 'crash' once ``deletes_left`` more have succeeded.

    Wraps e.g. the Secret Service backend, so what an interrupted remove leaves behind is
    really in the daemon. ``deletes`` counts the delete calls that reached ``inner``.
    """

    @properties.classproperty
    def priority(cls) -> float:
        raise RuntimeError("test backend: never chosen by detection")

    def __init__(self, inner: KeyringBackend) -> None:
        super().__init__()
        self.inner = inner
        self.deletes = 0
        self.deletes_left: int | None = None

    def get_password(self, service: str, username: str) -> str | None:
        return self.inner.get_password(service, username)

    def set_password(self, service: str, username: str, password: str) -> None:
        self.inner.set_password(service, username, password)

    def delete_password(self, service: str, username: str) -> None:
        if self.deletes_left is not None:
            if self.deletes_left == 0:
                raise SimulatedCrash("simulated crash")
            self.deletes_left -= 1
        self.deletes += 1
        self.inner.delete_password(service, username)
