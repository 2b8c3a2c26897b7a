"""Killing ``mcp-broker`` at any point of a refresh (issue 3 "Done when").

The worst moment is right after the authorization server has rotated the refresh token and
before the broker stored the answer: the stored refresh token is then dead. The next run must
say "sign-in required" cleanly (exit 4, at once, every time) or serve a valid token, never crash
or loop, and a sign-in must repair it.
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Callable

import pytest

from broker.store.keyring_store import KeyringTokenStore
from broker.tokens import TokenKey
from tests.e2e.conftest import BrokerCli, DemoStack, demo_stack
from tests.e2e.test_cli_e2e import claims, sign_in
from tests.support.secret_service import SecretServiceHandle

pytestmark = pytest.mark.integration


def wait_for(condition: Callable[[], bool], timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)
    return False


def age_stored_tokens(handle: SecretServiceHandle, stack: DemoStack) -> None:
    """Make the stored access token look expired, as if an hour had passed."""
    store = KeyringTokenStore(handle.backend)
    try:
        key = TokenKey(stack.issuer, "demo-broker", stack.mcp_url)
        tokens = store.reload(key)
        assert tokens is not None
        now = time.time()
        store.put(dataclasses.replace(tokens, obtained_at=now - 3700, expires_at=now - 100))
    finally:
        store.close()


def test_killing_the_broker_during_refreshes_never_leaves_it_broken(
    broker_cli: BrokerCli, secret_service: SecretServiceHandle
) -> None:
    rng = random.Random(24)
    outcomes: list[int] = []
    with demo_stack(access_token_ttl=3600, rotation=True) as stack:
        sign_in(broker_cli, stack)
        for round_ in range(4):
            age_stored_tokens(secret_service, stack)
            before = stack.counter.refreshes
            victim = broker_cli.popen("token", stack.mcp_url)
            if round_ % 2 == 0:  # the moment the refresh reaches the server
                wait_for(
                    lambda b=before, v=victim: stack.counter.refreshes > b or v.poll() is not None
                )
            else:  # anywhere
                time.sleep(rng.uniform(0.0, 2.0))
            victim.kill()
            victim.communicate(timeout=60)

            asked = time.time()
            after = broker_cli.run("token", stack.mcp_url)
            outcomes.append(after.returncode)
            assert after.returncode in (0, 4), after.stderr
            assert broker_cli.run("status", "--json").returncode == 0
            if after.returncode == 4:
                assert "sign-in required" in after.stderr
                again = broker_cli.run("token", stack.mcp_url)  # answered at once, no loop
                assert again.returncode == 4
                broker_cli.ok("login", stack.mcp_url)
            else:
                assert claims(after.stdout.strip())["exp"] > asked
        assert broker_cli.run("token", stack.mcp_url).returncode == 0
    assert 4 in outcomes  # the worst case really happened
