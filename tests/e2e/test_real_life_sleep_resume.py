"""The laptop sleeps and wakes up (issue 10): the wall clock jumps forward past the token's expiry
while the monotonic clock does not, as after a suspend.

The broker and the local authorization server run under libfaketime (Debian ``faketime``) and
share one timestamp file, so the jump moves both of their wall clocks at once (the server must
issue tokens that are valid in the broker's new "now", as a real one, whose clock kept running
during the sleep, would). The monotonic clock is left alone (``FAKETIME_DONT_FAKE_MONOTONIC``):
it is what a sleeping laptop's monotonic clock does, and the broker's timed waits run on it.
Debian 12's libfaketime (0.9.10) also needs ``FAKETIME_FORCE_MONOTONIC_FIX=0``: without it every
timed wait for CPython's GIL returns at once and threads starve (see ``WallClock.environ``).

After a jump, the first token request gets a fresh token, never the expired one, and without
any request the refresher's schedule recovers by itself within its longest sleep.
"""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2
import pytest

from broker.api.endpoint import request_token
from broker.tokens.refresher import Refresher
from demo_server.idp.settings import IdpSettings
from demo_server.resource import ResourceSettings
from demo_server.resource import start as start_resource
from tests.e2e.conftest import ROOT, BrokerCli
from tests.e2e.real_life import CLIENT_ID, headless_env, running_broker
from tests.support.desktop import wait_for
from tests.support.procs import fixed_port
from tests.support.realparts import require
from tests.support.secret_service import SecretServiceHandle

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TTL = 600  # without a jump, nothing would be due for nine minutes
SLEEP = 3600  # each jump: an hour of sleep, far past the token's expiry
#: The refresher's longest sleep: after a jump, the latest moment it looks again.
MAX_SLEEP = float(inspect.signature(Refresher).parameters["max_sleep"].default)
REFRESHING = re.compile(r"refreshing tokens for ")


def libfaketime() -> str:
    """Where Debian's ``libfaketime`` package put the library (the path has the arch in it)."""
    listed = subprocess.run(
        ["dpkg", "-L", "libfaketime"], capture_output=True, text=True, check=False
    )
    found = [p for p in listed.stdout.splitlines() if p.endswith("/faketime/libfaketime.so.1")]
    require(bool(found), "libfaketime", "apt-get install faketime")
    return found[0]


class WallClock:
    """The timestamp file both faked processes read on every clock call: an offset in seconds."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.path.write_text("+0\n")

    def environ(self) -> dict[str, str]:
        return {
            "LD_PRELOAD": libfaketime(),
            "FAKETIME_TIMESTAMP_FILE": str(self.path),
            "FAKETIME_NO_CACHE": "1",  # read the file on every call: the jump is seen at once
            "FAKETIME_DONT_FAKE_MONOTONIC": "1",  # a sleeping laptop's monotonic clock stops
            # libfaketime 0.9.10 (Debian 12) wraps pthread_cond_timedwait and, for a condition
            # variable on CLOCK_MONOTONIC such as CPython's GIL, measures the deadline against a
            # *faked* monotonic clock even under FAKETIME_DONT_FAKE_MONOTONIC; with glibc >= 2.30
            # its "forced monotonic fix" then moves the deadline into the past, so every timed
            # wait for the GIL returns at once and waiting threads spin on it (each spin reading
            # the timestamp file under the GIL's mutex). Threads starve: the broker's keyring
            # worker never got its turn. With the fix off, the wrapper hands the deadline through
            # unchanged (fixed upstream after 0.9.10, libfaketime PR #503).
            "FAKETIME_FORCE_MONOTONIC_FIX": "0",
        }

    def jump(self, seconds: int) -> None:
        self.offset += seconds
        self.path.write_text(f"+{self.offset}\n")

    def now(self) -> float:
        """The faked processes' "now"."""
        return time.time() + self.offset


@contextmanager
def faked_idp(clock: WallClock, resource: str, tmp_path: Path) -> Iterator[str]:
    """``mcp-demo-server idp`` on the faked clock, auto-login as ``demo``; yields the issuer."""
    port = fixed_port()
    issuer = IdpSettings(port=port).resolved().issuer
    argv = [sys.executable, "-m", "demo_server", "idp", "--port", str(port)]
    argv += ["--access-token-ttl", str(TTL), "--round-expiry-up", "--auto-login", "demo"]
    argv += ["--resource-server", resource]
    env = {**headless_env(BrokerCli({})), **clock.environ(), "PYTHONPATH": str(ROOT)}
    with (tmp_path / "idp.log").open("wb") as log:  # the child has its own copy
        proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:

        def answers() -> bool | None:
            try:
                return httpx2.get(f"{issuer}/.well-known/openid-configuration").is_success or None
            except httpx2.HTTPError:
                return None

        wait_for("the faked authorization server", answers, 60)
        yield issuer
    finally:
        proc.terminate()
        proc.wait(10)


def test_sleep_and_resume_serves_a_fresh_token_and_the_refresher_recovers(
    broker_cli: BrokerCli, secret_service: SecretServiceHandle, tmp_path: Path
) -> None:
    clock = WallClock(tmp_path / "faketime")
    resource_port = fixed_port()
    resource_url = f"http://127.0.0.1:{resource_port}/mcp"
    with faked_idp(clock, resource_url, tmp_path) as issuer:
        resource = start_resource(ResourceSettings(port=resource_port, issuer=issuer, clock_skew=0))
        try:
            url = resource.settings.mcp_url
            broker_cli.ok("add", url, "--client-id", CLIENT_ID, "--provider", "cognito")
            broker_cli.ok("login", url)
            env = {**headless_env(broker_cli), **clock.environ()}
            with running_broker(broker_cli, tmp_path / "broker.log", env) as (broker, paths):

                def refreshes() -> int:
                    return len(REFRESHING.findall(broker.log()))

                before = request_token(url, paths=paths)
                assert before.expires_at > clock.now() + TTL / 2
                assert refreshes() == 0

                # Asleep for an hour, then a client asks at once.
                clock.jump(SLEEP)
                woke = clock.now()
                first = request_token(url, paths=paths, min_valid=1)
                after_first = refreshes()

                # Asleep again; this time nobody asks.
                clock.jump(SLEEP)
                woke_again = clock.now()
                wait_for(
                    "a refresh by the refresher alone",
                    lambda: refreshes() > after_first or None,
                    MAX_SLEEP + 15,
                )
                recovered = refreshes()
                served = request_token(url, paths=paths, min_valid=1)
                settled = refreshes()
                log = broker.log()
        finally:
            resource.close()

    assert first.expires_at > woke + TTL / 2, "an expired (or nearly) token after the sleep"
    assert after_first == 1  # the request itself refreshed
    assert recovered == 2
    assert served.expires_at > woke_again + TTL / 2
    assert settled == recovered  # what the refresher fetched was served, no second refresh
    assert "Traceback" not in log
