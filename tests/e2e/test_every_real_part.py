"""The whole product with every real part (issue 6): what a user sees, end to end.

``mcp-demo-server stack`` (the local authorization server with its real login form, and the demo
MCP server) and ``mcp-broker run`` (the tray, the token API, the refresher) run as real processes
on a private desktop: Xvfb, trayer, dunst, a private D-Bus session and an unlocked
gnome-keyring. The test only does what a user or an MCP client does: it right-clicks the docked
icon and picks menu entries with the keyboard, the broker opens headless Chromium (``BROWSER``)
where the login form is filled in, local clients ask ``POST /v1/token`` and run
``mcp-broker connect`` through the mcp SDK. Screenshots of the tray and of both web pages are kept
in ``test-artifacts/``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest

from broker.api.endpoint import API_HEADER
from broker.desktop.icons import dominant_state
from broker.desktop.menu import Overall
from broker.paths import broker_paths
from broker.store.chunks import ChunkedEntries
from broker.store.keyring_store import SERVICE
from tests.broker.bridge.stdio import bridged_client
from tests.broker.bridge.test_connect_e2e import whoami as bridged_whoami
from tests.broker.desktop.brokerrun import BrokerRun, session_processes
from tests.broker.desktop.test_tray_desktop import icon_with, open_menu
from tests.e2e.conftest import ROOT, BrokerCli, require_chromium
from tests.support.browser import CHROMIUM_DRIVER, browser_command
from tests.support.chromium_browser_driver import LOGIN_SHOT, SUCCESS_SHOT
from tests.support.desktop import Desktop, desktop, wait_for  # noqa: F401 - fixture
from tests.support.procs import IDP_URL, ISSUER, ServerProcess, demo_server_cmd
from tests.support.realparts import require
from tests.support.resource_server import call_tool
from tests.support.secret_service import SecretServiceDaemons, SecretServiceHandle

pytestmark = pytest.mark.integration

CLIENT_ID = "demo-broker"
PATIENCE = 120.0  # seconds: generous, the machine may be busy; nothing here is timed


@dataclass(frozen=True)
class Stack:
    base: str
    issuer: str
    mcp_url: str
    password: str = ""

    def metadata(self) -> dict[str, Any]:
        doc: dict[str, Any] = httpx2.get(f"{self.issuer}/.well-known/openid-configuration").json()
        return doc


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    """``mcp-demo-server stack`` as a real process, with the login form (no auto-login)."""
    password = secrets.token_urlsafe(18)
    args = demo_server_cmd("stack", "--idp-port=0", "--port=0", f"--demo-password={password}")
    with ServerProcess(args, tmp_path / "stack.log") as proc:
        base, issuer = proc.announced(IDP_URL), proc.announced(ISSUER)
        assert base and issuer, proc.log()
        yield Stack(base, issuer, proc.url, password)


def broker_environ(
    tmp_path: Path, daemons: SecretServiceDaemons, stack: Stack, shots: Path
) -> dict[str, str]:
    """A user's session: its own HOME, the private keyring and bus, Chromium as the browser."""
    home = tmp_path / "home"
    env = daemons.environ()
    env.update(
        HOME=str(home),
        XDG_DATA_HOME=str(home / ".local/share"),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_CACHE_HOME=str(home / ".cache"),
        MCP_BROKER_HOME=str(tmp_path / "broker-home"),
        PYTHON_KEYRING_BACKEND="keyring.backends.SecretService.Keyring",
        PYTHONPATH=str(ROOT),
        BROWSER=browser_command(tmp_path, CHROMIUM_DRIVER),
        E2E_DEMO_PASSWORD=stack.password,
        E2E_SCREENSHOT_DIR=str(shots),
    )
    for name in ("MCP_BROKER_CONFIG", "DISPLAY", "WAYLAND_DISPLAY", "E2E_BROWSER"):
        env.pop(name, None)
    return env


