"""Start the broker at login: ``mcp-broker install`` / ``uninstall`` and the tray's checkbox.

One entry per OS, always under the broker's own name, running ``<absolute mcp-broker> run``:

Linux    ``$XDG_CONFIG_HOME/autostart/mcp-oauth-broker.desktop`` (XDG Autostart spec; an entry
         with ``Hidden=true`` or ``X-GNOME-Autostart-enabled=false`` counts as not installed,
         as the session ignores it).
macOS    ``~/Library/LaunchAgents/io.github.mcp-oauth-broker.plist`` with ``RunAtLoad``, for GUI
         sessions only (``LimitLoadToSessionType: Aqua``); launchd reads it at the next login.
Windows  the value ``mcp-oauth-broker`` under
         ``HKCU\\Software\\Microsoft\\Windows\\CurrentVersion\\Run``, started with
         ``pythonw.exe`` when there is one, so no console window opens.

``uninstall`` removes that one entry and nothing else. It removes it even when the user edited
it: the name is the broker's, and a user who unticks "Start at login" wants it gone. ``status``
says whether it is installed and whether it still matches what ``install`` would write now (a
moved or upgraded broker: run ``install`` again).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import plistlib
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TextIO

from broker.errors import AutostartError
from broker.integrations.executable import broker_command, carried_environment

logger = logging.getLogger(__name__)

APP_ID = "mcp-oauth-broker"
LAUNCH_AGENT_LABEL = "io.github.mcp-oauth-broker"
RUN_KEY = r"Software\Microsoft\Windows\CurrentVersion\Run"


@dataclass(frozen=True)
class AutostartStatus:
    installed: bool
    location: str
    current: bool = False  # the entry is exactly what install would write now

    def describe(self) -> str:
        if not self.installed:
            return f"Not started at login ({self.location} is absent or disabled)."
        stale = "" if self.current else " It differs from this broker's: run mcp-broker install."
        return f"Started at login by {self.location}.{stale}"


class Autostart(Protocol):
    def status(self) -> AutostartStatus: ...
    def install(self) -> AutostartStatus: ...
    def uninstall(self) -> AutostartStatus: ...


# -- Linux: XDG autostart ---------------------------------------------------------------------

_EXEC_RESERVED = set(" \t\n\"'\\><~|&;$*?#()`")


def desktop_exec(argv: Sequence[str]) -> str:
    """An ``Exec`` value (Desktop Entry spec, "The Exec key"): arguments with reserved
    characters are double-quoted with ``"`$\\`` escaped, ``%`` doubled, then the whole value is
    escaped as a string value (so a backslash is written four times)."""
    words = []
    for arg in argv:
        if not arg or _EXEC_RESERVED & set(arg):
            escaped = "".join("\\" + c if c in '"`$\\' else c for c in arg)
            arg = f'"{escaped}"'
        words.append(arg.replace("%", "%%"))
    return " ".join(words).replace("\\", "\\\\")


def desktop_entry(argv: Sequence[str]) -> str:
    return "\n".join(
        [
            "[Desktop Entry]",
            "Type=Application",
            "Version=1.0",
            "Name=MCP OAuth Broker",
            "Comment=Keeps MCP server sign-ins fresh and hands tokens to local MCP clients",
            f"Exec={desktop_exec(argv)}",
            "Terminal=false",
            "X-GNOME-Autostart-enabled=true",
            "",
        ]
    )


@dataclass(frozen=True)
class XdgAutostart:
    directory: Path
    argv: tuple[str, ...]

    @property
    def path(self) -> Path:
        return self.directory / f"{APP_ID}.desktop"

    def content(self) -> str:
        return desktop_entry(self.argv)

    def status(self) -> AutostartStatus:
        text = _read_text(self.path)
        if text is None:
            return AutostartStatus(False, str(self.path))
        keys = _desktop_keys(text)
        enabled = keys.get("Hidden", "false") != "true" and (
            keys.get("X-GNOME-Autostart-enabled", "true") != "false"
        )
        return AutostartStatus(enabled, str(self.path), text == self.content())

    def install(self) -> AutostartStatus:
        _write_file(self.path, self.content().encode())
        return self.status()

    def uninstall(self) -> AutostartStatus:
        _remove_file(self.path)
        return self.status()


def _desktop_keys(text: str) -> dict[str, str]:
    keys: dict[str, str] = {}
    group = None
    for line in text.splitlines():
        if line.startswith("["):
            group = line.strip()
        elif group == "[Desktop Entry]" and "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            keys[key.strip()] = value.strip()
    return keys


# -- macOS: LaunchAgent -----------------------------------------------------------------------


@dataclass(frozen=True)
class LaunchAgent:
    directory: Path
    argv: tuple[str, ...]
    environment: Mapping[str, str]

    @property
    def path(self) -> Path:
        return self.directory / f"{LAUNCH_AGENT_LABEL}.plist"

    def content(self) -> bytes:
        agent: dict[str, Any] = {
            "Label": LAUNCH_AGENT_LABEL,
            "ProgramArguments": list(self.argv),
            "RunAtLoad": True,
            "ProcessType": "Interactive",
            "LimitLoadToSessionType": "Aqua",  # the tray needs a GUI session
        }
        if self.environment:
            agent["EnvironmentVariables"] = dict(self.environment)
        return plistlib.dumps(agent)

    def status(self) -> AutostartStatus:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return AutostartStatus(False, str(self.path))
        return AutostartStatus(True, str(self.path), raw == self.content())

    def install(self) -> AutostartStatus:
        _write_file(self.path, self.content())
        return self.status()

    def uninstall(self) -> AutostartStatus:
        _remove_file(self.path)
        return self.status()


# -- Windows: the Run key ---------------------------------------------------------------------


class RunKey(Protocol):
    """``HKCU\\…\\Run`` values; injected so the logic is tested off Windows."""

    def get(self, name: str) -> str | None: ...
    def set(self, name: str, value: str) -> None: ...
    def delete(self, name: str) -> None: ...


def _winreg() -> Any:
    """``winreg``, imported only when used, which is only on Windows."""
    return importlib.import_module("winreg")


class WinregRunKey:
    """The real key."""

    def get(self, name: str) -> str | None:
        winreg = _winreg()
        try:
            with winreg.OpenKey(winreg.HKEY_CURRENT_USER, RUN_KEY) as key:
                value, _kind = winreg.QueryValueEx(key, name)
        except FileNotFoundError:
            return None
        return str(value)

    def set(self, name: str, value: str) -> None:
        winreg = _winreg()
        with winreg.CreateKeyEx(winreg.HKEY_CURRENT_USER, RUN_KEY, 0, winreg.KEY_SET_VALUE) as key:
            winreg.SetValueEx(key, name, 0, winreg.REG_SZ, value)

    def delete(self, name: str) -> None:
        winreg = _winreg()
        try:
            with winreg.OpenKey(winreg.HKEY_CURRENT_USER, RUN_KEY, 0, winreg.KEY_SET_VALUE) as key:
                winreg.DeleteValue(key, name)
        except FileNotFoundError:
            pass


@dataclass(frozen=True)
class WindowsRun:
    key: RunKey
    argv: tuple[str, ...]

    @property
    def location(self) -> str:
        return f"HKCU\\{RUN_KEY}\\{APP_ID}"

    def content(self) -> str:
        return subprocess.list2cmdline(list(self.argv))

    def status(self) -> AutostartStatus:
        value = self.key.get(APP_ID)
        return AutostartStatus(value is not None, self.location, value == self.content())

    def install(self) -> AutostartStatus:
        self.key.set(APP_ID, self.content())
        return self.status()

    def uninstall(self) -> AutostartStatus:
        if self.key.get(APP_ID) is not None:
            self.key.delete(APP_ID)
        return self.status()


# -- choosing one -----------------------------------------------------------------------------


def autostart_for(
    platform: str = sys.platform,
    environ: Mapping[str, str] | None = None,
    run_key: RunKey | None = None,
    command: Sequence[str] | None = None,
) -> Autostart:
    """The entry for this OS (every argument is for tests)."""
    env = os.environ if environ is None else environ
    home = Path(env.get("HOME") or Path.home())
    argv = (*(command if command is not None else _command(platform)), "run")
    carried = carried_environment(env)
    if platform == "win32":
        if carried:
            logger.warning(
                "The Run key cannot set %s; the broker will start with its defaults",
                ", ".join(carried),
            )
        return WindowsRun(run_key or WinregRunKey(), argv)
    if platform == "darwin":
        return LaunchAgent(home / "Library" / "LaunchAgents", argv, carried)
    config_home = Path(env.get("XDG_CONFIG_HOME") or home / ".config")
    if carried:
        argv = ("env", *(f"{k}={v}" for k, v in carried.items()), *argv)
    return XdgAutostart(config_home / "autostart", argv)


def _command(platform: str) -> list[str]:
    if platform == "win32":
        pythonw = Path(sys.executable).with_name("pythonw.exe")
        if pythonw.is_file():
            return [str(pythonw), "-m", "broker.cli"]
    return broker_command()


def is_installed() -> bool:
    """For the tray's "Start at login" checkbox."""
    return autostart_for().status().installed


