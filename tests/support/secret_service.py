"""A real, private Secret Service for tests: gnome-keyring-daemon on its own ``dbus-daemon``.

The bus has no service directories, so nothing is D-Bus-activated behind our back (no prompter:
an unlock prompt is dismissed at once, which is how a locked keyring behaves headless). HOME and
the XDG dirs point into a temp dir, so a fresh login keyring is created with a known password.
Both daemons are killed at teardown. They are started with the functions ``mcp-broker demo`` uses
for its temporary keyring (``broker/cli/demo_keyring.py``).

    def test_x(secret_service):           # env + keyring.set_keyring() done, collection unlocked
        secret_service.lock()             # lock the login collection for real
        secret_service.entries("svc")     # {username: secret} actually in the Secret Service
"""

from __future__ import annotations

import gc
import os
import shutil
import signal
import subprocess
import time
import warnings
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import keyring
import pytest
import secretstorage
from jeepney import DBusAddress, new_method_call
from jeepney.io.blocking import DBusConnection, open_dbus_connection
from keyring.backends import SecretService

from broker.cli.demo_keyring import (
    keyring_environ,
    secret_service_ready,
    start_keyring_daemon,
    start_session_bus,
)
from tests.support.realparts import require

PASSWORD = "test-login-password"
_SECRETS = DBusAddress(
    "/org/freedesktop/secrets",
    bus_name="org.freedesktop.secrets",
    interface="org.freedesktop.Secret.Service",
)
_INTERNAL = DBusAddress(
    "/org/freedesktop/secrets",
    bus_name="org.freedesktop.secrets",
    interface="org.gnome.keyring.InternalUnsupportedGuiltRiddenInterface",
)


