"""``mcp-broker install`` / ``uninstall``: the start-at-login entry on each OS."""

from __future__ import annotations

import argparse
import os
import plistlib
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from broker.desktop.autostart import (
    APP_ID,
    RUN_KEY,
    autostart_for,
    configure_install_parsers,
    desktop_exec,
    is_installed,
    set_installed,
)
from tests.support.realparts import require

SCRIPT = "/opt/My Apps/bin/mcp-broker"


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def exec_argv(value: str) -> list[str]:
    """Parse an Exec value as a launcher does (Desktop Entry spec, "The Exec key")."""
    unescaped = value.replace("\\\\", "\\")  # the string-value level first
    argv: list[str] = []
    current: list[str] = []
    quoted = in_word = False
    chars = iter(unescaped)
    for char in chars:
        if quoted:
            if char == "\\":
                current.append(next(chars))
            elif char == '"':
                quoted = False
            else:
                current.append(char)
        elif char == '"':
            quoted = in_word = True
        elif char == " ":
            if in_word:
                argv.append("".join(current).replace("%%", "%"))
            current, in_word = [], False
        else:
            current.append(char)
            in_word = True
    if in_word:
        argv.append("".join(current).replace("%%", "%"))
    return argv


def exec_line(path: Path) -> str:
    line = next(x for x in path.read_text().splitlines() if x.startswith("Exec="))
    return line.removeprefix("Exec=")


# -- Linux --------------------------------------------------------------------------------------


@pytest.fixture
def xdg(tmp_path: Path) -> dict[str, str]:
    return {"HOME": str(tmp_path / "home"), "XDG_CONFIG_HOME": str(tmp_path / "config")}


