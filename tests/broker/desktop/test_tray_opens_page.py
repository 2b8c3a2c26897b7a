"""The tray's first entry, "Open mcp-oauth-broker…", on a real desktop (Xvfb, trayer, dunst):
the broker hands its ``BROWSER`` a private launch file, and the link in it opens the control
page once."""

from __future__ import annotations

import re
import stat
from pathlib import Path
from urllib.parse import unquote, urlsplit

import httpx2
import pytest

from tests.broker.desktop.brokerrun import BrokerRun
from tests.broker.desktop.test_tray_desktop import icon_with, open_menu
from tests.support.desktop import Desktop, wait_for

pytestmark = pytest.mark.integration


def test_the_first_tray_entry_opens_the_control_page(
    desktop: Desktop, broker_env: dict[str, str], tmp_path: Path
) -> None:
    seen = tmp_path / "opened.txt"
    script = tmp_path / "record-browser"
    script.write_text(f'#!/bin/sh\nprintf "%s\\n" "$1" >> "{seen}"\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    env = desktop.environ({**broker_env, "BROWSER": str(script)})
    broker = BrokerRun(env, tmp_path / "broker.log")
    try:
        icon = wait_for("the icon docked", lambda: icon_with(desktop, "no servers"), 120)
        open_menu(desktop, icon)
        desktop.key("Down", "Return")  # "Open mcp-oauth-broker…"

        opened = wait_for("the browser started", lambda: seen.exists() and seen.read_text())
        (file_url,) = opened.split()
        launch_file = Path(unquote(urlsplit(file_url).path))
        assert file_url.startswith("file://") and re.fullmatch(
            r"control-page-[0-9a-f]{16}\.html", launch_file.name
        )
        assert stat.S_IMODE(launch_file.stat().st_mode) == 0o600
        (link,) = re.findall(r'href="([^"]+)"', launch_file.read_text())
        with httpx2.Client(trust_env=False, timeout=30) as http:
            first, again = http.get(link), http.get(link)
        assert first.status_code == 200 and first.cookies
        assert again.status_code == 403
        assert broker.stop() == 0, broker.log()
        assert not launch_file.exists()  # removed at Quit
    finally:
        broker.kill()
