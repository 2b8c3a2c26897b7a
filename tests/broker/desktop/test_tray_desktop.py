"""The tray on a real desktop: Xvfb, trayer (an XEmbed tray host), a private D-Bus session with
dunst and the Secret Service, and ``mcp-demo-server stack`` to sign in to.

The broker runs as a real process; the test only uses what a user has: it finds the docked icon,
right-clicks it, picks menu entries with the keyboard, and reads the icon's colour and title
(the status icon window's name) off the screen.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import ImageStat

from broker.desktop.icons import dominant_state
from broker.desktop.menu import Overall
from tests.broker.desktop.brokerrun import BrokerRun, session_processes
from tests.support.browser import browser_command
from tests.support.desktop import Desktop, Window, wait_for
from tests.support.procs import ServerProcess, demo_server_cmd

pytestmark = pytest.mark.integration

TITLE = "MCP OAuth Broker: "
DEMO_NAME = "mcp-oauth-broker demo server"  # the demo server's PRM resource_name


@pytest.fixture
def demo_stack(tmp_path: Path) -> Iterator[str]:
    """``mcp-demo-server stack`` with ``--auto-login demo``; yields the MCP server's URL."""
    args = demo_server_cmd("stack", "--idp-port=0", "--port=0", "--auto-login", "demo")
    with ServerProcess(args, tmp_path / "stack.log") as stack:
        yield stack.url


def cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "broker.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"{args}: {done.stderr}"
    return done.stdout


def icon_with(desktop: Desktop, words: str) -> Window | None:
    icon = desktop.tray_icon(TITLE)
    return icon if icon is not None and words in icon.name else None


def open_menu(desktop: Desktop, icon: Window) -> None:
    """Right-click ``icon`` and wait until its menu (light, below the icon) is on screen."""
    region = Window(0, "", icon.x + icon.width - 250, icon.y + icon.height + 5, 240, 90)

    def brightness() -> float:
        return float(ImageStat.Stat(desktop.grab(region).convert("L")).mean[0])

    wait_for("the last menu to close", lambda: brightness() < 100)
    desktop.click(icon, button=3)
    wait_for("the menu", lambda: brightness() > 150)


def test_sign_in_from_the_tray_menu_turns_the_icon_signed_in(
    desktop: Desktop,
    broker_env: dict[str, str],
    demo_stack: str,
    tmp_path: Path,
    artifacts_dir: Path,
) -> None:
    env = desktop.environ(broker_env)
    env["BROWSER"] = browser_command(tmp_path)
    cli(env, "add", demo_stack, "--client-id", "demo-broker", "--provider", "cognito")
    broker = BrokerRun(env, tmp_path / "broker.log")
    try:
        before = wait_for(
            "the icon docked in trayer", lambda: icon_with(desktop, "sign-in needed"), 120
        )
        assert before.name == "MCP OAuth Broker: sign-in needed (1 of 1)"
        assert dominant_state(desktop.grab(before)) is Overall.NEEDS_SIGN_IN

        open_menu(desktop, before)  # a real right-click
        desktop.screenshot(artifacts_dir / "tray-menu.png")
        # "Open mcp-oauth-broker…" → the server → its submenu → "Sign in"
        desktop.key("Down", "Down", "Right", "Return")

        after = wait_for("the signed-in title", lambda: icon_with(desktop, "signed in"), 120)
        assert after.name == "MCP OAuth Broker: signed in"
        wait_for(
            "the signed-in icon", lambda: dominant_state(desktop.grab(after)) is Overall.SIGNED_IN
        )
        desktop.screenshot(artifacts_dir / "tray-signed-in.png")

        status = json.loads(cli(env, "status", "--json"))
        assert [(s["state"], s["user"]) for s in status["servers"]] == [("valid", "demo")]
        assert [s["name"] for s in status["servers"]] == [DEMO_NAME]
        assert cli(env, "status").startswith(f"{DEMO_NAME} ({demo_stack})\tvalid\tas demo, ")
        open_menu(desktop, after)  # the server is named by its resource_name now
        desktop.screenshot(artifacts_dir / "tray-menu-named.png")
        desktop.key("Escape")
        token = cli(env, "token", demo_stack).strip()

        open_menu(desktop, after)  # rebuilt: "Copy access token" is enabled now
        desktop.key("Down", "Down", "Right", "Down", "Down", "Return")
        wait_for("the token on the clipboard", lambda: desktop.clipboard() == token)
        copied = wait_for("the copy notification", lambda: [
            n for n in desktop.notifications() if n[0] == "Access token copied"])  # fmt: skip
        assert copied[0][1].startswith(f"Token for {DEMO_NAME}, valid")

        open_menu(desktop, after)
        desktop.key("Up", "Return")  # Quit is the last entry
        assert broker.wait() == 0, broker.log()
        assert session_processes(broker.proc.pid) == []  # no browser, no helper left behind

        shown = desktop.notifications()
        assert ("Signed in", f"Signed in to {DEMO_NAME}.") in shown
        assert token not in broker.log()
        assert all(token not in summary + body for summary, body in shown)
    finally:
        broker.kill()


