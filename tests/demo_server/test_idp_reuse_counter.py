"""The local authorization server counts refresh tokens presented again after rotation, so a
test (or an operator) can check that no client ever spends a rotated-out refresh token twice."""

from __future__ import annotations

from collections.abc import Callable

from demo_server.idp.sessions import EXTENSION
from demo_server.idp.store import Store
from tests.demo_server.test_idp_protocol import (  # noqa: F401 - fixtures
    Idp,
    demo_user,
    keys,
    make_idp,
)


def store_of(idp: Idp) -> Store:
    store: Store = idp.app.extensions[EXTENSION].store
    return store


def test_each_presentation_of_a_rotated_out_refresh_token_is_counted(
    make_idp: Callable[..., Idp],  # noqa: F811
) -> None:
    idp = make_idp(refresh_token_rotation=True, rotation_grace_seconds=30)
    first = idp.tokens()["refresh_token"]

    second = idp.refresh(first).json["refresh_token"]  # type: ignore[index]
    assert store_of(idp).reused_refresh_tokens == 0
    idp.refresh(second)
    assert store_of(idp).reused_refresh_tokens == 0  # each token used once: no reuse

    assert idp.refresh(first).status_code == 200  # inside the grace period: still answered ...
    idp.clock.advance(31)
    assert idp.refresh(first).status_code == 400  # ... after it: invalid_grant
    assert store_of(idp).reused_refresh_tokens == 2  # ... and both presentations counted


def test_without_rotation_reusing_the_refresh_token_is_normal(
    make_idp: Callable[..., Idp],  # noqa: F811
) -> None:
    idp = make_idp()
    token = idp.tokens()["refresh_token"]
    for _ in range(3):
        assert idp.refresh(token).status_code == 200
    assert store_of(idp).reused_refresh_tokens == 0