def set_installed(enabled: bool) -> AutostartStatus:
    """For the tray's "Start at login" checkbox; returns the state afterwards."""
    autostart = autostart_for()
    return autostart.install() if enabled else autostart.uninstall()


# -- files ------------------------------------------------------------------------------------


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise AutostartError(f"{path}: cannot be read ({exc})") from None


def _write_file(path: Path, payload: bytes) -> None:
    """Atomically, mode 0644: launchd refuses group- or world-writable agents."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as exc:
        raise AutostartError(f"{path}: cannot be written ({exc.strerror})") from None


def _remove_file(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        raise AutostartError(f"{path}: cannot be removed ({exc.strerror})") from None


# -- argparse wiring --------------------------------------------------------------------------


def run_install(args: argparse.Namespace, broker: object = None, out: TextIO | None = None) -> int:
    """``mcp-broker install [--status]``; ``--status`` exits 1 when not installed."""
    autostart = autostart_for()
    status = autostart.status() if args.status else autostart.install()
    print(status.describe(), file=out or sys.stdout)
    return 0 if status.installed or not args.status else 1


def run_uninstall(
    args: argparse.Namespace, broker: object = None, out: TextIO | None = None
) -> int:
    status = autostart_for().uninstall()
    print(status.describe(), file=out or sys.stdout)
    return 0


def configure_install_parsers(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    install = subparsers.add_parser(
        "install",
        help="start the broker at login",
        description=(
            "Start `mcp-broker run` (this broker, by its absolute path) at every login: an XDG "
            "autostart entry on Linux, a LaunchAgent on macOS, a Run-key value on Windows. "
            'Running it again refreshes the entry. The tray\'s "Start at login" does the same.'
        ),
    )
    install.add_argument(
        "--status",
        action="store_true",
        help="only report whether it is installed (exit 1 when not); change nothing",
    )
    install.set_defaults(run=run_install, needs_broker=False)
    uninstall = subparsers.add_parser(
        "uninstall",
        help="stop starting the broker at login",
        description="Remove the entry `mcp-broker install` wrote, and nothing else. Tokens and "
        "configuration are kept (sign out with `mcp-broker logout URL`).",
    )
    uninstall.set_defaults(run=run_uninstall, needs_broker=False)
    return install, uninstall
