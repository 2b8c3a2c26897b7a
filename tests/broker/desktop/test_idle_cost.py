"""``mcp-broker run --headless`` costs (next to) nothing while nobody asks for a token.

The whole process's CPU time, read from /proc over a few idle seconds: every thread counts (the
token API's serving loop, the refresher, the tray worker, the keyring thread). A loop that polls
without blocking burns a whole core; the bound leaves room for a shared, noisy machine.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from broker.api.endpoint import discover_endpoint
from broker.paths import BrokerPaths, broker_paths
from tests.broker.desktop.brokerrun import BrokerRun
from tests.support.cpu import process_cpu_seconds
from tests.support.desktop import wait_for

pytestmark = pytest.mark.integration

IDLE_SECONDS = 3.0
CPU_BOUND = 0.2  # CPU-s in IDLE_SECONDS; a polling loop burns ~3


def test_a_headless_broker_burns_no_cpu_while_idle(
    broker_env: dict[str, str], tmp_path: Path
) -> None:
    broker = BrokerRun(broker_env, tmp_path / "broker.log", "--headless")
    try:
        paths = broker_paths(broker_env)
        wait_for("the token API", lambda: _answers(paths, broker.proc.pid), 60)
        time.sleep(1.0)  # start-up's last steps (warming up the refresh path) are not idle time
        before = process_cpu_seconds(broker.proc.pid)
        time.sleep(IDLE_SECONDS)
        burned = process_cpu_seconds(broker.proc.pid) - before
        assert burned < CPU_BOUND, f"the idle broker used {burned:.2f} CPU-s in {IDLE_SECONDS} s"
        assert broker.stop() == 0, broker.log()
    finally:
        broker.kill()


def _answers(paths: BrokerPaths, pid: int) -> bool:
    try:
        return discover_endpoint(paths).pid == pid
    except Exception:
        return False
