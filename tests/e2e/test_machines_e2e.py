"""Machine identities end to end (issue 12 item 4): ``mcp-broker add URL --provider cognito
--client-id demo-m2m --client-credentials`` with the secret on standard input, against the
local authorization server's Cognito-style M2M client and the demo MCP server, the secret in a
real (private) Secret Service; then ``call whoami`` names the machine client."""

from __future__ import annotations

import json
import secrets
import subprocess
from pathlib import Path

import pytest

from broker.paths import HOME_ENV as HOME
from tests.e2e.conftest import BrokerCli, demo_stack
from tests.support.canaries import files_under, leaks
from tests.support.secret_service import SecretServiceHandle

pytestmark = pytest.mark.integration


def add_machine(cli: BrokerCli, url: str, secret: str) -> subprocess.CompletedProcess[str]:
    args = ["add", url, "--provider", "cognito", "--client-id", "demo-m2m"]
    done = subprocess.run(
        cli.argv(*args, "--client-credentials"),
        env=cli.env,
        input=secret + "\n",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    cli.runs.append(done)
    return done


def test_client_credentials_machine_calls_whoami_and_keeps_the_secret_in_the_keyring_only(
    broker_cli: BrokerCli, secret_service: SecretServiceHandle
) -> None:
    secret = "CANARY-m2m-" + secrets.token_urlsafe(16)
    with demo_stack(access_token_ttl=3600, rotation=False, m2m_secret=secret) as stack:
        added = add_machine(broker_cli, stack.mcp_url, secret)
        assert added.returncode == 0, added.stderr
        assert stack.counter.counts["client_credentials"] == 1

        result = broker_cli.ok("call", stack.mcp_url, "whoami", "--json")
        token = broker_cli.ok("token", stack.mcp_url).strip()
        status = broker_cli.ok("status")
        (server,) = json.loads(broker_cli.ok("status", "--json"))["servers"]

        assert "machine client demo-m2m" in result, result  # whoami's principal
        assert "as machine client demo-m2m" in status, status
        assert server["machine"] is True and server["client_id"] == "demo-m2m"
        assert server["issuer"] == stack.issuer
        config = (Path(broker_cli.env[HOME]) / "config.toml").read_text()
        assert 'grant = "client_credentials"' in config

        # The canary: the secret is in the keyring, and in no file, argv or output.
        kept = secret_service.entries("mcp-oauth-broker")
        assert any(secret in value for value in kept.values())
        places = {f"file {n}": t for n, t in files_under(Path(broker_cli.env[HOME])).items()}
        for number, done in enumerate(broker_cli.runs):
            places[f"run {number} argv"] = " ".join(map(str, done.args))
            places[f"run {number} stderr"] = done.stderr
            places[f"run {number} stdout"] = done.stdout
        assert leaks([secret], places) == []
        assert leaks([token], {k: v for k, v in places.items() if "stdout" not in k}) == []


def test_a_wrong_secret_is_refused_at_add_time(broker_cli: BrokerCli) -> None:
    with demo_stack(access_token_ttl=3600, rotation=False, m2m_secret="right-secret") as stack:
        added = add_machine(broker_cli, stack.mcp_url, "CANARY-wrong-secret")
        assert added.returncode != 0
        assert "invalid_client" in added.stderr
        assert "CANARY-wrong-secret" not in added.stderr + added.stdout
