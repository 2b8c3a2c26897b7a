"""One broker per user: the instance lock, in-process and with real processes."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from broker.desktop.instance import hold_instance, read_running
from broker.errors import AlreadyRunning
from broker.paths import broker_paths
from tests.broker.desktop.brokerrun import BrokerRun
from tests.support.desktop import wait_for


def test_a_second_holder_is_refused_with_the_first_ones_details(tmp_path: Path) -> None:
    paths = broker_paths({"MCP_BROKER_HOME": str(tmp_path)})
    with hold_instance(paths) as first:
        first.publish(api_url="http://127.0.0.1:4242")
        with pytest.raises(AlreadyRunning) as refused:
            hold_instance(paths)
        info = paths.state_dir / "instance.json"
        assert stat.S_IMODE(info.stat().st_mode) == 0o600
    assert f"pid {os.getpid()}" in str(refused.value)
    assert "token API at http://127.0.0.1:4242" in str(refused.value)
    assert refused.value.exit_code == 6
    assert not info.exists()
    with hold_instance(paths):  # released: the next start gets it
        pass


def test_unreadable_details_do_not_break_the_refusal(tmp_path: Path) -> None:
    paths = broker_paths({"MCP_BROKER_HOME": str(tmp_path)})
    with hold_instance(paths):
        (paths.state_dir / "instance.json").write_text("{not json")
        with pytest.raises(AlreadyRunning, match="has not said who it is"):
            hold_instance(paths)
    assert read_running(tmp_path / "missing.json") is None


@pytest.mark.integration
def test_a_second_broker_exits_naming_the_running_one(
    broker_env: dict[str, str], tmp_path: Path
) -> None:
    first = BrokerRun(broker_env, tmp_path / "first.log")
    try:
        wait_for("the first broker's API", lambda: "token API listening" in first.log(), 120)
        second = BrokerRun(broker_env, tmp_path / "second.log")
        try:
            code = second.wait()
        finally:
            second.kill()
        assert first.proc.poll() is None, first.log()
        assert code == 6, second.log()
        assert f"already running for this user (pid {first.proc.pid}" in second.log()
        assert "token API at http://127.0.0.1:" in second.log()

        assert first.stop() == 0, first.log()
    finally:
        first.kill()
    # With no display, the broker said once, clearly, that it runs headless.
    headless = [line for line in first.log().splitlines() if "Running headless" in line]
    assert len(headless) == 1, first.log()
    assert "no display (DISPLAY is not set)" in headless[0]
    assert "token API at http://127.0.0.1:" in headless[0]
