"""The control page end to end (issue 16): everything from the browser, no terminal after
``mcp-broker open``.

Real processes: ``mcp-demo-server stack`` (the local authorization server with its login form,
and the demo MCP server) and ``mcp-broker run`` (headless: its token API, refresher and the
control page), with a private Secret Service and a temporary HOME holding a Cursor config
folder. ``mcp-broker open`` runs as a user runs it, with a ``BROWSER`` that records what it is
given; the test's own headless Debian Chromium (playwright) then opens that, and from there
does only what a user does on the page: add the demo server by URL (the discovery preview names
the Cognito profile), sign in (the broker opens its ``BROWSER``, a second Chromium that fills in
the login form), create a named client and read its secret once, allow that client's consent
request, find the grant in the audit log, connect Cursor, change the server's scopes (the
sign-in stays), sign out. A screenshot of each page is kept in ``test-artifacts/``
(``control-page-*.png``).
"""

from __future__ import annotations

import importlib.util
import json
import re
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2
import pytest

from broker.api.endpoint import API_HEADER
from broker.paths import broker_paths
from tests.broker.desktop.brokerrun import BrokerRun, session_processes
from tests.e2e.conftest import BrokerCli, require_chromium
from tests.e2e.test_every_real_part import (  # noqa: F401 - the stack fixture
    CLIENT_ID,
    Stack,
    broker_environ,
    files_holding,
    stack,
)
from tests.support.browser import chromium_page
from tests.support.realparts import require
from tests.support.secret_service import SecretServiceDaemons, SecretServiceHandle

pytestmark = pytest.mark.integration

PATIENCE = 120.0  # seconds: generous, the machine may be busy; nothing here is timed
SHOT = "control-page-{}.png"


def recording_browser(tmp_path: Path) -> tuple[str, Path]:
    """A ``BROWSER`` that only writes down what it was asked to open."""
    seen = tmp_path / "opened.txt"
    script = tmp_path / "record-browser"
    script.write_text(f'#!/bin/sh\nprintf "%s\\n" "$1" >> "{seen}"\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script), seen


def wait_until(what: str, check: Callable[[], Any], timeout: float = PATIENCE) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)


def api_call(env: dict[str, str], secret: str | None, resource: str) -> httpx2.Response:
    doc = json.loads(broker_paths(env).endpoint_file.read_text())
    with httpx2.Client(trust_env=False, timeout=30) as http:
        return http.post(
            f"{doc['url']}/v1/token",
            json={"resource": resource},
            headers={**API_HEADER, "Authorization": f"Bearer {secret or doc['secret']}"},
        )


def text_until(page: Any, selector: str, wanted: str) -> str:
    """Reload the page until ``selector``'s text holds ``wanted`` (the broker works in the
    background: a sign-in, a consent answer)."""

    def shown() -> str | None:
        page.reload()
        text = " ".join(page.locator(selector).all_inner_texts())
        return text if wanted in text else None

    found: str = wait_until(f"{wanted!r} in {selector}", shown)
    return found


