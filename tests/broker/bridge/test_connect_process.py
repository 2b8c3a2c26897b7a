"""``mcp-broker connect`` as a process: stdout carries only MCP, refusals are JSON-RPC errors,
and the process ends by itself, successfully, when its stdin closes."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from broker.bridge import configure_connect_parser, run_connect
from broker.bridge.transport import BROKER_UNAVAILABLE
from tests.broker.bridge.stdio import connect_argv
from tests.e2e.conftest import ROOT

URL = "http://127.0.0.1:9/mcp"
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "test", "version": "0"},
    },
}


def test_connect_has_a_help_that_says_how_to_sign_in() -> None:
    parser = argparse.ArgumentParser(prog="mcp-broker")
    configure_connect_parser(parser.add_subparsers())

    args = parser.parse_args(["connect", URL])
    helptext = parser._subparsers._group_actions[0].choices["connect"].format_help()  # type: ignore[union-attr]

    assert args.run is run_connect and args.url == URL
    assert "mcp-broker login URL" in helptext and "stdin" in helptext


@pytest.mark.integration
def test_a_piped_request_is_answered_before_the_bridge_ends_with_its_input(
    tmp_path: Path,
) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "MCP_BROKER_HOME": str(tmp_path / "home"),
        "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
        "PYTHONPATH": str(ROOT),
    }
    proc = subprocess.Popen(
        [sys.executable, *connect_argv(URL)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=ROOT,
        text=True,
    )
    try:
        # Like `echo REQUEST | mcp-broker connect URL`: input ends before the answer is out.
        out, stderr = proc.communicate(json.dumps(INITIALIZE) + "\n", timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    code = proc.returncode
    lines = out.splitlines()
    answer = json.loads(lines[0])

    assert code == 0, stderr
    assert answer["id"] == 1 and answer["error"]["code"] == BROKER_UNAVAILABLE
    assert f"mcp-broker add {URL}" in answer["error"]["message"]
    assert len(lines) == 1  # nothing but MCP on stdout
