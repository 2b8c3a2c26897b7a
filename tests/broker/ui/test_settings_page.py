"""The Settings page with a fake backend (Flask's test client, no socket): start at login is
shown as it is on disk and switched from the page; where the files are."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from broker.desktop.menu import View
from broker.ui.app import create_page_app
from broker.ui.sessions import LaunchTokens, Sessions

PORT = 4321
ORIGIN = f"http://127.0.0.1:{PORT}"


class Audit:
    path = Path("/home/u/.local/state/mcp-broker/audit.log")


class Clients:
    audit = Audit()


class FakeBackend:
    config_file = Path("/home/u/.config/mcp-broker/config.toml")
    state_dir = Path("/home/u/.local/state/mcp-broker")
    clients = Clients()

    def __init__(self) -> None:
        self.at_login: bool | None = False

    def start_at_login(self) -> bool | None:
        return self.at_login

    def set_start_at_login(self, enabled: bool) -> None:
        self.at_login = enabled

    def view(self) -> View:
        return View()


def client(backend: Any) -> tuple[Any, str, str]:
    launches = LaunchTokens()
    app = create_page_app(backend, launches, Sessions(), port=PORT)
    http = app.test_client()
    landed = http.get(
        f"/ui/launch?t={launches.mint('/ui/settings')}",
        headers={"Host": f"127.0.0.1:{PORT}"},
    )
    (base,) = re.findall(r'url=(/ui/s/[^/"]+)/settings"', landed.get_data(as_text=True))
    page = http.get(f"{base}/settings", headers={"Host": f"127.0.0.1:{PORT}"})
    (csrf,) = set(re.findall(r'name="csrf" value="([^"]+)"', page.get_data(as_text=True)))
    return http, base, csrf


def test_start_at_login_is_switched_from_the_settings_page() -> None:
    backend = FakeBackend()
    http, base, csrf = client(backend)
    headers = {"Host": f"127.0.0.1:{PORT}", "Origin": ORIGIN}

    before = http.get(f"{base}/settings", headers=headers).get_data(as_text=True)
    assert "does not start" in before and str(FakeBackend.config_file) in before
    answer = http.post(
        f"{base}/settings/start-at-login", data={"csrf": csrf, "enabled": "on"}, headers=headers
    )
    assert answer.status_code == 303 and backend.at_login is True
    after = http.get(f"{base}/settings", headers=headers).get_data(as_text=True)
    assert "The broker now starts at login." in after and "Do not start at login" in after


def test_without_a_start_at_login_switch_the_page_says_how() -> None:
    backend = FakeBackend()
    backend.at_login = None
    http, base, _ = client(backend)

    shown = http.get(f"{base}/settings", headers={"Host": f"127.0.0.1:{PORT}"}).get_data(
        as_text=True
    )

    assert "mcp-broker install" in shown