def test_everything_from_the_control_page_without_a_terminal(
    secret_service: SecretServiceHandle,
    secret_service_daemons: SecretServiceDaemons,
    stack: Stack,  # noqa: F811 - the fixture
    tmp_path: Path,
    artifacts_dir: Path,
) -> None:
    require_chromium()
    require(
        importlib.util.find_spec("playwright") is not None, "playwright", "pip install playwright"
    )
    for old in artifacts_dir.glob(SHOT.format("*")):
        old.unlink()
    env = broker_environ(tmp_path, secret_service_daemons, stack, tmp_path)
    home = Path(env["HOME"])
    (home / ".cursor").mkdir(parents=True)  # Cursor is "installed" for this user
    recorder, opened = recording_browser(tmp_path)
    broker = BrokerRun(env, tmp_path / "broker.log", "--headless")
    pages: dict[str, str] = {}
    try:
        wait_until("the token API", lambda: broker_paths(env).endpoint_file.exists())
        done = BrokerCli({**env, "BROWSER": recorder}).run("open")
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "Opened the control page in the browser."
        (launch_file,) = opened.read_text().split()
        assert launch_file.startswith("file://") and "/ui/launch" not in launch_file

        with chromium_page() as page:

            def shoot(name: str) -> None:
                pages[name] = page.content()
                page.screenshot(path=str(artifacts_dir / SHOT.format(name)), full_page=True)

            # Opened from the launch file: the session starts on the Servers page.
            page.goto(launch_file)
            page.wait_for_url(re.compile(r"/ui/s/[^/]+/servers$"), timeout=PATIENCE * 1000)
            assert "No servers configured yet." in page.inner_text("main")
            shoot("empty")

            # Add the demo server by URL: the preview first, nothing saved yet.
            page.get_by_role("link", name="Add a server").click()
            page.get_by_label("MCP server URL", exact=True).fill(stack.mcp_url)
            page.get_by_role("button", name="Look it up").click()
            # "auto" keeps to the spec: the local Cognito look-alike does not advertise PKCE
            # and is not on a Cognito host, so it is refused, with what to do about it.
            refused = page.inner_text("main")
            assert "does not advertise PKCE" in refused and "choose the Cognito profile" in refused
            assert page.locator("dd.profile").count() == 0
            page.get_by_label("Authorization server profile").select_option("cognito")
            page.get_by_role("button", name="Look it up").click()
            assert page.locator("dd.profile").count() == 1, page.inner_text("main")
            profile = page.inner_text("dd.profile")
            assert profile.startswith("cognito") and "Amazon Cognito" in profile
            assert stack.issuer in page.inner_text("dd.issuer")
            assert page.inner_text("dd.client-id-needed").startswith("needed")
            assert not broker_paths(env).config_file.exists() or stack.mcp_url not in (
                broker_paths(env).config_file.read_text()
            )
            shoot("add-preview")
            page.get_by_label("Client ID").fill(CLIENT_ID)
            page.get_by_role("button", name="Add this server").click()
            page.wait_for_url(re.compile(r"/ui/s/[^/]+/servers$"))
            assert f"Added {stack.mcp_url}" in page.inner_text("main")

            # Sign in: the broker opens its own browser, where the login form is filled in.
            page.get_by_role("button", name="Sign in", exact=True).click()
            assert "finish in the browser" in page.inner_text("main")
            text_until(page, "dd.user", "demo")
            assert "mcp-oauth-broker demo server" in page.inner_text("h2")
            expiry = page.inner_text("dd.expiry")
            assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", expiry), expiry
            assert page.inner_text("dd.state").startswith("signed in as demo")
            shoot("signed-in")

            # A named client: its secret is shown once, on the page that created it.
            page.get_by_role("link", name="Clients").click()
            page.get_by_role("textbox", name="Name (letters").fill("e2e-agent")
            page.get_by_role("button", name="Create client").click()
            secret = page.get_by_label("Secret of e2e-agent").input_value()
            assert secret.startswith("mcpb_")
            shoot("client-secret")
            page.get_by_role("link", name="Clients").click()
            assert secret not in page.content()

            # It asks for a token: consent needed; the page asks; allowed; it gets one.
            asked = api_call(env, secret, stack.mcp_url)
            assert asked.status_code == 403 and asked.json()["error"] == "consent_required"
            text_until(page, "form.consent", "e2e-agent")
            shoot("consent")
            page.get_by_role("button", name="Always allow").click()
            granted = wait_until(
                "the token after consent",
                lambda: (r := api_call(env, secret, stack.mcp_url)).status_code == 200 and r,
            )
            access = granted.json()["access_token"]
            page.get_by_label("Client", exact=True).fill("e2e-agent")
            page.get_by_label("Outcome").select_option("granted")
            page.get_by_role("button", name="Filter").click()
            log = page.inner_text("table.audit")
            assert "e2e-agent" in log and "granted" in log and stack.mcp_url in log
            assert "consent_required" not in log  # the filter applies
            shoot("audit")

            # Connect Cursor (in the temporary HOME): its file, a preview, one button.
            page.get_by_role("link", name="Connect an MCP client").click()
            cursor = page.locator("section.mcp-client", has_text="Cursor")
            cursor_file = home / ".cursor" / "mcp.json"
            assert str(cursor_file) in cursor.inner_text()
            cursor.locator("summary").click()
            assert "connect" in cursor.locator("pre.entry").inner_text()
            shoot("connect")
            cursor.get_by_role("button", name="Connect Cursor").click()
            assert "Cursor now reaches 1 server through the broker" in page.inner_text("main")
            (entry,) = json.loads(cursor_file.read_text())["mcpServers"].values()
            assert "connect" in entry["args"] and stack.mcp_url in entry["args"]

            page.get_by_role("link", name="Settings").click()
            assert str(broker_paths(env).config_file) in page.inner_text("main")
            shoot("settings")

            # Change a setting the sign-in survives: the scopes asked for next time.
            page.get_by_role("link", name="Servers").click()
            page.get_by_role("button", name="Settings…").click()
            assert page.get_by_label("Client ID").input_value() == CLIENT_ID
            page.get_by_label("Scopes to ask for").fill("openid mcp/read")
            shoot("server-settings")
            page.get_by_role("button", name="Save").click()
            page.wait_for_url(re.compile(r"/ui/s/[^/]+/servers$"))
            assert "Saved" in page.inner_text("main")
            assert page.inner_text("dd.state").startswith("signed in as demo")
            assert 'scopes = ["openid", "mcp/read"]' in broker_paths(env).config_file.read_text()

            # Sign out.
            page.get_by_role("button", name="Sign out").click()
            text_until(page, "dd.state", "sign-in needed")
            assert page.inner_text("dd.user") == "—"
            shoot("signed-out")

        # No page ever held a token of the server, nor the token API's secret.
        api_secret = json.loads(broker_paths(env).endpoint_file.read_text())["secret"]
        for name, html in pages.items():
            assert access not in html, name
            assert api_secret not in html, name
            if name != "client-secret":
                assert secret not in html, name
        assert files_holding({"access token": access}, [tmp_path]) == []
        assert broker.stop() == 0, broker.log()
        assert session_processes(broker.proc.pid) == []
        assert "Traceback" not in broker.log()
    finally:
        broker.kill()
