"""Workload identity federation end to end (issue 13 part 3): a workload's JWT in a file, redeemed
by the broker with the JWT bearer grant at the local stack's authorization server.

Every part is real: ``mcp-demo-server stack --trust-workload ISSUER=JWKS_FILE`` as a subprocess
(the authorization server trusts a test key's JWK set in a file, as one trusts a cluster's exported
keys), ``mcp-broker add URL --workload-token-file F --client-id demo-workload`` and ``mcp-broker
call URL whoami`` as subprocesses with a private Secret Service. The test plays the workload
platform: it signs JWTs with the test key and writes them to an owner-only file, replacing it as a
platform renews it. The access tokens live a few seconds, so the broker's next token comes from
the file again.
"""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path
from typing import Any

import pytest

from broker.paths import HOME_ENV as HOME
from tests.e2e.conftest import BrokerCli
from tests.support.canaries import files_under, leaks
from tests.support.procs import ISSUER, ServerProcess, demo_server_cmd
from tests.support.secret_service import SecretServiceHandle
from tests.support.workload_jwt import WorkloadIssuer, write_token_file

pytestmark = pytest.mark.integration

PLATFORM = "https://ci.example/workloads"  # never fetched: its keys are in a file
CLIENT = "demo-workload"
AGENT_A = "system:serviceaccount:ci:agent-a"
AGENT_B = "system:serviceaccount:ci:agent-b"
TTL = 6


def whoami(cli: BrokerCli, url: str) -> dict[str, Any]:
    """The demo server's ``whoami`` through ``mcp-broker call``, debug logging on (so that the
    canary check covers what the broker logs)."""
    printed = json.loads(cli.ok("-vv", "call", url, "whoami", "--json"))
    texts = [c["text"] for c in printed["content"] if c.get("type") == "text"]
    return dict(json.loads(texts[0]))


def test_a_workload_jwt_in_a_file_gets_tokens_renewed_from_the_file(
    broker_cli: BrokerCli, secret_service: SecretServiceHandle, tmp_path: Path
) -> None:
    platform = WorkloadIssuer(PLATFORM)
    jwks = platform.write_jwks(tmp_path / "platform-jwks.json")
    args = demo_server_cmd(
        "stack", "--port", "0", "--idp-port", "0", "--access-token-ttl", str(TTL),
        "--trust-workload", f"{PLATFORM}={jwks}",
    )  # fmt: skip
    with ServerProcess(args, tmp_path / "stack.log") as stack:
        issuer = stack.announced(ISSUER)
        assert issuer and f"client id: {CLIENT}" in stack.log(), stack.log()
        cli = broker_cli
        token_file = tmp_path / "run" / "token"
        token_file.parent.mkdir()
        jwts = [platform.token(issuer, sub=AGENT_A)]
        write_token_file(token_file, jwts[-1])
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600

        # No --provider: the local authorization server does not advertise PKCE (as Cognito),
        # which only a sign-in with the browser needs; the JWT bearer grant uses none.
        added = cli.run(
            "-vv", "add", stack.url,
            "--workload-token-file", str(token_file), "--client-id", CLIENT,
        )  # fmt: skip
        assert added.returncode == 0, added.stderr
        assert f"Got a token from {issuer}" in added.stdout, added.stdout
        who = whoami(cli, stack.url)
        assert who["workload"] == {"iss": PLATFORM, "sub": AGENT_A}, who
        assert (
            who["client_id"] == CLIENT and who["principal"] == f"workload {AGENT_A} of {PLATFORM}"
        )

        # The platform renews the file with another workload's JWT: the next token is its.
        jwts.append(platform.token(issuer, sub=AGENT_B))
        write_token_file(token_file, jwts[-1])
        first_token = cli.ok("token", stack.url).strip()
        time.sleep(TTL + 1)
        who = whoami(cli, stack.url)
        assert who["workload"]["sub"] == AGENT_B, who
        second_token = cli.ok("token", stack.url).strip()
        assert second_token != first_token

        # The file not renewed: the JWT in it was redeemed already, and is refused, said so.
        time.sleep(TTL + 1)
        used = refused_call(cli, stack.url)
        assert "invalid_grant" in used and f"the workload JWT in {token_file} was not" in used

        # A new JWT of the same workload (a new jti) is taken up without restarting anything.
        jwts.append(platform.token(issuer, sub=AGENT_B))
        write_token_file(token_file, jwts[-1])
        assert whoami(cli, stack.url)["workload"]["sub"] == AGENT_B

        # An expired JWT in the file: a clear error at once, not a hang.
        now = int(time.time())
        jwts.append(platform.token(issuer, exp=now - 300, iat=now - 900, nbf=now - 900))
        write_token_file(token_file, jwts[-1])
        time.sleep(TTL + 1)
        started = time.monotonic()
        expired = refused_call(cli, stack.url)
        assert time.monotonic() - started < 30
        assert "invalid_grant" in expired, expired
        assert f"the workload JWT in {token_file} expired at" in expired, expired

        assert "Traceback" not in stack.log()
        # Canaries: no workload JWT (nor its signature) in any output, log or file of the broker.
        canaries = jwts + [j.rsplit(".", 1)[1] for j in jwts]
        places = {f"file {n}": t for n, t in files_under(Path(cli.env[HOME])).items()}
        for number, done in enumerate(cli.runs):
            places[f"run {number} argv"] = " ".join(map(str, done.args))
            places[f"run {number} stdout"] = done.stdout
            places[f"run {number} stderr"] = done.stderr
        places["stack log"] = stack.log()
        assert leaks(canaries, places) == []


def refused_call(cli: BrokerCli, url: str) -> str:
    """What ``mcp-broker call`` tells the user when no token can be had (its last ``mcp-broker:``
    line; debug logging on for the canary check); it must fail, not hang."""
    done = cli.run("-vv", "call", url, "whoami", timeout=60)
    assert done.returncode != 0, done.stdout
    said = [line for line in done.stderr.splitlines() if line.startswith("mcp-broker: ")]
    assert said, done.stderr
    return said[-1]
