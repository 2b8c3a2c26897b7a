"""``mcp-demo-server stack --trust-workload ISSUER=JWKS_FILE`` (not Cognito behaviour): the stack's
authorization server redeems the issuer's workload JWTs for the public client ``demo-workload``,
whose tokens the demo MCP server accepts and whose ``whoami`` names the workload. Both servers
run in this process on free 127.0.0.1 ports; the requests are real HTTP."""

from __future__ import annotations

import argparse
import io
import signal
from pathlib import Path

import httpx2
import pytest

from demo_server import stack as stack_module
from demo_server.idp.extension_settings import TrustedIdp
from demo_server.stack import WORKLOAD_CLIENT_ID, StackSettings, describe, running
from tests.demo_server.test_stack_browser import whoami
from tests.support.workload_jwt import JWT_BEARER, WorkloadIssuer

pytestmark = pytest.mark.integration

PLATFORM = "https://cluster.example/workloads"


def test_the_stack_trusts_a_workload_issuer_for_demo_workload(tmp_path: Path) -> None:
    platform = WorkloadIssuer(PLATFORM)
    jwks = str(platform.write_jwks(tmp_path / "jwks.json"))
    trusted = (TrustedIdp(PLATFORM, jwks_file=jwks),)
    with running(StackSettings(idp_port=0, port=0, trusted_workloads=trusted)) as stack:
        out = io.StringIO()
        describe(stack, out)
        assert f"client id: {WORKLOAD_CLIENT_ID} (public" in out.getvalue()
        assert PLATFORM in out.getvalue()
        mcp_url = stack.server.url
        data = {
            "grant_type": JWT_BEARER,
            "assertion": platform.token(stack.idp.issuer, sub="system:serviceaccount:ci:agent"),
            "client_id": WORKLOAD_CLIENT_ID,
            "resource": mcp_url,
        }
        response = httpx2.post(f"{stack.idp.url}/oauth2/token", data=data, timeout=10)
        assert response.status_code == 200, response.text
        assert response.json()["scope"] == f"{mcp_url}/tools {mcp_url}/admin"
        who = whoami(mcp_url, response.json()["access_token"])
        assert who["principal"] == f"workload system:serviceaccount:ci:agent of {PLATFORM}"
        assert who["workload"] == {"iss": PLATFORM, "sub": "system:serviceaccount:ci:agent"}
        assert who["client_id"] == WORKLOAD_CLIENT_ID and who["username"] is None


def test_the_stack_refuses_to_start_with_an_unreadable_jwks_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = argparse.ArgumentParser()
    stack_module.configure_parser(parser)
    missing = tmp_path / "missing.json"
    args = parser.parse_args(
        ["--port", "0", "--idp-port", "0", "--trust-workload", f"{PLATFORM}={missing}"]
    )
    previous = signal.getsignal(signal.SIGTERM)  # run() installs its own
    try:
        assert stack_module.run(args) == 2
    finally:
        signal.signal(signal.SIGTERM, previous)
    err = capsys.readouterr().err
    assert PLATFORM in err and str(missing) in err
