"""The keyring daemon restarts while the broker runs (issue 10): it comes back locked; once the
user unlocks it, the next token request works, and the keyring holds exactly what it held before
(nothing lost, nothing duplicated), the refreshed tokens included."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.api.endpoint import request_token
from broker.errors import BrokerError
from tests.e2e.conftest import ROOT, BrokerCli
from tests.e2e.real_life import real_life_stack, running_broker, sign_in
from tests.support.browser import browser_command
from tests.support.desktop import wait_for
from tests.support.secret_service import SecretServiceDaemons, isolated_secret_service_daemons

__all__ = ["isolated_secret_service_daemons"]  # the fixture

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TTL = 6  # the broker must write rotated tokens to the keyring while and after it is away


@pytest.fixture
def own_cli(
    tmp_path: Path, isolated_secret_service_daemons: SecretServiceDaemons
) -> Iterator[BrokerCli]:
    env = {
        **isolated_secret_service_daemons.environ(),
        "MCP_BROKER_HOME": str(tmp_path / "broker-home"),
        "BROWSER": browser_command(tmp_path),
        "PYTHON_KEYRING_BACKEND": "keyring.backends.SecretService.Keyring",
        "PYTHONPATH": str(ROOT),
    }
    env.pop("MCP_BROKER_CONFIG", None)
    yield BrokerCli(env)


def test_keyring_daemon_restarted_while_the_broker_runs(
    own_cli: BrokerCli, isolated_secret_service_daemons: SecretServiceDaemons, tmp_path: Path
) -> None:
    daemons = isolated_secret_service_daemons
    with real_life_stack(TTL, rotation=True, grace=0) as stack:
        sign_in(own_cli, stack.mcp_url)
        with running_broker(own_cli, tmp_path / "broker.log") as (broker, paths):
            request_token(stack.mcp_url, paths=paths)
            items_before = daemons.item_count()

            daemons.restart_keyring()
            assert daemons.is_locked()
            # Past the token's refresh time: the broker cannot read or write the keyring now
            # and must neither lose the sign-in nor give up on it.
            time.sleep(TTL + 2)
            alive_while_locked = broker.proc.poll() is None
            daemons.unlock()  # the user unlocks the keyring

            def served() -> bool | None:
                try:
                    asked = time.time()
                    return request_token(stack.mcp_url, paths=paths, min_valid=1).expires_at > asked
                except BrokerError:
                    return None

            wait_for("a token after the unlock", served, 3 * TTL + 30)
            # Several more lifetimes: every refresh written to the restarted daemon.
            more = stack.idp.counter.refreshes
            wait_for(
                "two more refreshes",
                lambda: stack.idp.counter.refreshes >= more + 2 or None,
                4 * TTL,
            )
            asked = time.time()
            last = request_token(stack.mcp_url, paths=paths, min_valid=1)
            # Quit as the user (or the session's logout) does. Not the teardown's SIGKILL: that
            # can land between a rotation's answer and its keyring write, leaving staged chunks
            # (the next write purges them) and, with a 0 s grace, a rotated-out refresh token
            # in the keyring -- the kill -9 test's subject, not this one's.
            stopped = broker.stop()
            log = broker.log()
        items_after = daemons.item_count()
        after_restart = own_cli.run("token", stack.mcp_url)  # a fresh process reads the keyring

    assert alive_while_locked
    assert stopped == 0, log
    assert last.expires_at > asked
    assert items_after == items_before, (items_before, items_after)  # nothing lost or doubled
    assert after_restart.returncode == 0, after_restart.stderr
    assert stack.idp.store.reused_refresh_tokens == 0  # no rotated-out token spent again
    assert "Traceback" not in log
