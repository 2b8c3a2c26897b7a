from __future__ import annotations

import base64
import hashlib
import logging
import re

import pytest

from broker.oauth.pkce import new_pkce, new_state, states_equal

UNRESERVED = re.compile(r"^[A-Za-z0-9\-._~]+$")


def test_verifier_meets_rfc_7636_and_challenge_is_s256() -> None:
    pkce = new_pkce()
    assert 43 <= len(pkce.verifier) <= 128
    assert UNRESERVED.match(pkce.verifier)
    digest = hashlib.sha256(pkce.verifier.encode()).digest()
    assert pkce.challenge == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert pkce.method == "S256"


def test_verifiers_and_states_are_fresh_each_time() -> None:
    assert len({new_pkce().verifier for _ in range(50)}) == 50
    assert len({new_state() for _ in range(50)}) == 50


def test_state_carries_at_least_128_bits() -> None:
    state = new_state()
    assert len(base64.urlsafe_b64decode(state + "=" * (-len(state) % 4))) * 8 >= 128


def test_verifier_is_not_in_repr() -> None:
    pkce = new_pkce()
    assert pkce.verifier not in repr(pkce)


@pytest.mark.parametrize("received", [None, "", "x", "wrong-state"])
def test_state_comparison(received: str | None) -> None:
    state = new_state()
    assert states_equal(state, state)
    assert not states_equal(received, state)


def test_creating_pkce_and_state_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    pkce, state = new_pkce(), new_state()
    assert pkce.verifier not in caplog.text and state not in caplog.text