class _Snapshot:
    """What the Secret Service held at one moment, as a read-only keyring for ChunkedEntries."""

    def __init__(self, entries: Mapping[str, str]) -> None:
        self.entries = entries

    def get_password(self, service: str, username: str) -> str | None:
        return self.entries.get(username) if service == SERVICE else None

    def set_password(self, service: str, username: str, password: str) -> None:
        raise AssertionError("read-only")

    def delete_password(self, service: str, username: str) -> None:
        raise AssertionError("read-only")


def stored_token_sets(keyring: SecretServiceHandle, stack: Stack) -> dict[str, dict[str, Any]]:
    """Token sets for this stack's issuer that are really in the Secret Service, by entry name
    (read from the daemon over D-Bus and reassembled from their chunks)."""
    entries = keyring.entries(SERVICE)
    chunked = ChunkedEntries(_Snapshot(entries), SERVICE)
    found = {}
    for name in entries:
        if name.startswith("token:") and "/" not in name:  # a manifest, not a chunk
            text = chunked.read(name)
            doc = json.loads(text) if text else {}
            if doc.get("issuer") == stack.issuer:
                found[name] = doc
    return found


def api_token(env: Mapping[str, str], resource: str) -> httpx2.Response:
    """``POST /v1/token`` as a local client does: the URL and secret from ``endpoint.json``."""
    doc = json.loads(broker_paths(env).endpoint_file.read_text())
    with httpx2.Client(trust_env=False, timeout=30) as http:
        return http.post(
            f"{doc['url']}/v1/token",
            json={"resource": resource},
            headers={**API_HEADER, "Authorization": f"Bearer {doc['secret']}"},
        )


def refresh_at_idp(stack: Stack, refresh_token: str) -> httpx2.Response:
    """A refresh_token grant straight at the authorization server, as the broker would send it."""
    form = {"grant_type": "refresh_token", "client_id": CLIENT_ID, "refresh_token": refresh_token}
    return httpx2.post(stack.metadata()["token_endpoint"], data=form, timeout=30)


def files_holding(values: Mapping[str, str], roots: list[Path]) -> list[str]:
    """Every regular file under ``roots`` that holds one of ``values`` in plain text."""
    hits = []
    for root in roots:
        for folder, _, names in os.walk(root):
            for name in names:
                path = Path(folder, name)
                if not path.is_file() or path.is_symlink():
                    continue  # sockets, fifos
                data = path.read_bytes()
                hits += [f"{what} in {path}" for what, v in values.items() if v.encode() in data]
    return hits


def whoami_through_connect(env: dict[str, str], url: str, errlog: Path) -> dict[str, Any]:
    """``whoami`` via ``mcp-broker connect URL``, launched by the mcp SDK's stdio client."""

    async def session() -> dict[str, Any]:
        async with bridged_client(BrokerCli(env), url, errlog) as client:
            return await bridged_whoami(client)

    return anyio.run(session)


def notified(screen: Desktop, summary: str) -> list[tuple[str, str]]:
    return [n for n in screen.notifications() if n[0] == summary]


