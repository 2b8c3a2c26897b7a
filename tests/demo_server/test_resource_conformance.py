"""The MCP conformance harness's server scenarios against ``mcp-demo-server serve --no-auth``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.conformance import require_harness, run_server_scenario
from tests.support.procs import ServerProcess, demo_server_cmd

SCENARIOS = ["server-initialize", "ping", "tools-list", "dns-rebinding-protection"]


@pytest.fixture(scope="module")
def no_auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    require_harness()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    cmd = demo_server_cmd("serve", "--no-auth", "--port", "0")
    with ServerProcess(cmd, log) as server:
        yield server.url


@pytest.mark.integration
@pytest.mark.conformance
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_server_scenario_passes(scenario: str, no_auth_server: str, tmp_path: Path) -> None:
    run = run_server_scenario(no_auth_server, scenario, tmp_path / "results")
    if not run.passed:
        pytest.fail(
            f"conformance scenario {scenario} failed (exit {run.returncode}); "
            f"failed checks: {run.failures}\n--- harness output ---\n{run.output}",
            pytrace=False,
        )
    assert any(check["status"] == "SUCCESS" for check in run.checks)
