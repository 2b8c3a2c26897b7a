"""A real browser completes the sign-in: ``webbrowser.open`` honours ``$BROWSER``.

The browser is Debian's Chromium, headless, pointed at a small authorization endpoint on
127.0.0.1 that approves at once; it follows the redirect to the broker's loopback listener.
"""

from __future__ import annotations

import http.server
import os
import shutil
import signal
import threading
import time
import webbrowser
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from broker.oauth.registration import ClientCredentials
from broker.signin.login import ClientRegistry, SignIn
from tests.broker.signin.test_login import CANARIES, FOUND, SERVER, FakeAS
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS
from tests.support.realparts import require


class Approve(http.server.BaseHTTPRequestHandler):
    """``GET /authorize``: redirect straight back with a code, like a signed-in user's AS."""

    fake: FakeAS

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        params = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
        self.fake.challenge = params["code_challenge"]
        answer = {"code": CANARIES["code"], "state": params["state"], "iss": SERVER.issuer}
        self.send_response(302)
        self.send_header("Location", f"{params['redirect_uri']}?{urlencode(answer)}")
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def authorize_url() -> Iterator[tuple[str, FakeAS]]:
    fake = FakeAS()
    handler = type("Handler", (Approve,), {"fake": fake})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/authorize", fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def browser_script(tmp_path: Path) -> tuple[str, Path]:
    """A ``$BROWSER`` command that records its pid, so the test can wait for it to exit."""
    pid_file = tmp_path / "browser.pid"
    script = tmp_path / "browser.sh"
    args = " ".join([*CHROMIUM_ARGS, "--headless", f"--user-data-dir={tmp_path / 'profile'}"])
    script.write_text(
        f'#!/bin/sh\necho $$ > "{pid_file}"\n'
        f'exec timeout 60 {CHROMIUM} {args} --dump-dom "$1" > /dev/null 2>&1\n'
    )
    script.chmod(0o700)
    return f"{script} %s", pid_file


def wait_gone(pid_file: Path) -> None:
    pid = int(pid_file.read_text())
    for _ in range(300):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)


@pytest.mark.integration
def test_headless_chromium_from_browser_env_completes_the_sign_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, authorize_url: tuple[str, FakeAS]
) -> None:
    require(shutil.which(CHROMIUM) is not None, "Chromium", "apt-get install chromium")
    url, fake = authorize_url
    command, pid_file = browser_script(tmp_path)
    monkeypatch.setenv("BROWSER", command)
    # webbrowser reads $BROWSER once per process; make it read ours.
    monkeypatch.setattr(webbrowser, "_tryorder", None)
    monkeypatch.setattr(webbrowser, "_browsers", {})
    found = replace(FOUND, auth_server=replace(SERVER, authorization_endpoint=url))
    sign_in = SignIn(fake.send, ClientRegistry([ClientCredentials("pre", SERVER.issuer)]))
    try:
        tokens = sign_in.sign_in(found, "files:read")
    finally:
        if pid_file.exists():
            wait_gone(pid_file)
    assert tokens.access_token == CANARIES["access"]
    assert len(fake.token_requests()) == 1