class SecretServiceDaemons:
    """A private dbus-daemon plus an unlocked gnome-keyring-daemon (secrets component only)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.address = ""
        self._procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> SecretServiceDaemons:
        try:
            self.address, self._socket_dir = start_session_bus(self.root, self._spawn, "ssbus-")
        except RuntimeError:
            self.stop()
            raise
        start_keyring_daemon(self._spawn, self.environ(), PASSWORD)
        self._wait_ready()
        return self

    def environ(self) -> dict[str, str]:
        return keyring_environ(self.root, self.address, os.environ)

    def connect(self) -> DBusConnection:
        return open_dbus_connection(bus=self.address)

    def _spawn(self, args: list[str], **kwargs: object) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(args, start_new_session=True, **kwargs)  # type: ignore[call-overload]
        self._procs.append(proc)
        return proc

    def _wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p in self._procs):
                self.stop()
                raise RuntimeError("dbus-daemon or gnome-keyring-daemon exited at start")
            if secret_service_ready(self.address):  # the login keyring is made
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("gnome-keyring-daemon did not publish its login keyring in time")

    def restart_keyring(self) -> None:
        """Kill gnome-keyring-daemon and start it again on the same bus and keyring files, as
        after a crash or a session restart: it comes back with the login keyring locked."""
        (old,) = [p for p in self._procs if "gnome-keyring-daemon" in p.args]
        old.kill()
        old.wait(10)
        self._procs.remove(old)
        self._spawn(
            ["gnome-keyring-daemon", "--foreground", "--components=secrets"],
            stdin=subprocess.DEVNULL,
            env=self.environ(),
        )
        self._wait_ready()

    def item_count(self) -> int:
        """Every item in the login keyring (whatever its attributes)."""
        with closing(self.connect()) as conn:
            return len(list(secretstorage.Collection(conn).get_all_items()))

    def lock(self) -> None:
        with closing(self.connect()) as conn:
            secretstorage.Collection(conn).lock()

    def unlock(self) -> None:
        """Unlock the login keyring with its password, as PAM would at login (no prompt)."""
        with closing(self.connect()) as conn:
            reply = conn.send_and_get_reply(
                new_method_call(_SECRETS, "OpenSession", "sv", ("plain", ("s", "")))
            )
            session = reply.body[1]
            (login,) = conn.send_and_get_reply(
                new_method_call(_SECRETS, "ReadAlias", "s", ("default",))
            ).body
            secret = (session, b"", PASSWORD.encode(), "text/plain")
            conn.send_and_get_reply(
                new_method_call(_INTERNAL, "UnlockWithMasterPassword", "o(oayays)", (login, secret))
            )
            if secretstorage.Collection(conn).is_locked():
                raise RuntimeError("could not unlock the test keyring")

    def is_locked(self) -> bool:
        with closing(self.connect()) as conn:
            return secretstorage.Collection(conn).is_locked()

    def entries(self, service: str) -> dict[str, str]:
        """Every item stored under ``service``, read straight from the Secret Service."""
        with closing(self.connect()) as conn:
            collection = secretstorage.Collection(conn)
            return {
                item.get_attributes()["username"]: item.get_secret().decode()
                for item in collection.search_items({"service": service})
            }

    def alive(self) -> bool:
        return bool(self._procs) and all(p.poll() is None for p in self._procs)

    def stop(self) -> None:
        for proc in reversed(self._procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=5)
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    stream.close()
        self._procs.clear()
        shutil.rmtree(getattr(self, "_socket_dir", ""), ignore_errors=True)


class SecretServiceHandle:
    """What a test gets: the daemons, a SecretService keyring backend, lock/unlock/entries."""

    def __init__(self, daemons: SecretServiceDaemons) -> None:
        self.daemons = daemons
        self.backend = SecretService.Keyring()

    def lock(self) -> None:
        self.daemons.lock()

    def unlock(self) -> None:
        self.daemons.unlock()

    def is_locked(self) -> bool:
        return self.daemons.is_locked()

    def entries(self, service: str) -> dict[str, str]:
        return self.daemons.entries(service)


def _require_daemons() -> None:
    for tool, package in (("dbus-daemon", "dbus"), ("gnome-keyring-daemon", "gnome-keyring")):
        require(shutil.which(tool) is not None, tool, f"apt-get install {package}")


@pytest.fixture(scope="session")
def _secret_service_pool(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[list[SecretServiceDaemons]]:
    """The session's daemons, replaced when they died: gnome-keyring-daemon (Debian 12) can
    abort on a GLib assertion after a dismissed unlock prompt, and one crash must not fail
    every later test that merely uses the keyring."""
    _require_daemons()
    pool = [SecretServiceDaemons(tmp_path_factory.mktemp("secret-service")).start()]
    try:
        yield pool
    finally:
        pool[0].stop()


@pytest.fixture
def secret_service_daemons(
    _secret_service_pool: list[SecretServiceDaemons], tmp_path_factory: pytest.TempPathFactory
) -> SecretServiceDaemons:
    daemons = _secret_service_pool[0]
    if not daemons.alive():
        daemons.stop()
        daemons = SecretServiceDaemons(tmp_path_factory.mktemp("secret-service")).start()
        _secret_service_pool[0] = daemons
    return daemons


@pytest.fixture
def isolated_secret_service_daemons(tmp_path: Path) -> Iterator[SecretServiceDaemons]:
    """Daemons of this test alone, for tests that lock the collection (see above)."""
    _require_daemons()
    root = tmp_path / "secret-service"
    root.mkdir()
    daemons = SecretServiceDaemons(root).start()
    try:
        yield daemons
    finally:
        _collect_locked_collection_connections()
        daemons.stop()


def _collect_locked_collection_connections() -> None:
    """keyring 25.7's ``SecretService.get_preferred_collection`` opens a D-Bus connection and
    raises ``KeyringLocked`` without closing it when the collection stays locked (its callers close
    it only on success). The socket lives in the exception's frames until the cyclic garbage
    collector frees it, in whichever later test that happens: collect it here, where it is known,
    letting through only that warning (an unclosed Unix socket)."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", r"unclosed <socket\.socket fd=\d+, family=1,", ResourceWarning
        )
        gc.collect()


@contextmanager
def _as_keyring(
    daemons: SecretServiceDaemons, monkeypatch: pytest.MonkeyPatch
) -> Iterator[SecretServiceHandle]:
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", daemons.address)
    monkeypatch.setenv("NO_AT_BRIDGE", "1")
    if daemons.is_locked():
        daemons.unlock()
    handle = SecretServiceHandle(daemons)
    handle.backend.set_password("fixture-probe", "probe", "ok")
    assert handle.backend.get_password("fixture-probe", "probe") == "ok"
    handle.backend.delete_password("fixture-probe", "probe")
    previous = keyring.get_keyring()
    keyring.set_keyring(handle.backend)
    try:
        yield handle
    finally:
        keyring.set_keyring(previous)


@pytest.fixture
def secret_service(
    secret_service_daemons: SecretServiceDaemons, monkeypatch: pytest.MonkeyPatch
) -> Iterator[SecretServiceHandle]:
    """The private Secret Service, unlocked, as keyring's backend and this test's session bus."""
    with _as_keyring(secret_service_daemons, monkeypatch) as handle:
        yield handle


@pytest.fixture
def isolated_secret_service(
    isolated_secret_service_daemons: SecretServiceDaemons, monkeypatch: pytest.MonkeyPatch
) -> Iterator[SecretServiceHandle]:
    """Like ``secret_service``, on daemons of this test alone (for tests that lock it)."""
    with _as_keyring(isolated_secret_service_daemons, monkeypatch) as handle:
        yield handle
