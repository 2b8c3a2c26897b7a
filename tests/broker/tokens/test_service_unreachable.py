"""A refresh that cannot reach the authorization server is described as such (status, tray),
keeps the refresh token, and is told apart from a dead grant (``invalid_grant``)."""

from __future__ import annotations

import pytest

from broker.errors import InteractionRequired, InvalidGrant, ServerUnreachable
from broker.store.memory import MemoryTokenStore
from broker.tokens.backoff import Backoff
from broker.tokens.service import UNREACHABLE, State, TokenService
from tests.broker.tokens.service_fakes import KEY, FakeGrant, make_tokens
from tests.support.clock import FakeClock


def service_with(fail: Exception) -> tuple[TokenService, MemoryTokenStore, FakeGrant]:
    clock = FakeClock()
    store = MemoryTokenStore()
    store.put(make_tokens(clock, lifetime=3600, age=3590))
    grant = FakeGrant(clock, fail=fail)
    backoff = Backoff(base=10, cap=60, rng=lambda: 0.5)
    return TokenService(store, grant, clock=clock, backoff=backoff), store, grant


def test_server_away_says_cant_reach_and_keeps_the_refresh_token() -> None:
    service, store, _ = service_with(ServerUnreachable("https://idp.example could not be reached"))

    with pytest.raises(ServerUnreachable):
        service.get_token(KEY, min_valid=300)

    status = service.status(KEY)
    assert status.state is State.RETRYING
    assert status.reason is not None and status.reason.startswith(UNREACHABLE)
    assert "sign" not in status.reason
    stored = store.get(KEY)
    assert stored is not None and stored.refresh_token is not None


def test_invalid_grant_needs_sign_in_at_once() -> None:
    service, store, _ = service_with(InvalidGrant("refresh token revoked"))

    with pytest.raises(InteractionRequired):
        service.get_token(KEY, min_valid=300)

    status = service.status(KEY)
    assert status.state is State.SIGN_IN_REQUIRED
    assert UNREACHABLE not in (status.reason or "")
    assert store.get(KEY) is None
