"""Many concurrent ``mcp-broker token`` processes over many token lifetimes: one refresh
at a time, durable rotation.

The access tokens live a few seconds. Every process reads the tokens from the Secret Service,
and when they are due, refreshes them under the cross-process lock, or adopts what another
process just stored. The authorization server counts the refresh requests it really received.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from tests.e2e.conftest import BrokerCli, demo_stack
from tests.e2e.test_cli_e2e import claims, sign_in

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TTL = 6  # seconds: short enough that a short run spans several lifetimes
LIFETIMES = 4  # the run ends once the server has seen this many refreshes
HANG_GUARD = 300.0  # seconds: only against a hang; a working broker needs ~TTL per refresh
WORKERS = 3
# Refresh once 2.5 s are left: no sooner than 3.5 s after the last refresh.
MIN_VALID = 2.5


@dataclass(frozen=True)
class Observation:
    started: float  # wall clock when the process was started
    token: str
    returncode: int
    stderr: str


def hammer(cli: BrokerCli, url: str, done: Callable[[], bool], workers: int) -> list[Observation]:
    """Run ``mcp-broker token URL`` back to back on ``workers`` threads until ``done()``."""
    observations: list[Observation] = []
    lock = threading.Lock()
    give_up = time.monotonic() + HANG_GUARD

    def worker() -> None:
        while not done() and time.monotonic() < give_up:
            started = time.time()
            proc = cli.popen("token", url, "--min-valid", str(MIN_VALID))
            stdout, stderr = proc.communicate(timeout=120)
            with lock:
                seen = Observation(started, stdout.strip(), proc.returncode, stderr)
                observations.append(seen)

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not any(t.is_alive() for t in threads)
    return observations


@pytest.mark.parametrize("rotation", [False, True], ids=["same-refresh-token", "rotation"])
def test_concurrent_token_calls_never_get_an_expired_token_and_refresh_once_per_turn(
    broker_cli: BrokerCli, rotation: bool
) -> None:
    with demo_stack(access_token_ttl=TTL, rotation=rotation) as stack:
        sign_in(broker_cli, stack)
        first_token = broker_cli.ok("token", stack.mcp_url).strip()
        before = stack.counter.refreshes
        seen = hammer(
            broker_cli,
            stack.mcp_url,
            lambda: stack.counter.refreshes - before >= LIFETIMES,
            WORKERS,
        )
        refreshes = stack.counter.refreshes - before

    failures = [o for o in seen if o.returncode != 0]
    assert not failures, failures[:3]  # with rotation, a double refresh would be invalid_grant
    # The broker decides after the process started and hands out only tokens with MIN_VALID s
    # left by its clock, so a slow machine cannot make this fail: no token handed out had
    # expired when it was asked for (the margin absorbs exp's whole seconds and the latency
    # between the server stamping it and the broker receiving it).
    expired = [o for o in seen if claims(o.token)["exp"] <= o.started]
    assert not expired, f"{len(expired)} of {len(seen)} tokens were expired when asked for"
    assert refreshes >= LIFETIMES, (refreshes, len(seen))  # several lifetimes were crossed
    # Every refresh the server saw produced a token somebody used: none was wasted or doubled.
    refreshed = {o.token for o in seen} - {first_token}
    assert refreshes == len(refreshed), (refreshes, len(refreshed), len(seen))
    # Single flight across processes: a token is refreshed only once it has less than
    # MIN_VALID left, so consecutive refreshes are TTL - MIN_VALID apart (``iat`` is whole
    # seconds). Processes refreshing on their own would refresh the same due token together.
    issued = sorted(claims(t)["iat"] for t in refreshed | {first_token})
    gaps = [b - a for a, b in itertools.pairwise(issued)]
    assert min(gaps) >= int(TTL - MIN_VALID), gaps
