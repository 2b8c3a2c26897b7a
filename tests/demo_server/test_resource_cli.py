"""``mcp-demo-server serve`` as a real subprocess: options, JWKS via OIDC discovery, shutdown."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import httpx2
import pytest

from demo_server.cli import build_parser, main
from tests.support.jwt_issuer import JwksServer
from tests.support.procs import ServerProcess, demo_server_cmd
from tests.support.resource_server import call_tool, initialize_body, post_mcp

pytestmark = pytest.mark.integration


def serve(tmp_path: Path, *args: str) -> ServerProcess:
    """``mcp-demo-server serve --port 0``: its URL is ``.url`` once started."""
    return ServerProcess(demo_server_cmd("serve", "--port", "0", *args), tmp_path / "serve.log")


def test_serve_finds_the_jwks_by_discovery_and_answers_whoami(
    jwks: JwksServer, tmp_path: Path
) -> None:
    with serve(tmp_path, "--issuer", jwks.issuer, "--client-id", "demo-broker") as process:
        url = process.url
        assert post_mcp(url, initialize_body()).status_code == 401
        assert jwks.discovery_requests == 0  # lazy: nothing fetched before the first token
        token = jwks.issuer_obj.token(url)
        me = call_tool(url, token, "whoami").structured_content
        assert me["subject"] == "0f1e2d3c-demo-user"
        assert me["scopes"] == [f"{url}/tools"]
        assert jwks.discovery_requests == 1
        assert jwks.jwks_requests >= 1
    assert process.proc is not None and process.proc.returncode == 0
    assert token not in process.log()


def test_serve_oidc_profile_jwks_url_and_repeated_client_ids(
    jwks: JwksServer, tmp_path: Path
) -> None:
    args = ["--issuer", jwks.issuer, "--jwks-url", jwks.jwks_url, "--profile", "oidc"]
    with serve(tmp_path, *args, "--client-id", "one", "--client-id", "two") as process:
        url = process.url
        cases = [({"client_id": "one"}, 200), ({"client_id": "two"}, 200)]
        cases += [({"client_id": "demo-broker"}, 401), ({"client_id": "one", "aud": None}, 401)]
        for overrides, status in cases:
            claims = {"aud": url, **overrides}
            token = jwks.issuer_obj.token(url, **claims)
            assert post_mcp(url, initialize_body(), token).status_code == status, overrides


def test_serve_no_auth_warns_and_serves_without_token(tmp_path: Path) -> None:
    with serve(tmp_path, "--no-auth") as process:
        url = process.url
        assert post_mcp(url, initialize_body()).status_code == 200
        assert (
            httpx2.get(url.replace("/mcp", "/.well-known/oauth-protected-resource")).status_code
            == 404
        )
    assert "WARNING" in process.log() and "--no-auth" in process.log()


def test_serve_refuses_a_non_loopback_host() -> None:
    result = subprocess.run(
        demo_server_cmd("serve", "--host", "0.0.0.0", "--port", "0"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "loopback" in result.stderr


@pytest.mark.parametrize("host", ["192.168.1.10", "::", "example.com", "127.0.0.1.nip.io"])
def test_serve_option_parsing_refuses_other_hosts(
    host: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["serve", "--host", host])
    assert exit_info.value.code == 2
    assert "loopback" in capsys.readouterr().err


def test_serve_reports_a_taken_port(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--port", str(port)]) == 2
    assert "mcp-demo-server serve:" in capsys.readouterr().err
