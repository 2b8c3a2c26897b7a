"""Killing ``mcp-broker`` at any point of a refresh (issue 3 "Done when").

The worst moment is right after the authorization server has rotated the refresh token and
before the broker stored the answer: the stored refresh token is then dead. The next run must
say "sign-in required" cleanly (exit 4, at once, every time) or serve a valid token, never crash
or loop, and a sign-in must repair it.
"""

from __future__ import annotations

import dataclasses
import random
import subprocess
import time
from collections.abc import Callable

import httpx2
import pytest

from broker.store.keyring_store import KeyringTokenStore
from broker.tokens.tokenset import TokenKey
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


def stored_refresh_token(handle: SecretServiceHandle, stack: DemoStack) -> str:
    store = KeyringTokenStore(handle.backend)
    try:
        tokens = store.reload(TokenKey(stack.issuer, "demo-broker", stack.mcp_url))
    finally:
        store.close()
    assert tokens is not None and tokens.refresh_token
    return tokens.refresh_token


def refresh_and_lose_the_answer(handle: SecretServiceHandle, stack: DemoStack) -> None:
    """What the server sees when the broker dies after sending a refresh and before storing
    the answer: the stored refresh token is used once, the rotated one never stored."""
    discovery = f"{stack.issuer}/.well-known/openid-configuration"
    token_endpoint = httpx2.get(discovery, timeout=30, trust_env=False).json()["token_endpoint"]
    answer = httpx2.post(
        token_endpoint,
        data={
            "grant_type": "refresh_token",
            "refresh_token": stored_refresh_token(handle, stack),
            "client_id": "demo-broker",
        },
        timeout=30,
        trust_env=False,
    )
    assert answer.status_code == 200 and "refresh_token" in answer.json()  # it rotated


def assert_sign_in_required_cleanly(
    cli: BrokerCli, stack: DemoStack, after: subprocess.CompletedProcess[str]
) -> None:
    """``after`` (a ``token`` run) asked for a sign-in; it stays so at once; a sign-in repairs."""
    assert after.returncode == 4, after.stderr
    assert f"mcp-broker login {stack.mcp_url}" in after.stderr and after.stdout == ""
    assert cli.run("status", "--json").returncode == 0
    assert cli.run("token", stack.mcp_url).returncode == 4  # answered at once, no loop
    cli.ok("login", stack.mcp_url)
    assert cli.run("token", stack.mcp_url).returncode == 0  # a sign-in repairs it


def test_a_refresh_answer_lost_in_a_crash_asks_for_sign_in_cleanly(
    broker_cli: BrokerCli, secret_service: SecretServiceHandle
) -> None:
    """The worst moment of a crash, made to happen for certain rather than by kill timing."""
    with demo_stack(access_token_ttl=3600, rotation=True) as stack:
        sign_in(broker_cli, stack)
        refresh_and_lose_the_answer(secret_service, stack)
        age_stored_tokens(secret_service, stack)
        after = broker_cli.run("token", stack.mcp_url)
        assert "sign-in required" in after.stderr  # the refresh was refused: invalid_grant
        assert_sign_in_required_cleanly(broker_cli, stack, after)


def test_killing_the_broker_during_refreshes_never_leaves_it_broken(
    broker_cli: BrokerCli, secret_service: SecretServiceHandle
) -> None:
    rng = random.Random(24)
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

            # Where the kill landed decides which good outcome follows (a token; or a sign-in
            # asked for, as "sign-in required" or, after a write cut short, "not signed in"),
            # not whether one does: no assertion here depends on the timing.
            asked = time.time()
            after = broker_cli.run("token", stack.mcp_url)
            assert after.returncode in (0, 4), after.stderr
            if after.returncode == 4:
                assert_sign_in_required_cleanly(broker_cli, stack, after)
            else:
                assert claims(after.stdout.strip())["exp"] > asked
                assert broker_cli.run("status", "--json").returncode == 0
        assert broker_cli.run("token", stack.mcp_url).returncode == 0
