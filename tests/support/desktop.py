"""A real, private desktop for tray tests: Xvfb, a D-Bus session bus, trayer and dunst.

Xvfb picks a free display itself (``-displayfd``). The bus is either one handed in (the private
Secret Service's, so the app under test reaches both its keyring and the notification daemon) or
a fresh ``dbus-daemon``. ``NO_AT_BRIDGE=1`` and our own ``DBUS_SESSION_BUS_ADDRESS`` keep GLib from
spawning stray session daemons. Every process is started in its own session and killed at
teardown.

    def test_x(desktop):
        env = desktop.environ()              # DISPLAY, DBUS_SESSION_BUS_ADDRESS, HOME, ...
        win = desktop.wait_for_tray_icon()   # a window docked inside trayer
        desktop.click(win, button=3)
        desktop.screenshot(path)
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest
from PIL import Image

from tests.support.dbus import start_session_bus
from tests.support.realparts import require
from tests.support.secret_service import SecretServiceDaemons

TOOLS = {
    "Xvfb": "xvfb",
    "trayer": "trayer",
    "dunst": "dunst",
    "xdotool": "xdotool",
    "xwininfo": "x11-utils",
    "import": "imagemagick",
    "dbus-daemon": "dbus",
    "dbus-send": "dbus",
    "dunstctl": "dunst",
}
_DUNSTRC = """[global]
    font = Monospace 9
    timeout = 0
    origin = top-left
    offset = 10x60
"""
T = TypeVar("T")


@dataclass(frozen=True)
class Window:
    id: int
    name: str
    x: int
    y: int
    width: int
    height: int


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 20.0) -> T:
    """Poll ``probe`` until it returns something truthy; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


