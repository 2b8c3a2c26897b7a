"""The bridge is a light relay: ``mcp-broker connect`` serves a whole session (initialize, a tool
call, the end of input) without importing the mcp SDK, whose import alone takes over a second.

Seen from outside: the real command runs under ``python -X importtime``, which reports every
module the process imports on stderr."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.broker.bridge.chatty_server import chatty_server
from tests.e2e.conftest import ROOT

pytestmark = pytest.mark.integration

IMPORTED = re.compile(r"^import time:\s+\d+ \|\s+\d+ \|\s*(\S+)$", re.MULTILINE)


@pytest.fixture(scope="module")
def open_server_url() -> Iterator[str]:
    with chatty_server(protected=False) as url:
        yield url


def broker_env(home: Path) -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin",
        "MCP_BROKER_HOME": str(home),
        "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring",
        "PYTHONPATH": str(ROOT),
    }


def request(id: int, method: str, params: dict[str, Any]) -> str:
    return json.dumps({"jsonrpc": "2.0", "id": id, "method": method, "params": params}) + "\n"


def test_a_bridged_session_never_imports_the_mcp_sdk(tmp_path: Path, open_server_url: str) -> None:
    env = broker_env(tmp_path / "home")
    added = subprocess.run(
        [sys.executable, "-m", "broker.cli", "add", open_server_url],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    proc = subprocess.Popen(
        [sys.executable, "-X", "importtime", "-m", "broker.cli", "connect", open_server_url],
        env=env, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdin is not None and proc.stdout is not None
    try:
        hello = {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "test", "version": "0"},
        }
        proc.stdin.write(request(1, "initialize", hello))
        proc.stdin.flush()
        initialized = json.loads(proc.stdout.readline())
        proc.stdin.write('{"jsonrpc": "2.0", "method": "notifications/initialized"}\n')
        proc.stdin.write(request(2, "tools/call", {"name": "count", "arguments": {"n": 2}}))
        proc.stdin.flush()
        called = json.loads(proc.stdout.readline())
        _, stderr = proc.communicate("", timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    imported = IMPORTED.findall(stderr)

    assert initialized["id"] == 1 and initialized["result"]["serverInfo"]["name"] == "bridge-chatty"
    assert called["id"] == 2 and called["result"]["content"][0]["text"] == "counted to 2"
    assert proc.returncode == 0
    assert "broker.bridge.streamable" in imported  # the relay's own modules were seen loading
    sdk = sorted(m for m in imported if m.split(".")[0] in ("mcp", "mcp_types"))
    assert sdk == []