@pytest.mark.integration
@pytest.mark.parametrize(
    "command",
    [[SCRIPT], ["/usr/bin/python3", "-m", "broker.cli"], ["/o'dd/$HOME/100%/\\x\"/mcp-broker"]],
    ids=["script-with-space", "python-module", "hostile-characters"],
)
def test_linux_entry_is_valid_and_runs_this_broker(
    xdg: dict[str, str], tmp_path: Path, command: list[str]
) -> None:
    require(
        shutil.which("desktop-file-validate") is not None,
        "desktop-file-validate",
        "apt-get install desktop-file-utils (make test installs it)",
    )
    autostart = autostart_for("linux", xdg, command=command)

    status = autostart.install()

    path = tmp_path / "config" / "autostart" / f"{APP_ID}.desktop"
    assert status.installed and status.current and status.location == str(path)
    result = subprocess.run(
        ["desktop-file-validate", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0 and result.stdout == "", result.stdout + result.stderr
    assert exec_argv(exec_line(path)) == [*command, "run"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_linux_uninstall_leaves_no_file_behind(xdg: dict[str, str], tmp_path: Path) -> None:
    autostart = autostart_for("linux", xdg, command=[SCRIPT])
    autostart.install()
    autostart.install()  # again: still one file, no temp files
    assert len(files_under(tmp_path)) == 1

    status = autostart.uninstall()

    assert not status.installed
    assert files_under(tmp_path) == []
    assert not autostart.uninstall().installed  # nothing to remove is fine


def test_linux_entry_disabled_or_edited_by_the_user(xdg: dict[str, str], tmp_path: Path) -> None:
    autostart = autostart_for("linux", xdg, command=[SCRIPT])
    autostart.install()
    path = tmp_path / "config" / "autostart" / f"{APP_ID}.desktop"

    path.write_text(path.read_text().replace("X-GNOME-Autostart-enabled=true", "Hidden=true"))
    assert not autostart.status().installed  # the session ignores a hidden entry

    path.write_text(path.read_text().replace("Hidden=true", "X-Custom=1"))
    status = autostart.status()
    assert status.installed and not status.current
    assert "run mcp-broker install" in status.describe()

    autostart.uninstall()  # the name is the broker's: removed even when edited
    assert not path.exists()


def test_linux_carries_the_broker_home(xdg: dict[str, str], tmp_path: Path) -> None:
    home = str(tmp_path / "broker home")
    autostart = autostart_for("linux", {**xdg, "MCP_BROKER_HOME": home}, command=[SCRIPT])
    autostart.install()
    path = tmp_path / "config" / "autostart" / f"{APP_ID}.desktop"
    assert exec_argv(exec_line(path)) == ["env", f"MCP_BROKER_HOME={home}", SCRIPT, "run"]


def test_desktop_exec_doubles_percent_and_escapes_for_the_string_value() -> None:
    assert desktop_exec(["/bin/b", "run"]) == "/bin/b run"
    assert desktop_exec(["/a b/%u"]) == '"/a b/%%u"'
    assert desktop_exec(['x"y']) == '"x\\\\"y"'


# -- macOS --------------------------------------------------------------------------------------


def test_macos_launch_agent_runs_at_load_with_the_right_keys(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "MCP_BROKER_HOME": str(tmp_path / "b")}
    autostart = autostart_for("darwin", env, command=[SCRIPT])

    status = autostart.install()

    path = tmp_path / "Library" / "LaunchAgents" / "io.github.mcp-oauth-broker.plist"
    assert status.installed and status.current and status.location == str(path)
    with path.open("rb") as handle:
        agent = plistlib.load(handle)
    assert agent == {
        "Label": "io.github.mcp-oauth-broker",
        "ProgramArguments": [SCRIPT, "run"],
        "RunAtLoad": True,
        "ProcessType": "Interactive",
        "LimitLoadToSessionType": "Aqua",
        "EnvironmentVariables": {"MCP_BROKER_HOME": str(tmp_path / "b")},
    }
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # launchd refuses writable agents

    assert not autostart.uninstall().installed
    assert files_under(tmp_path) == []


# -- Windows ------------------------------------------------------------------------------------


class FakeRunKey:
    """HKCU\\...\\Run as a dict, with a value that belongs to another program."""

    def __init__(self) -> None:
        self.values = {"OneDrive": '"C:\\Program Files\\OneDrive\\OneDrive.exe" /background'}
        self.writes: list[tuple[str, str | None]] = []

    def get(self, name: str) -> str | None:
        return self.values.get(name)

    def set(self, name: str, value: str) -> None:
        self.writes.append((name, value))
        self.values[name] = value

    def delete(self, name: str) -> None:
        self.writes.append((name, None))
        del self.values[name]


def test_windows_run_value_through_an_injected_registry() -> None:
    key = FakeRunKey()
    exe = "C:\\Program Files\\Python311\\pythonw.exe"
    autostart = autostart_for("win32", {}, run_key=key, command=[exe, "-m", "broker.cli"])

    status = autostart.install()

    assert key.values[APP_ID] == f'"{exe}" -m broker.cli run'
    assert status.installed and status.current
    assert status.location == f"HKCU\\{RUN_KEY}\\{APP_ID}"
    assert not autostart.uninstall().installed
    assert list(key.values) == ["OneDrive"]  # nothing else touched
    assert key.writes == [(APP_ID, f'"{exe}" -m broker.cli run'), (APP_ID, None)]
    autostart.uninstall()
    assert len(key.writes) == 2  # removing what is not there writes nothing


def test_winreg_is_not_imported_off_windows() -> None:
    autostart_for("win32", {}, run_key=FakeRunKey(), command=["x"]).install()
    assert "winreg" not in sys.modules or sys.platform == "win32"


# -- the commands and the tray's checkbox -------------------------------------------------------


def run(*argv: str) -> tuple[int, str]:
    parser = argparse.ArgumentParser(prog="mcp-broker")
    configure_install_parsers(parser.add_subparsers(dest="command"))
    args = parser.parse_args(list(argv))
    out: list[str] = []
    code: int = args.run(args, None, SimpleNamespace(write=out.append, flush=lambda: None))
    return code, "".join(out)


@pytest.mark.skipif(sys.platform != "linux", reason="the real entry of this OS")
def test_install_status_and_uninstall_commands(
    xdg: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in xdg.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("MCP_BROKER_HOME", raising=False)
    monkeypatch.delenv("MCP_BROKER_CONFIG", raising=False)
    monkeypatch.setattr(sys, "argv", [str(Path(sys.executable).parent / "mcp-broker")])

    assert run("install", "--status")[0] == 1
    assert not is_installed()
    code, out = run("install")
    assert code == 0 and "Started at login" in out
    assert is_installed() and run("install", "--status")[0] == 0
    path = tmp_path / "config" / "autostart" / f"{APP_ID}.desktop"
    assert exec_argv(exec_line(path))[0] == os.path.join(
        os.path.dirname(sys.executable), "mcp-broker"
    )

    assert not set_installed(False).installed
    assert not is_installed()
    assert set_installed(True).installed
    code, out = run("uninstall")
    assert code == 0 and "Not started at login" in out
    assert files_under(tmp_path) == []


def test_the_installer_templates_are_what_install_writes(tmp_path: Path) -> None:
    """installer/autostart/ holds the same entries for packagers, with @MCP_BROKER@ to fill in."""
    templates = Path(__file__).resolve().parents[3] / "installer" / "autostart"
    script = "/usr/bin/mcp-broker"
    linux = autostart_for("linux", {"XDG_CONFIG_HOME": str(tmp_path)}, command=[script])
    desktop = (templates / f"{APP_ID}.desktop").read_text()
    linux.install()
    assert (
        desktop.replace("@MCP_BROKER@", script)
        == (tmp_path / "autostart" / f"{APP_ID}.desktop").read_text()
    )
    mac = autostart_for("darwin", {"HOME": str(tmp_path)}, command=[script])
    mac.install()
    plist = (templates / "io.github.mcp-oauth-broker.plist").read_text()
    written = tmp_path / "Library" / "LaunchAgents" / "io.github.mcp-oauth-broker.plist"
    assert plist.replace("@MCP_BROKER@", script).encode() == written.read_bytes()