class Desktop:
    def __init__(
        self, root: Path, bus_address: str | None = None, *, notification_daemon: bool = True
    ) -> None:
        self.root = root
        self.notification_daemon = notification_daemon
        self.bus_address = bus_address or ""
        self.display = ""
        self._procs: list[subprocess.Popen[bytes]] = []
        self._xvfb: subprocess.Popen[bytes] | None = None
        self._socket_dir: str | None = None
        self.home = root / "home"

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> Desktop:
        try:
            self._start_x()
            if not self.bus_address:
                self._start_bus()
            self._prepare_home()
            self._spawn(["trayer", "--edge", "top", "--align", "right", "--widthtype",
                         "request", "--height", "32", "--SetDockType", "true",
                         "--transparent", "false", "--tint", "0x303030"], log="trayer")  # fmt: skip
            wait_for("trayer", lambda: self.tray_window())
            if self.notification_daemon:
                self._spawn(["dunst", "-config", str(self.home / "dunstrc")], log="dunst")
                wait_for("dunst on the bus", self.notification_daemon_running)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for proc in reversed(self._procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=5)
            if proc.stdout is not None:
                proc.stdout.close()
        self._procs.clear()
        if self._socket_dir:
            shutil.rmtree(self._socket_dir, ignore_errors=True)

    def environ(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """``base`` (default: os.environ) with this desktop's display, bus and home."""
        env = dict(os.environ if base is None else base)
        env.update(
            DISPLAY=self.display,
            DBUS_SESSION_BUS_ADDRESS=self.bus_address,
            NO_AT_BRIDGE="1",
            GDK_BACKEND="x11",
            XDG_SESSION_TYPE="x11",
        )
        env.pop("WAYLAND_DISPLAY", None)
        env.setdefault("HOME", str(self.home))
        return env

    def _start_x(self) -> None:
        """Xvfb on a random high display number (other test runs may hold the low ones).

        ``-noreset``: without it the server resets each time its last client disconnects (every
        ``xdotool``/``xwininfo`` probe before trayer has connected), and a probe that lands in the
        reset was once refused ("unable to open display") in CI. The display is also probed once
        before it is used; one that does not answer is stopped, its log kept, and another tried.
        """
        refused: list[str] = []
        for _ in range(20):
            number = random.randrange(100, 1000)
            if Path(f"/tmp/.X{number}-lock").exists():
                continue
            read_fd, write_fd = os.pipe()
            try:
                xvfb = self._spawn(
                    ["Xvfb", f":{number}", "-displayfd", str(write_fd), "-screen", "0",
                     "1024x600x24", "-nolisten", "tcp", "-noreset"],
                    pass_fds=(write_fd,), log=f"xvfb-{number}",
                )  # fmt: skip
            finally:
                os.close(write_fd)
            with os.fdopen(read_fd) as pipe:
                ready = pipe.readline().strip()  # written once Xvfb accepts connections
            if ready == str(number) and xvfb.poll() is None:
                self.display, self._xvfb = f":{number}", xvfb
                if self._x_answers():
                    return
                refused.append(f":{number}: {self._x_state()}")
                self.display, self._xvfb = "", None
            self._procs.remove(xvfb)
            if xvfb.poll() is None:
                os.killpg(xvfb.pid, signal.SIGKILL)
            xvfb.wait(10)
        raise RuntimeError("Xvfb did not start on any display tried\n" + "\n".join(refused))

    def _x_answers(self, timeout: float = 10.0) -> bool:
        """Whether a client can connect to the display (retried while Xvfb is alive)."""
        deadline = time.monotonic() + timeout
        while self._xvfb is not None and self._xvfb.poll() is None:
            probe = subprocess.run(
                ["xwininfo", "-root"], env=self.environ(), capture_output=True, timeout=30,
                check=False,
            )  # fmt: skip
            if probe.returncode == 0:
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)
        return False

    def _x_state(self) -> str:
        """Xvfb's state and the end of its log, for an error message."""
        if self._xvfb is None:
            return "no Xvfb"
        code = self._xvfb.poll()
        state = "running" if code is None else f"exited with {code}"
        log = self.root / f"xvfb-{self.display.lstrip(':')}.log"
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        return f"Xvfb {state}; its log:\n{tail}"

    def _start_bus(self) -> None:
        self.bus_address, self._socket_dir = start_session_bus(self.root, self._spawn, "deskbus-")

    def _prepare_home(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "dunstrc").write_text(_DUNSTRC)

    def _spawn(
        self, args: list[str], log: str | None = None, **kwargs: object
    ) -> subprocess.Popen[bytes]:
        if log is not None:
            kwargs["stdout"] = (self.root / f"{log}.log").open("wb")
            kwargs["stderr"] = subprocess.STDOUT
        proc = subprocess.Popen(  # type: ignore[call-overload]
            args,
            start_new_session=True,
            stdin=subprocess.DEVNULL,
            env=self.environ() if self.display else None,
            **kwargs,
        )
        if log is not None:
            kwargs["stdout"].close()  # type: ignore[union-attr]
        self._procs.append(proc)
        return proc  # type: ignore[no-any-return]

    # -- looking at the screen -----------------------------------------------------------------

    def run(self, *args: str) -> str:
        done = subprocess.run(
            list(args), env=self.environ(), capture_output=True, text=True, timeout=30, check=False
        )
        if done.returncode != 0:
            message = f"{args} failed: {done.stderr.strip()}"
            if "unable to open display" in done.stderr:
                message += f"\n{self._x_state()}"
            raise RuntimeError(message)
        return done.stdout

    def windows(self) -> list[Window]:
        """Every window on the screen, with absolute geometry (``xwininfo -root -tree``)."""
        found = []
        pattern = re.compile(
            r'^\s*(0x[0-9a-f]+) (?:"([^"]*)"|\(has no name\)).*?'
            r"(\d+)x(\d+)\+-?\d+\+-?\d+\s+\+(-?\d+)\+(-?\d+)"
        )
        for line in self.run("xwininfo", "-root", "-tree").splitlines():
            m = pattern.match(line)
            if m:
                wid, name, w, h, x, y = m.groups()
                found.append(Window(int(wid, 16), name or "", int(x), int(y), int(w), int(h)))
        return found

    def tray_window(self) -> Window | None:
        """trayer's panel: the mapped window named "panel"."""
        ids = self.run_ok("xdotool", "search", "--onlyvisible", "--name", "^panel$")
        return next((w for w in self.windows() if w.id in ids and w.width > 1), None)

    def run_ok(self, *args: str) -> set[int]:
        try:
            return {int(line) for line in self.run(*args).split()}
        except RuntimeError:
            return set()  # xdotool search exits 1 when nothing matches

    def tray_icons(self) -> list[Window]:
        """Named windows docked inside trayer's panel (a status icon's name is its title)."""
        panel = self.tray_window()
        if panel is None:
            return []
        return [
            w
            for w in self.windows()
            if w.id != panel.id
            and w.name
            and w.width >= 8
            and w.height >= 8
            and panel.x <= w.x < panel.x + panel.width
            and panel.y <= w.y < panel.y + panel.height
        ]

    def tray_icon(self, name_prefix: str) -> Window | None:
        return next((w for w in self.tray_icons() if w.name.startswith(name_prefix)), None)

    def grab(self, window: Window) -> Image.Image:
        """What ``window`` shows on screen right now."""
        with tempfile.TemporaryDirectory() as tmp:
            shot = self.screenshot(Path(tmp) / "screen.png")
            with Image.open(shot) as screen:
                box = (window.x, window.y, window.x + window.width, window.y + window.height)
                return screen.convert("RGB").crop(box)

    def notifications(self) -> list[tuple[str, str]]:
        """(summary, body) of every notification dunst has shown, oldest first."""
        while int(self.run("dunstctl", "count", "displayed")) + int(
            self.run("dunstctl", "count", "waiting")
        ):
            self.run("dunstctl", "close-all")  # shown ones move to the history
        data = json.loads(self.run("dunstctl", "history"))["data"][0]
        found = [(n["summary"]["data"], n["body"]["data"]) for n in data]
        return list(reversed(found))

    def notification_daemon_running(self) -> bool:
        try:
            out = self.run(
                "dbus-send", "--session", "--print-reply", "--dest=org.freedesktop.DBus",
                "/org/freedesktop/DBus", "org.freedesktop.DBus.NameHasOwner",
                "string:org.freedesktop.Notifications",
            )  # fmt: skip
        except RuntimeError:
            return False
        return "boolean true" in out

    def clipboard(self) -> str:
        """The CLIPBOARD selection's text, read the way a GTK app pastes it."""
        read = (
            "import gi; gi.require_version('Gtk', '3.0'); from gi.repository import Gdk, Gtk; "
            "print(Gtk.Clipboard.get(Gdk.SELECTION_CLIPBOARD).wait_for_text() or '', end='')"
        )
        return self.run(sys.executable, "-c", read)

    def click(self, window: Window, button: int = 1) -> None:
        self.run("xdotool", "mousemove", str(window.x + window.width // 2),
                 str(window.y + window.height // 2), "click", str(button))  # fmt: skip

    def key(self, *keys: str) -> None:
        self.run("xdotool", "key", "--delay", "150", *keys)

    def screenshot(self, path: Path, window: int | None = None) -> Path:
        target = "root" if window is None else hex(window)
        self.run("import", "-window", target, str(path))
        return path


def require_desktop_tools() -> None:
    for tool, package in TOOLS.items():
        require(shutil.which(tool) is not None, tool, f"apt-get install {package}")
    require(
        importlib.util.find_spec("gi") is not None,
        "PyGObject (the tray's GTK backend)",
        "pip install -e '.[linux-tray]' (needs apt libgirepository1.0-dev libcairo2-dev)",
    )


@pytest.fixture
def desktop(tmp_path: Path, secret_service_daemons: SecretServiceDaemons) -> Iterator[Desktop]:
    """A running desktop on the private Secret Service's bus (so one bus serves both)."""
    with _on_secret_service_bus(tmp_path, secret_service_daemons, True) as running:
        yield running


@pytest.fixture
def desktop_without_notifications(
    tmp_path: Path, secret_service_daemons: SecretServiceDaemons
) -> Iterator[Desktop]:
    """Like ``desktop``, but no notification daemon runs."""
    with _on_secret_service_bus(tmp_path, secret_service_daemons, False) as running:
        yield running


def _on_secret_service_bus(
    tmp_path: Path, daemons: SecretServiceDaemons, notification_daemon: bool
) -> _started:
    require_desktop_tools()
    root = tmp_path / "desktop"
    root.mkdir()
    screen = Desktop(root, daemons.address, notification_daemon=notification_daemon)
    screen.home = Path(daemons.environ()["HOME"])
    return _started(screen)


@pytest.fixture
def bare_desktop(tmp_path: Path) -> Iterator[Desktop]:
    """A running desktop with its own D-Bus session bus (no keyring)."""
    require_desktop_tools()
    root = tmp_path / "desktop"
    root.mkdir()
    with _started(Desktop(root)) as running:
        yield running


class _started:
    def __init__(self, screen: Desktop) -> None:
        self.screen = screen

    def __enter__(self) -> Desktop:
        return self.screen.start()

    def __exit__(self, *exc: object) -> None:
        self.screen.stop()
