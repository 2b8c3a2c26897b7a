"""Signing in without a browser on this machine, against the real processes over 127.0.0.1:

- the Cognito M2M client ``demo-m2m`` (secret printed at start-up) gets a token with
  ``client_credentials`` and the demo server's ``whoami`` names the machine client;
- the device flow (RFC 8628, ``--device-flow``) approved and denied in real Chromium, and each
  answer of §3.5 over real HTTP;
- ``serve --require-id-token``: an ID token for the app client works, an access token gets 401.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx2
import pytest

from tests.demo_server.test_stack_browser import printed_password, whoami
from tests.support.browser import chromium_page
from tests.support.idp_flow import CALLBACK, DEMO_CLIENT, authorize_params, pkce_pair, single
from tests.support.procs import IDP_URL, ISSUER, ServerProcess, demo_server_cmd

pytestmark = pytest.mark.integration

GRANT = "urn:ietf:params:oauth:grant-type:device_code"
M2M_LINE = re.compile(r"^  m2m client: demo-m2m  secret: (\S+)$", re.MULTILINE)


class Stack:
    def __init__(self, proc: ServerProcess) -> None:
        self.proc = proc
        base, issuer = proc.announced(IDP_URL), proc.announced(ISSUER)
        assert base and issuer, proc.log()
        self.base, self.issuer, self.mcp_url = base, issuer, proc.url
        self.metadata = httpx2.get(f"{issuer}/.well-known/openid-configuration").json()

    def printed(self, pattern: re.Pattern[str]) -> str:
        deadline = time.monotonic() + 30
        while (match := pattern.search(self.proc.log())) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert match, self.proc.log()
        return match.group(1)

    def poll(self, device_code: str) -> httpx2.Response:
        data = {"grant_type": GRANT, "device_code": device_code, "client_id": DEMO_CLIENT}
        return httpx2.post(self.metadata["token_endpoint"], data=data)


@pytest.fixture
def stack(artifacts_dir: Path) -> Iterator[Stack]:
    args = demo_server_cmd(
        "stack", "--idp-port=0", "--port=0", "--device-flow", "--device-interval=1"
    )
    with ServerProcess(args, artifacts_dir / "stack-machines.log") as proc:
        yield Stack(proc)
    assert "Traceback" not in proc.log()


def test_m2m_secret_is_printed_and_whoami_names_the_machine_client(stack: Stack) -> None:
    secret = stack.printed(M2M_LINE)

    response = httpx2.post(
        stack.metadata["token_endpoint"],
        data={"grant_type": "client_credentials", "resource": stack.mcp_url},
        auth=("demo-m2m", secret),  # client_secret_basic
    )

    assert response.status_code == 200, response.text
    assert "refresh_token" not in response.json() and "id_token" not in response.json()
    who = whoami(stack.mcp_url, response.json()["access_token"])
    assert who["client_id"] == "demo-m2m" and who["username"] is None
    assert who["principal"] == "machine client demo-m2m"
    assert who["token_use"] == "access"


def test_m2m_secret_is_random_per_start_unless_given(tmp_path: Path) -> None:
    secrets = []
    for run, extra in enumerate([[], [], ["--m2m-secret=given-secret-value"]]):
        args = demo_server_cmd("idp", "--port=0", *extra)
        with ServerProcess(args, tmp_path / f"idp-{run}.log", announce=IDP_URL) as proc:
            stack_like = Stack.__new__(Stack)
            stack_like.proc = proc
            secrets.append(stack_like.printed(M2M_LINE))

    assert secrets[0] != secrets[1] and secrets[2] == "given-secret-value"


def test_m2m_client_may_not_sign_in_a_person(stack: Stack) -> None:
    secret = stack.printed(M2M_LINE)

    refused = httpx2.post(
        stack.metadata["token_endpoint"],
        data={"grant_type": "authorization_code", "code": "x", "redirect_uri": CALLBACK},
        auth=("demo-m2m", secret),
    )

    assert refused.status_code == 400 and refused.json()["error"] == "unauthorized_client"


def start_device_flow(stack: Stack) -> dict[str, Any]:
    endpoint = stack.metadata["device_authorization_endpoint"]
    assert endpoint == f"{stack.base}/oauth2/device_authorization"
    response = httpx2.post(
        endpoint,
        data={
            "client_id": DEMO_CLIENT,
            "scope": f"openid {stack.mcp_url}/tools",
            "resource": stack.mcp_url,
        },
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def decide_in_chromium(
    started: dict[str, Any], password: str, decision: str, artifacts_dir: Path
) -> str:
    """Open verification_uri_complete, sign in, check the code shown, click the decision."""
    with chromium_page() as page:
        try:
            page.goto(started["verification_uri_complete"])
            assert "/login?" in page.url
            page.fill("#username", "demo")
            page.fill("#password", password)
            page.click("#signin")
            page.wait_for_selector(f"#{decision}")
            assert page.inner_text("#user-code") == started["user_code"]
            assert page.inner_text("#client") == DEMO_CLIENT
            page.screenshot(path=str(artifacts_dir / f"device-flow-{decision}.png"))
            page.click(f"#{decision}")
            page.wait_for_selector("#message")
            return str(page.inner_text("#message"))
        except Exception:
            page.screenshot(path=str(artifacts_dir / "device-flow-failure.png"))
            raise


def poll_until_done(stack: Stack, started: dict[str, Any]) -> httpx2.Response:
    interval = started["interval"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        time.sleep(interval)
        answer = stack.poll(started["device_code"])
        error = answer.json().get("error")
        if error == "slow_down":
            interval += 5
        elif error != "authorization_pending":
            return answer
    raise AssertionError("the device flow never finished")


def test_device_flow_approved_in_a_real_browser(stack: Stack, artifacts_dir: Path) -> None:
    started = start_device_flow(stack)
    pending = stack.poll(started["device_code"])
    assert pending.status_code == 400 and pending.json()["error"] == "authorization_pending"

    message = decide_in_chromium(started, printed_password(stack.proc), "approve", artifacts_dir)
    answer = poll_until_done(stack, started)

    assert "go back to your device" in message
    assert answer.status_code == 200, answer.text
    who = whoami(stack.mcp_url, answer.json()["access_token"])
    assert who["username"] == "demo" and who["client_id"] == DEMO_CLIENT
    spent = stack.poll(started["device_code"])
    assert spent.status_code == 400 and spent.json()["error"] == "invalid_grant"


def test_device_flow_denied_in_a_real_browser(stack: Stack, artifacts_dir: Path) -> None:
    started = start_device_flow(stack)

    message = decide_in_chromium(started, printed_password(stack.proc), "deny", artifacts_dir)
    answer = poll_until_done(stack, started)

    assert "not given access" in message
    assert answer.status_code == 400 and answer.json()["error"] == "access_denied"
    assert "access_token" not in answer.json()


def test_polling_faster_than_the_interval_is_slow_down(stack: Stack) -> None:
    started = start_device_flow(stack)

    first = stack.poll(started["device_code"])
    second = stack.poll(started["device_code"])  # at once: well inside the 1 s interval

    assert first.json()["error"] == "authorization_pending"
    assert second.status_code == 400 and second.json()["error"] == "slow_down"


def test_an_unanswered_device_code_expires(tmp_path: Path) -> None:
    args = demo_server_cmd("idp", "--port=0", "--device-flow", "--device-code-ttl=1")
    with ServerProcess(args, tmp_path / "idp.log", announce=IDP_URL) as proc:
        started = httpx2.post(
            f"{proc.url}/oauth2/device_authorization", data={"client_id": DEMO_CLIENT}
        ).json()
        time.sleep(1.5)
        answer = httpx2.post(
            f"{proc.url}/oauth2/token",
            data={
                "grant_type": GRANT,
                "device_code": started["device_code"],
                "client_id": DEMO_CLIENT,
            },
        )

    assert answer.status_code == 400 and answer.json()["error"] == "expired_token"


def test_idp_help_says_the_device_flow_is_not_cognito() -> None:
    import subprocess

    done = subprocess.run(
        demo_server_cmd("idp", "--help"), capture_output=True, text=True, timeout=60, check=False
    )

    assert done.returncode == 0
    text = " ".join(done.stdout.split())
    assert "--device-flow" in text and "NOT Cognito behaviour" in text
    assert "--m2m-secret" in text and "demo-m2m" in text


def tokens_by_auto_login(base: str, issuer: str) -> dict[str, Any]:
    """A code flow with the dev-only auto-login: no browser needed for these tokens."""
    verifier, challenge = pkce_pair()
    params = authorize_params(challenge, scope="openid email")
    with httpx2.Client(base_url=base) as http:
        redirect = http.get("/oauth2/authorize?" + urlencode(params))
        assert redirect.status_code == 302, redirect.text
        code = single(redirect.headers["Location"], "code")
        response = http.post(
            "/oauth2/token",
            data={
                "grant_type": "authorization_code",
                "client_id": DEMO_CLIENT,
                "code": code,
                "redirect_uri": CALLBACK,
                "code_verifier": verifier,
            },
        )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_require_id_token_accepts_the_id_token_and_refuses_the_access_token(
    tmp_path: Path,
) -> None:
    idp_args = demo_server_cmd("idp", "--port=0", "--auto-login=demo")
    with ServerProcess(idp_args, tmp_path / "idp.log", announce=IDP_URL) as idp:
        issuer = idp.announced(ISSUER)
        assert issuer, idp.log()
        serve_args = demo_server_cmd(
            "serve",
            "--port=0",
            f"--issuer={issuer}",
            "--client-id=demo-broker",
            "--require-id-token",
        )
        with ServerProcess(serve_args, tmp_path / "serve.log") as server:
            tokens = tokens_by_auto_login(idp.url, issuer)

            who = whoami(server.url, tokens["id_token"])
            refused = httpx2.post(
                server.url,
                json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
                headers={
                    "Authorization": f"Bearer {tokens['access_token']}",
                    "Accept": "application/json, text/event-stream",
                },
            )

    assert who["username"] == "demo" and who["token_use"] == "id"
    assert who["client_id"] == "demo-broker"
    assert refused.status_code == 401
    challenge = refused.headers["WWW-Authenticate"]
    assert "accepts only ID tokens" in challenge and 'error="invalid_token"' in challenge
    for token in (tokens["access_token"], tokens["id_token"]):
        assert token not in server.log() and token not in idp.log()
