"""A keyring for the demo on a machine that has none (a server over SSH, a container).

``mcp-broker demo`` — and only the demo — needs somewhere to keep the tokens it gets. When keyring
finds no OS keyring at all (its ``fail`` backend: no session D-Bus, or no Secret Service on it), the
demo starts, for its own lifetime only, a private ``dbus-daemon --session`` and an unlocked
``gnome-keyring-daemon`` (secrets component) on it, with their own HOME and runtime dirs in a temp
dir, says so in one line, points this process (and the headless broker it may start) at that bus,
and on exit stops both daemons and removes the temp dir: no process or file is left behind.

It is a real Secret Service, not a file: the broker's rule that tokens live only in an OS keyring
(SECURITY #46) holds. A keyring configured to something refused (``null``, ``keyrings.alt``) is not
replaced: that is a setting the user made, and the demo says how to fix it instead. Nothing here is
used by any command but the demo.

The tests' private Secret Service (``tests/support/secret_service.py``) starts its daemons with the
same functions.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TextIO

from broker.errors import StorageUnavailable

BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:dir={socket_dir}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""
"""A session bus with no service directories: nothing is D-Bus-activated behind our back."""

DAEMONS = (("dbus-daemon", "dbus"), ("gnome-keyring-daemon", "gnome-keyring"))
READY_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
ANNOUNCEMENT = (
    "No OS keyring here (no session D-Bus or Secret Service): this demo runs a temporary, unlocked "
    "gnome-keyring on a private D-Bus for its own lifetime, and removes both when it stops."
)

Spawn = Callable[..., subprocess.Popen[bytes]]


def start_session_bus(config_dir: Path, spawn: Spawn, prefix: str = "bus-") -> tuple[str, str]:
    """Start ``dbus-daemon`` with ``spawn`` (which owns the process); returns its address and
    the socket dir, a short one of its own (unix socket paths are limited to ~100 characters),
    for the caller to remove after stopping the daemon."""
    socket_dir = tempfile.mkdtemp(prefix=prefix)
    config = config_dir / "bus.conf"
    config.write_text(BUS_CONFIG.format(socket_dir=socket_dir))
    bus = spawn(
        ["dbus-daemon", f"--config-file={config}", "--nofork", "--print-address=1"],
        stdout=subprocess.PIPE,
    )
    assert bus.stdout is not None
    address = bus.stdout.readline().decode().strip()
    bus.stdout.close()  # it prints nothing more
    if not address:
        raise RuntimeError("dbus-daemon did not print its address")
    return address, socket_dir


def keyring_environ(root: Path, address: str, base: Mapping[str, str]) -> dict[str, str]:
    """``base`` with HOME, the XDG dirs and the bus of a keyring daemon that lives in ``root``."""
    home, runtime = root / "home", root / "run"
    for directory in (home, runtime):
        directory.mkdir(mode=0o700, exist_ok=True)
    return {
        **base,
        "HOME": str(home),
        "XDG_DATA_HOME": str(home / ".local/share"),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_RUNTIME_DIR": str(runtime),
        "DBUS_SESSION_BUS_ADDRESS": address,
        "NO_AT_BRIDGE": "1",
    }


def start_keyring_daemon(spawn: Spawn, env: Mapping[str, str], password: str) -> None:
    """``gnome-keyring-daemon`` (secrets only), creating and unlocking its login keyring with
    ``password`` (read from standard input, never from argv)."""
    daemon = spawn(
        ["gnome-keyring-daemon", "--foreground", "--unlock", "--components=secrets"],
        stdin=subprocess.PIPE,
        env=dict(env),
    )
    assert daemon.stdin is not None
    daemon.stdin.write(password.encode())
    daemon.stdin.close()


def secret_service_ready(address: str) -> bool:
    """Whether the Secret Service on ``address`` has its default (login) collection yet."""
    import secretstorage
    from jeepney.io.blocking import open_dbus_connection  # type: ignore[import-untyped]

    try:
        with contextlib.closing(open_dbus_connection(bus=address)) as connection:
            secretstorage.Collection(connection)
    except Exception:
        return False
    return True


def missing_daemons() -> list[str]:
    """The Debian packages to install for a temporary keyring, if any is missing."""
    return [package for tool, package in DAEMONS if shutil.which(tool) is None]


class TemporaryKeyring:
    """A private session bus and an unlocked gnome-keyring-daemon, both stopped by ``stop()``."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="mcp-broker-demo-keyring-"))
        self.address = ""
        self._socket_dir = ""
        self._procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> TemporaryKeyring:
        try:
            self.address, self._socket_dir = start_session_bus(self.root, self._spawn, "dbus-")
            env = keyring_environ(self.root, self.address, os.environ)
            start_keyring_daemon(self._spawn, env, secrets.token_urlsafe(24))
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self, args: list[str], **kwargs: object) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(  # type: ignore[call-overload]  # noqa: S603 - fixed argv
            args, start_new_session=True, stderr=subprocess.DEVNULL, **kwargs
        )
        self._procs.append(proc)
        return proc  # type: ignore[no-any-return]

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while not secret_service_ready(self.address):
            if any(proc.poll() is not None for proc in self._procs):
                raise RuntimeError("dbus-daemon or gnome-keyring-daemon exited at start")
            if time.monotonic() > deadline:
                raise RuntimeError("gnome-keyring-daemon did not open its keyring in time")
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop the daemons (their whole process groups) and remove every file they had."""
        for proc in reversed(self._procs):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=STOP_TIMEOUT)
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    stream.close()
        self._procs.clear()
        for directory in (self._socket_dir, str(self.root)):
            if directory:
                shutil.rmtree(directory, ignore_errors=True)


def _nothing_found() -> bool:
    """Whether keyring found no backend at all (not one the user configured and we refuse)."""
    from keyring.backends import chainer, fail

    from broker.store.keyring_backend import default_backend

    backend = default_backend()
    if isinstance(backend, chainer.ChainerBackend):
        return all(isinstance(b, fail.Keyring) for b in backend.backends)
    return isinstance(backend, fail.Keyring)


@contextlib.contextmanager
def demo_keyring(out: TextIO) -> Iterator[None]:
    """A usable keyring while the block runs: the user's own, or (Linux with none at all) a
    temporary one, announced in one line and gone afterwards. Otherwise ``StorageUnavailable``
    says what to do."""
    from broker.store.keyring_backend import check_usable, default_backend

    try:
        check_usable(default_backend())
    except StorageUnavailable as exc:
        if not sys.platform.startswith("linux") or not _nothing_found():
            raise
        missing = missing_daemons()
        if missing:
            raise StorageUnavailable(
                f"{exc} The demo can start a temporary one itself when these Debian packages "
                f"are installed: apt-get install {' '.join(missing)}"
            ) from None
    else:
        yield
        return
    with _temporary_keyring(out):
        yield


@contextlib.contextmanager
def _temporary_keyring(out: TextIO) -> Iterator[None]:
    import keyring
    from keyring.backends import SecretService

    from broker.store.keyring_backend import check_usable, default_backend

    try:
        temporary = TemporaryKeyring().start()
    except (OSError, RuntimeError) as exc:
        raise StorageUnavailable(
            f"Could not start a temporary keyring for the demo: {exc}"
        ) from None
    saved = {name: os.environ.get(name) for name in ("DBUS_SESSION_BUS_ADDRESS", "NO_AT_BRIDGE")}
    previous = default_backend()
    try:
        print(ANNOUNCEMENT, file=out, flush=True)
        # This process and the broker it may start find the Secret Service on this bus; keyring
        # remembers what it detected before the bus existed, so the backend is named here.
        os.environ["DBUS_SESSION_BUS_ADDRESS"] = temporary.address
        os.environ["NO_AT_BRIDGE"] = "1"
        keyring.set_keyring(SecretService.Keyring())  # type: ignore[no-untyped-call]
        check_usable(default_backend())
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        keyring.set_keyring(previous)
        temporary.stop()
