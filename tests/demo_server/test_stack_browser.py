"""``mcp-demo-server stack`` as a real process: sign in through the real /login form in Chromium,
exchange the code with PKCE, and use the access token on the demo MCP server through the mcp SDK
client; a refreshed token works there too, and a revoked refresh token is refused."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx2
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.support.browser import chromium_page
from tests.support.idp_flow import CALLBACK, DEMO_CLIENT, authorize_params, pkce_pair, single
from tests.support.procs import IDP_URL, ISSUER, ServerProcess, demo_server_cmd
from tests.support.resource_server import call_tool

pytestmark = pytest.mark.integration


@pytest.fixture
def stack_process(artifacts_dir: Path) -> Iterator[tuple[ServerProcess, str, str, str]]:
    """The stack on free ports, with a random demo password that it prints."""
    args = demo_server_cmd("stack", "--idp-port=0", "--port=0", "--refresh-token-rotation")
    with ServerProcess(args, artifacts_dir / "stack-browser.log") as proc:
        base, issuer = proc.announced(IDP_URL), proc.announced(ISSUER)
        assert base and issuer, proc.log()
        yield proc, base, issuer, proc.url
    assert proc.proc is not None and proc.proc.returncode == 0, proc.log()


def printed_password(proc: ServerProcess) -> str:
    """The password the idp prints just after it starts serving (so it may lag readiness)."""
    pattern = re.compile(r"^\s*password:\s+(\S+)\s*$", re.MULTILINE)
    deadline = time.monotonic() + 30
    while (match := pattern.search(proc.log())) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert match, proc.log()
    return match.group(1)


def sign_in_with_chromium(authorize_url: str, password: str, artifacts_dir: Path) -> str:
    """Fill in the real /login form; catch the redirect to the loopback callback."""
    caught: list[str] = []
    with chromium_page() as page:

        def fulfil(route: Any) -> None:
            caught.append(route.request.url)
            route.fulfill(status=200, content_type="text/plain", body="signed in")

        page.route(re.compile(r"^http://127\.0\.0\.1:53682/callback\b.*"), fulfil)
        try:
            page.goto(authorize_url)
            assert "/login?" in page.url
            page.fill("#username", "demo")
            page.fill("#password", password)
            page.click("#signin")
            page.wait_for_url(re.compile(r"^http://127\.0\.0\.1:53682/callback"))
        except Exception:
            page.screenshot(path=str(artifacts_dir / "idp-browser-failure.png"))
            raise
    assert len(caught) == 1
    return caught[0]


def whoami(mcp_url: str, access_token: str) -> dict[str, Any]:
    result = call_tool(mcp_url, access_token, "whoami")
    assert not result.is_error, result
    who = result.structured_content
    assert isinstance(who, dict), result
    return who


def test_browser_sign_in_then_whoami_refresh_and_revoke(
    stack_process: tuple[ServerProcess, str, str, str], artifacts_dir: Path
) -> None:
    proc, base, issuer, mcp_url = stack_process
    doc = httpx2.get(f"{issuer}/.well-known/openid-configuration").json()
    verifier, challenge = pkce_pair()
    params = authorize_params(challenge, resource=mcp_url, scope=f"openid {mcp_url}/tools")
    callback = sign_in_with_chromium(
        f"{doc['authorization_endpoint']}?{urlencode(params)}",
        printed_password(proc),
        artifacts_dir,
    )
    assert single(callback, "state") == params["state"]
    with httpx2.Client(base_url=base) as http:
        tokens = http.post(
            "/oauth2/token",
            data={
                "grant_type": "authorization_code",
                "client_id": DEMO_CLIENT,
                "code": single(callback, "code"),
                "redirect_uri": CALLBACK,
                "code_verifier": verifier,
                "resource": mcp_url,
            },
        )
        assert tokens.status_code == 200, tokens.text
        body = tokens.json()
        keyset = KeySet.import_key_set(http.get(doc["jwks_uri"]).json())
        claims = jwt.decode(body["access_token"], keyset, algorithms=["RS256"]).claims
        assert claims["iss"] == issuer and claims["aud"] == mcp_url
        assert claims["scope"] == f"openid {mcp_url}/tools"
        assert whoami(mcp_url, body["access_token"])["username"] == "demo"

        refresh = {"grant_type": "refresh_token", "client_id": DEMO_CLIENT}
        refreshed = http.post(
            "/oauth2/token", data={**refresh, "refresh_token": body["refresh_token"]}
        )
        assert refreshed.status_code == 200, refreshed.text
        rotated = refreshed.json()["refresh_token"]
        assert rotated != body["refresh_token"]
        new_access = refreshed.json()["access_token"]
        assert new_access != body["access_token"]
        assert whoami(mcp_url, new_access)["username"] == "demo"

        revoked = http.post("/oauth2/revoke", data={"token": rotated, "client_id": DEMO_CLIENT})
        assert revoked.status_code == 200 and revoked.content == b""
        refused = http.post("/oauth2/token", data={**refresh, "refresh_token": rotated})
        assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
