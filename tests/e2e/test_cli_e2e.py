"""``mcp-broker`` end to end: real subprocesses against the local authorization server and the
demo MCP server, tokens in a real (private) Secret Service, sign-in through a real browser."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from broker.paths import HOME_ENV as HOME
from broker.store import KeyringTokenStore
from broker.tokens.tokenset import TokenKey, TokenSet
from tests.e2e.conftest import BrokerCli, DemoStack, demo_stack, require_chromium
from tests.support.canaries import files_under, leaks
from tests.support.secret_service import SecretServiceHandle

pytestmark = pytest.mark.integration


def claims(jwt: str) -> dict[str, Any]:
    """The payload of a JWT, unverified (the test only reads what the server was handed)."""
    payload = jwt.split(".")[1]
    decoded: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return decoded


def sign_in(cli: BrokerCli, stack: DemoStack) -> None:
    cli.ok("add", stack.mcp_url, "--client-id", "demo-broker", "--provider", "cognito")
    cli.ok("login", stack.mcp_url)


def stored_tokens(secret_service: SecretServiceHandle, stack: DemoStack) -> TokenSet:
    """What the broker stored for the demo server, read from the daemon like the broker does."""
    store = KeyringTokenStore(secret_service.backend, timeout=30)
    try:
        tokens = store.get(TokenKey(stack.issuer, "demo-broker", stack.mcp_url))
    finally:
        store.close()
    assert tokens is not None and tokens.refresh_token
    return tokens


def assert_no_token_shown_or_kept(cli: BrokerCli, tokens: TokenSet) -> None:
    """Canaries: the access token reaches a terminal only as the output of ``token`` and
    ``headers``; the refresh token never; neither is in any file under the broker's home."""
    secrets = [tokens.access_token, tokens.refresh_token or ""]
    places = {f"files: {name}": text for name, text in files_under(Path(cli.env[HOME])).items()}
    for number, done in enumerate(cli.runs):
        command = done.args[3 : 3 + 2]  # after "python -m broker.cli"
        places[f"run {number} {command} stderr"] = done.stderr
        shows_a_token = {"token", "headers"} & set(command)
        places[f"run {number} {command} stdout"] = "" if shows_a_token else done.stdout
        if shows_a_token:
            assert leaks(secrets[1:], {"stdout": done.stdout}) == [], command
    assert leaks(secrets, places) == []


def test_login_in_a_browser_then_call_whoami_names_the_demo_user(
    broker_cli: BrokerCli, secret_service: SecretServiceHandle
) -> None:
    require_chromium()
    broker_cli.env["E2E_BROWSER"] = "chromium"
    with demo_stack(access_token_ttl=3600, rotation=False) as stack:
        sign_in(broker_cli, stack)
        stored = stored_tokens(secret_service, stack)

        result = broker_cli.ok("call", stack.mcp_url, "whoami")
        token = broker_cli.ok("token", stack.mcp_url).strip()
        status = json.loads(broker_cli.ok("status", "--json"))

        assert '"username": "demo"' in result or "'username': 'demo'" in result, result
        assert token == stored.access_token
        assert claims(token)["username"] == "demo"
        assert claims(token)["iss"] == stack.issuer
        (server,) = status["servers"]
        assert server["state"] == "valid" and server["url"] == stack.mcp_url
        assert server["user"] == "demo"  # from the Cognito access token's username claim
        chatty = broker_cli.run("-vv", "call", stack.mcp_url, "whoami")
        assert chatty.returncode == 0 and "DEBUG" in chatty.stderr
        assert_no_token_shown_or_kept(broker_cli, stored)

        logout = broker_cli.ok("logout", stack.mcp_url)
        assert "revoked" in logout
        after = broker_cli.run("token", stack.mcp_url)
        assert after.returncode == 4, after.stderr
        assert after.stdout == ""
        assert json.loads(broker_cli.ok("status", "--json"))["servers"][0]["state"] == "signed_out"
        assert_no_token_shown_or_kept(broker_cli, stored)


def test_expired_sign_in_says_so_with_exit_code_4(broker_cli: BrokerCli) -> None:
    with demo_stack(access_token_ttl=3600, rotation=False) as stack:
        broker_cli.ok("add", stack.mcp_url, "--client-id", "demo-broker", "--provider", "cognito")

        token = broker_cli.run("token", stack.mcp_url)
        call = broker_cli.run("call", stack.mcp_url, "whoami")
        unknown = broker_cli.run("token", "http://127.0.0.1:1/nothing")

        assert (token.returncode, call.returncode, unknown.returncode) == (4, 4, 3)
        assert "mcp-broker login" in token.stderr and token.stdout == ""
        assert "mcp-broker add" in unknown.stderr


# The helper as a client runs it, reporting afterwards (on stderr) the modules it imported.
HELPER_RUNNER = (
    "import json, sys; from broker.cli import main; code = main(sys.argv[1:]); "
    "print(json.dumps(sorted(sys.modules)), file=sys.stderr); sys.exit(code)"
)
# What a fresh token read from the keyring needs none of: the keyring package and its
# Secret Service library, an OAuth or HTTP library, the mcp SDK.
NOT_FOR_A_FRESH_READ = ("keyring", "secretstorage", "authlib", "httpx2", "mcp", "http.client")


@pytest.mark.parametrize("configured", [False, True], ids=["nothing-configured", "keyring-env"])
def test_helpers_with_no_broker_read_the_secret_service_without_keyring(
    broker_cli: BrokerCli, secret_service: SecretServiceHandle, configured: bool
) -> None:
    """No broker running, a fresh token in the keyring: ``token`` and ``headers`` print it,
    having read it from the Secret Service without loading keyring, an OAuth or HTTP library,
    both with nothing configured (as a user's desktop is) and with keyring configured to the
    Secret Service."""
    with demo_stack(access_token_ttl=3600, rotation=False) as stack:
        sign_in(broker_cli, stack)
        stored = stored_tokens(secret_service, stack)
        env = dict(broker_cli.env)
        if not configured:
            del env["PYTHON_KEYRING_BACKEND"]
        outputs = []
        for command in ("token", "headers"):
            done = subprocess.run(
                [sys.executable, "-c", HELPER_RUNNER, command, stack.mcp_url],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            *errors, modules = done.stderr.splitlines()
            assert (done.returncode, errors) == (0, []), done.stderr
            loaded = [
                m
                for m in json.loads(modules)
                if m in NOT_FOR_A_FRESH_READ or m.split(".")[0] in NOT_FOR_A_FRESH_READ
            ]
            assert loaded == [], command
            outputs.append(done.stdout)
    assert outputs[0] == stored.access_token + "\n"
    assert json.loads(outputs[1]) == {"Authorization": f"Bearer {stored.access_token}"}
