"""``make demo`` on a headless machine (a server over SSH): no session D-Bus, no Secret Service, no
display. ``mcp-broker demo --smoke`` then runs a temporary gnome-keyring on a private bus, says so
in one line, passes, and leaves no process or file behind; the broker itself still refuses to run
without a keyring (never a plaintext fallback)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from broker.cli.demo_keyring import ANNOUNCEMENT
from tests.e2e.conftest import BrokerCli
from tests.support.realparts import require

pytestmark = pytest.mark.integration

JWT = re.compile(r"eyJ[\w-]+\.[\w-]+\.")
STRIPPED = ("DBUS_SESSION_BUS_ADDRESS", "DISPLAY", "WAYLAND_DISPLAY", "PYTHON_KEYRING_BACKEND")


def headless(env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """The environment of an SSH session on a server: no bus, no display, a fresh HOME, and a
    TMPDIR of its own (to see that nothing is left in it)."""
    bare = {k: v for k, v in env.items() if k not in STRIPPED and not k.startswith("XDG_")}
    for name in ("home", "tmp"):
        (tmp_path / name).mkdir()
    bare.update(HOME=str(tmp_path / "home"), TMPDIR=str(tmp_path / "tmp"))
    bare.pop("MCP_BROKER_HOME", None)  # the smoke check makes a throw-away home (under TMPDIR)
    return bare


def processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes whose command line or environment mentions ``text``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            environ = (entry / "environ").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if text in cmdline or text in environ:
            found.append(f"{entry.name}: {cmdline}")
    return found


def require_daemons() -> None:
    for tool, package in (("dbus-daemon", "dbus"), ("gnome-keyring-daemon", "gnome-keyring")):
        require(shutil.which(tool) is not None, tool, f"apt-get install {package}")


def test_smoke_with_no_bus_and_no_display_runs_a_temporary_keyring_and_leaves_nothing(
    broker_cli: BrokerCli, tmp_path: Path
) -> None:
    require_daemons()
    broker_cli.env = headless(broker_cli.env, tmp_path)
    assert not {"DBUS_SESSION_BUS_ADDRESS", "DISPLAY"} & set(broker_cli.env)

    done = broker_cli.run("demo", "--smoke")

    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert done.stdout.count(ANNOUNCEMENT) == 1 and ANNOUNCEMENT.count("\n") == 0
    assert "get a token from the broker's token API" in done.stdout  # the keyring was used
    assert "smoke check passed" in done.stdout
    assert not JWT.search(output)
    # Gone with the demo: no daemon, no keyring file, no socket, no throw-away home.
    assert processes_mentioning(str(tmp_path)) == []
    assert list((tmp_path / "tmp").iterdir()) == []
    assert not (tmp_path / "home" / ".local" / "share" / "keyrings").exists()


STORE_PROBE = """
from broker.errors import StorageUnavailable
from broker.root import from_environment
broker = from_environment(None).broker
try:
    broker.store.put_client_secret("https://issuer.example", "client", "CANARY-SECRET")
except StorageUnavailable as exc:
    print("refused:", exc)
else:
    print("STORED")
"""


def test_the_broker_itself_still_refuses_to_store_without_a_keyring(
    broker_cli: BrokerCli, tmp_path: Path
) -> None:
    """Outside the demo nothing starts a keyring: the broker's own store refuses, and writes
    nothing anywhere (no plaintext fallback)."""
    env = headless(broker_cli.env, tmp_path)
    env["MCP_BROKER_HOME"] = str(tmp_path / "broker-home")

    done = subprocess.run(
        [sys.executable, "-c", STORE_PROBE],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("refused: No usable OS keyring"), done.stdout
    assert "never falls back to storing tokens in a plain file" in done.stdout
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert not any("CANARY-SECRET" in p.read_text(errors="replace") for p in written)
    assert processes_mentioning(str(tmp_path)) == []


def test_without_the_daemons_installed_it_says_what_to_install(
    broker_cli: BrokerCli, tmp_path: Path
) -> None:
    broker_cli.env = headless(broker_cli.env, tmp_path)
    empty_path = tmp_path / "bin"
    empty_path.mkdir()
    broker_cli.env["PATH"] = str(empty_path)

    done = broker_cli.run("demo", "--smoke")

    assert done.returncode != 0
    assert "apt-get install dbus gnome-keyring" in done.stderr
    assert "--ephemeral" in done.stderr
    assert "start the demo servers" not in done.stdout
    assert os.listdir(tmp_path / "tmp") == []
