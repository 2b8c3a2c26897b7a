"""Two brokers racing (issue 10): a second ``mcp-broker run`` while one runs exits (code 6) and
leaves the first serving; a CLI ``mcp-broker token`` loop while the running broker refreshes,
with refresh-token rotation and no grace period, never spends a refresh token twice (the
authorization server counts every rotated-out token presented again)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from broker.api.endpoint import request_token
from tests.e2e.conftest import BrokerCli
from tests.e2e.real_life import real_life_stack, running_broker, sign_in
from tests.e2e.test_cli_e2e import claims

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TTL = 4
RUN_SECONDS = 25.0


def test_a_second_broker_exits_and_the_first_keeps_serving(
    broker_cli: BrokerCli, tmp_path: Path
) -> None:
    with real_life_stack(3600) as stack:
        sign_in(broker_cli, stack.mcp_url)
        with running_broker(broker_cli, tmp_path / "broker.log") as (first, paths):
            second = broker_cli.run("run", "--headless", timeout=60)
            served = request_token(stack.mcp_url, paths=paths)
            assert first.proc.poll() is None

    assert second.returncode == 6, second.stderr
    assert "already running" in second.stderr.lower() or str(first.proc.pid) in second.stderr
    assert served.expires_in > 0


def test_cli_token_while_the_running_broker_refreshes_never_reuses_a_refresh_token(
    broker_cli: BrokerCli, tmp_path: Path
) -> None:
    with real_life_stack(TTL, rotation=True, grace=0) as stack:
        sign_in(broker_cli, stack.mcp_url)
        before = stack.idp.counter.refreshes
        results = []
        with running_broker(broker_cli, tmp_path / "broker.log") as (broker, paths):
            stop_at = time.monotonic() + RUN_SECONDS
            while time.monotonic() < stop_at:
                done = broker_cli.run("token", stack.mcp_url, "--min-valid", "1")
                results.append((time.time(), done))
                api = request_token(stack.mcp_url, paths=paths, min_valid=1)
                assert api.expires_at > time.time()
            alive = broker.proc.poll() is None
        refreshes = stack.idp.counter.refreshes - before

    failures = [d.stderr for _, d in results if d.returncode != 0]
    assert not failures, failures[:3]
    assert all(claims(d.stdout.strip())["exp"] > at - 1 for at, d in results)
    assert refreshes >= RUN_SECONDS / TTL - 1  # both sides really refreshed, many times
    assert stack.idp.store.reused_refresh_tokens == 0
    assert alive
