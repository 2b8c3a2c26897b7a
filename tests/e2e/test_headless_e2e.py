"""Signing in with no browser on the broker's machine, end to end (issue 12 items 2, 3):
``mcp-broker login --no-browser`` completed by pasting the address a real Chromium ended on
(the loopback callback is never delivered), and ``login --device`` approved in real Chromium
against the local authorization server's ``--device-flow`` (not Cognito behaviour)."""

from __future__ import annotations

import contextlib
import queue
import re
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest

from tests.e2e.conftest import BrokerCli, demo_stack
from tests.support.browser import chromium_page
from tests.support.secret_service import SecretServiceHandle

pytestmark = pytest.mark.integration


class Login:
    """A ``mcp-broker login`` running in a terminal: its lines, and a keyboard to paste with."""

    def __init__(self, cli: BrokerCli, *args: str) -> None:
        env = {k: v for k, v in cli.env.items() if k not in ("BROWSER", "DISPLAY")}
        self.proc = subprocess.Popen(
            cli.argv("login", *args),
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, pattern: str) -> re.Match[str]:
        while True:
            line = self.lines.get(timeout=60)
            self.seen.append(line)
            match = re.search(pattern, line)
            if match:
                return match

    def paste(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()

    def give_up(self) -> None:
        """The user ends the input (Ctrl-D): standard input closes."""
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.stdin = None

    def close(self) -> None:
        """Whatever happened, the process is gone and its pipes closed."""
        if self.proc.poll() is None:
            self.proc.kill()
        with contextlib.suppress(ValueError, subprocess.TimeoutExpired):
            self.proc.communicate(timeout=10)

    def finish(self) -> tuple[int, str]:
        out, _ = self.proc.communicate(timeout=60)
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return self.proc.returncode, out


@pytest.fixture
def terminal(broker_cli: BrokerCli) -> Iterator[Callable[..., Login]]:
    """Starts ``mcp-broker login`` runs; each is ended and its pipes closed after the test."""
    started: list[Login] = []

    def start(*args: str) -> Login:
        started.append(Login(broker_cli, *args))
        return started[-1]

    yield start
    for login in started:
        login.close()


def final_address(url: str, artifacts: Path) -> str:
    """Open the link in Chromium and return the loopback address it ends on, never letting the
    request reach the broker's listener (as on another machine).

    Playwright does not route the requests of redirects, so every request to the authorization
    server is fetched here without following redirects: a redirect to the link's
    ``redirect_uri`` is recorded and answered with the page a browser shows when nothing
    listens there; any other answer is handed to the browser unchanged."""
    callback = parse_qsl(urlsplit(url).query)
    (redirect_uri,) = [value for name, value in callback if name == "redirect_uri"]
    ended: list[str] = []

    def through(route: Any) -> None:
        response = route.fetch(max_redirects=0)
        location = response.headers.get("location", "")
        if 300 <= response.status < 400 and location.startswith(redirect_uri + "?"):
            ended.append(location)
            route.fulfill(status=502, content_type="text/plain", body="This site can't be reached")
            return
        route.fulfill(response=response)

    with chromium_page() as page:
        origin = "{0.scheme}://{0.netloc}/".format(urlsplit(url))
        page.route(lambda address: address.startswith(origin), through)
        page.route(lambda address: address.startswith(redirect_uri), lambda route: route.abort())
        page.goto(url)
        page.screenshot(path=str(artifacts / "no-browser-final-page.png"))
    assert len(ended) == 1, ended
    return ended[0]


def test_no_browser_completes_by_pasting_the_final_address(
    broker_cli: BrokerCli,
    secret_service: SecretServiceHandle,
    artifacts_dir: Path,
    terminal: Callable[..., Login],
) -> None:
    with demo_stack(access_token_ttl=3600, rotation=False) as stack:
        broker_cli.ok("add", stack.mcp_url, "--client-id", "demo-broker", "--provider", "cognito")
        login = terminal(stack.mcp_url, "--no-browser")
        link = login.wait_for(r"^  (http\S+)$").group(1)
        address = final_address(link, artifacts_dir)
        params = dict(parse_qsl(urlsplit(address).query))
        code = params["code"]

        # An address from another sign-in (another state) is refused; the user pastes again.
        other = address.split("?")[0] + "?" + urlencode({**params, "state": "another-sign-in"})
        login.paste(other)
        login.wait_for("another sign-in")
        login.paste(f'  "{address}"  ')
        returncode, out = login.finish()

        assert returncode == 0, login.seen
        assert "Signed in" in out
        assert stack.counter.counts["authorization_code"] == 1
        assert code not in "\n".join(login.seen) + out  # the code is never echoed
        status = broker_cli.ok("status")
        assert "valid" in status and "demo" in status


def test_no_browser_refuses_only_another_sign_ins_address(
    broker_cli: BrokerCli,
    secret_service: SecretServiceHandle,
    artifacts_dir: Path,
    terminal: Callable[..., Login],
) -> None:
    with demo_stack(access_token_ttl=3600, rotation=False) as stack:
        broker_cli.ok("add", stack.mcp_url, "--client-id", "demo-broker", "--provider", "cognito")
        first = terminal(stack.mcp_url, "--no-browser")
        first_link = first.wait_for(r"^  (http\S+)$").group(1)
        first_address = final_address(first_link, artifacts_dir)
        first.proc.kill()
        first.finish()

        second = terminal(stack.mcp_url, "--no-browser")
        second.wait_for(r"^  (http\S+)$")
        second.paste(first_address)
        second.wait_for("another sign-in")
        second.give_up()
        returncode, _ = second.finish()

        assert returncode == 4
        assert stack.counter.counts["authorization_code"] == 0
        assert broker_cli.run("token", stack.mcp_url).returncode == 4


def test_device_sign_in_approved_in_a_real_browser(
    broker_cli: BrokerCli,
    secret_service: SecretServiceHandle,
    artifacts_dir: Path,
    terminal: Callable[..., Login],
) -> None:
    with demo_stack(
        access_token_ttl=3600, rotation=False, device_flow=True, device_interval=1
    ) as stack:
        broker_cli.ok("add", stack.mcp_url, "--client-id", "demo-broker", "--provider", "cognito")
        login = terminal(stack.mcp_url, "--device")
        code = login.wait_for(r"enter the code:\s+(\S+)").group(1)
        complete = login.wait_for(r"^\(or open (\S+)\)$").group(1)
        with chromium_page() as page:
            page.goto(complete)
            page.wait_for_selector("#approve")
            assert page.inner_text("#user-code") == code
            page.screenshot(path=str(artifacts_dir / "device-sign-in.png"))
            page.click("#approve")
            page.wait_for_selector("#message")
        returncode, out = login.finish()

        assert returncode == 0, login.seen
        assert "Signed in" in out
        result = broker_cli.ok("call", stack.mcp_url, "whoami")
        assert "demo" in result