def test_copy_sign_in_link_then_the_users_own_browser_signs_in(
    desktop: Desktop,
    broker_env: dict[str, str],
    demo_stack: str,
    tmp_path: Path,
    artifacts_dir: Path,
) -> None:
    """The tray's "Copy sign-in link": the link goes to the clipboard, the broker opens no
    browser; the user pastes it into a browser on this machine (the end-to-end tests' real
    browser driver, auto-login) and the loopback callback completes the sign-in."""
    env = desktop.environ(broker_env)
    opened = tmp_path / "default-browser-opened"
    default_browser = tmp_path / "default-browser"
    default_browser.write_text(f'#!/bin/sh\necho "$@" >> "{opened}"\nexit 1\n')
    default_browser.chmod(0o755)
    env["BROWSER"] = str(default_browser)  # must never be used by the link sign-in
    cli(env, "add", demo_stack, "--client-id", "demo-broker", "--provider", "cognito")
    broker = BrokerRun(env, tmp_path / "broker.log")
    try:
        icon = wait_for("the icon docked", lambda: icon_with(desktop, "sign-in needed"), 120)
        open_menu(desktop, icon)
        # past "Open…": the server → its submenu → "Copy sign-in link"
        desktop.key("Down", "Down", "Right", "Down")
        desktop.screenshot(artifacts_dir / "tray-copy-sign-in-link.png")
        desktop.key("Return")

        def clipboard_link() -> str | None:
            text = desktop.clipboard()
            return text if text.startswith("http") else None

        link = wait_for("the sign-in link on the clipboard", clipboard_link)
        copied = wait_for("the link notification", lambda: [
            n for n in desktop.notifications() if n[0] == "Sign-in link copied"])  # fmt: skip
        # Named by host and path: its resource_name is learnt at the first sign-in.
        assert demo_stack.split("//")[1] in copied[0][1] and link not in copied[0][1]
        assert "/oauth2/authorize?" in link and "code_challenge=" in link

        users_browser = subprocess.run(
            [browser_command(tmp_path), link], env=env, timeout=120, check=False
        )
        assert users_browser.returncode == 0  # it landed on the loopback callback

        wait_for("the signed-in title", lambda: icon_with(desktop, "signed in"), 120)
        status = json.loads(cli(env, "status", "--json"))
        assert [(s["state"], s["user"]) for s in status["servers"]] == [("valid", "demo")]
        assert ("Signed in", f"Signed in to {DEMO_NAME}.") in desktop.notifications()
        assert not opened.exists()  # the broker opened no browser itself
    finally:
        broker.kill()


def test_ctrl_c_stops_the_tray_cleanly_without_a_notification_daemon(
    desktop_without_notifications: Desktop, broker_env: dict[str, str], tmp_path: Path
) -> None:
    desktop = desktop_without_notifications
    broker = BrokerRun(desktop.environ(broker_env), tmp_path / "broker.log")
    try:
        wait_for("the icon", lambda: icon_with(desktop, "no servers configured"), 120)
        broker.proc.send_signal(signal.SIGINT)  # pystray resets SIGINT; the broker takes it back
        assert broker.wait() == 0, broker.log()
        assert "Traceback" not in broker.log()
        assert session_processes(broker.proc.pid) == []
    finally:
        broker.kill()