def test_sign_in_use_and_sign_out_from_the_tray_with_every_real_part(
    desktop: Desktop,  # noqa: F811 - the fixture
    secret_service: SecretServiceHandle,
    secret_service_daemons: SecretServiceDaemons,
    stack: Stack,
    tmp_path: Path,
    artifacts_dir: Path,
) -> None:
    require_chromium()
    require(
        importlib.util.find_spec("playwright") is not None, "playwright", "pip install playwright"
    )
    for old in (LOGIN_SHOT, SUCCESS_SHOT):
        (artifacts_dir / old).unlink(missing_ok=True)
    env = desktop.environ(broker_environ(tmp_path, secret_service_daemons, stack, artifacts_dir))
    BrokerCli(env).ok("add", stack.mcp_url, "--client-id", CLIENT_ID, "--provider", "cognito")
    assert stored_token_sets(secret_service, stack) == {}
    # Once signed in, the server is named by its PRM resource_name (before: host and path).
    shown_name = "mcp-oauth-broker demo server"
    broker = BrokerRun(env, tmp_path / "broker.log")
    try:
        # Signed out: the icon docks and says so, in words and in colour.
        icon = wait_for("the icon docked", lambda: icon_with(desktop, "sign-in needed"), PATIENCE)
        assert icon.name == "MCP OAuth Broker: sign-in needed (1 of 1)"
        assert dominant_state(desktop.grab(icon)) is Overall.NEEDS_SIGN_IN
        desktop.screenshot(artifacts_dir / "e2e-tray-signed-out.png")

        # Sign in from the real menu; the broker opens Chromium, which fills in the login form.
        open_menu(desktop, icon)
        desktop.screenshot(artifacts_dir / "e2e-tray-menu.png")
        # "Open mcp-oauth-broker…" → the server → its submenu → "Sign in"
        desktop.key("Down", "Down", "Right", "Return")
        icon = wait_for("the signed-in title", lambda: icon_with(desktop, "signed in"), PATIENCE)
        assert icon.name == "MCP OAuth Broker: signed in", broker.log()
        wait_for(
            "the signed-in colour", lambda: dominant_state(desktop.grab(icon)) is Overall.SIGNED_IN
        )
        desktop.screenshot(artifacts_dir / "e2e-tray-signed-in.png")
        assert (artifacts_dir / LOGIN_SHOT).is_file() and (artifacts_dir / SUCCESS_SHOT).is_file()
        wait_for("the signed-in notification", lambda: notified(desktop, "Signed in"))

        # The tokens are in the Secret Service...
        ((entry, stored),) = stored_token_sets(secret_service, stack).items()
        assert stored["client_id"] == CLIENT_ID and stored["refresh_token"]
        access, refresh = stored["access_token"], stored["refresh_token"]

        # ...and the token API hands out that access token, which the demo server accepts.
        answer = api_token(env, stack.mcp_url)
        assert answer.status_code == 200, answer.text
        assert answer.headers["Cache-Control"] == "no-store"
        body = answer.json()
        assert body["access_token"] == access and body["token_type"] == "Bearer"
        assert not {"refresh_token", "id_token"} & set(body)
        me = call_tool(stack.mcp_url, body["access_token"], "whoami")
        assert not me.is_error, me
        assert me.structured_content["username"] == "demo"

        bridge_log = tmp_path / "bridge.log"
        bridged = whoami_through_connect(env, stack.mcp_url, bridge_log)
        assert bridged["username"] == "demo"
        assert "using the running broker's token API" in bridge_log.read_text()

        secrets_ = {"access token": access, "refresh token": refresh}
        roots = [tmp_path, secret_service_daemons.root]  # both HOMEs, MCP_BROKER_HOME, logs
        assert files_holding(secrets_, roots) == []
        # The refresh token works until sign-out (so its refusal below is the revocation).
        assert refresh_at_idp(stack, refresh).status_code == 200

        # Sign out from the menu: "Sign out" is the second entry of the server's submenu.
        open_menu(desktop, icon)
        desktop.key("Down", "Down", "Right", "Down", "Return")
        icon = wait_for("signed out", lambda: icon_with(desktop, "sign-in needed"), PATIENCE)
        signed_out = wait_for("the sign-out notification", lambda: notified(desktop, "Signed out"))
        assert signed_out == [("Signed out", f"Signed out of {shown_name}.")]  # no problem noted
        assert not [name for name in secret_service.entries(SERVICE) if name.startswith(entry)]

        assert notified(desktop, "Sign-in needed") == []
        refused = refresh_at_idp(stack, refresh)
        assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
        after = api_token(env, stack.mcp_url)
        assert after.status_code == 409, after.text
        assert after.json()["error"] == "interaction_required"
        asked = wait_for("the sign-in request", lambda: notified(desktop, "Sign-in needed"))
        assert shown_name in asked[0][1]

        # Quit from the menu: the broker exits cleanly, leaving nothing behind.
        open_menu(desktop, icon)
        desktop.key("Up", "Return")  # Quit is the last entry
        assert broker.wait(PATIENCE) == 0, broker.log()
        assert session_processes(broker.proc.pid) == []
        assert files_holding(secrets_, roots) == []
        assert "Traceback" not in broker.log()
    finally:
        broker.kill()
