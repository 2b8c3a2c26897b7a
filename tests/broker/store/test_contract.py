"""The token store contract: every backend runs these tests (STYLE.md, keyring's test mixin).

Backends: memory; the keyring store over a test keyring that enforces Windows' 1,280-character
limit per entry; the keyring store over the real Secret Service (integration).
"""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from broker.store import KeyringTokenStore, MemoryTokenStore
from broker.store.codec import decode_tokens, dumps, encode_tokens
from broker.tokens.tokenset import TokenKey, TokenSet
from tests.support.keyrings import LimitedKeyring

CANARY = "CANARY-contract-7f3a"
ISSUER = "https://idp.example/us-east-1_Pool"
KEY = TokenKey(ISSUER, "client-a", "https://mcp.example/mcp")


def tokens(
    key: TokenKey = KEY, access: str = "at", refresh: str | None = "rt", **kw: Any
) -> TokenSet:
    return TokenSet(
        key=key,
        access_token=f"{CANARY}-{access}",
        refresh_token=None if refresh is None else f"{CANARY}-{refresh}",
        expires_at=kw.pop("expires_at", time.time() + 3600),
        scope=kw.pop("scope", "openid mcp/read"),
        **kw,
    )


@pytest.fixture(
    params=[
        "memory",
        "keyring-limited",
        pytest.param("secret-service", marks=pytest.mark.integration),
    ]
)
def store(request: pytest.FixtureRequest) -> Iterator[Any]:
    if request.param == "memory":
        made: Any = MemoryTokenStore()
    elif request.param == "keyring-limited":
        made = KeyringTokenStore(LimitedKeyring(), service="test", timeout=30)
    else:
        handle = request.getfixturevalue("secret_service")
        made = KeyringTokenStore(handle.backend, service=f"test-{uuid.uuid4()}", timeout=30)
    yield made
    made.close()


def test_missing_key_reads_as_signed_out(store: Any) -> None:
    assert store.get(KEY) is None
    assert store.reload(KEY) is None


def test_put_then_get_returns_the_same_tokens(store: Any) -> None:
    stored = tokens()
    store.put(stored)
    assert store.get(KEY) == stored
    assert store.reload(KEY) == stored


def test_put_replaces_previous_tokens(store: Any) -> None:
    store.put(tokens(access="old", refresh="old-rt"))
    store.put(tokens(access="new", refresh=None))
    got = store.reload(KEY)
    assert got is not None
    assert got.access_token.endswith("-new")
    assert got.refresh_token is None


def test_delete_signs_out_and_is_idempotent(store: Any) -> None:
    store.put(tokens())
    store.delete(KEY)
    assert store.get(KEY) is None
    assert store.reload(KEY) is None
    store.delete(KEY)


@pytest.mark.parametrize("size", [4 * 1024, 16 * 1024])
def test_large_tokens_round_trip_intact(store: Any, size: int) -> None:
    """Large tokens are split (the limited keyring refuses any entry over 1,280 characters)."""
    big = tokens(access="A" * size, refresh="R" * size)
    store.put(big)
    assert store.reload(KEY) == big
    smaller = tokens(access="small")
    store.put(smaller)
    assert store.reload(KEY) == smaller


def test_unicode_and_odd_values_round_trip(store: Any) -> None:
    odd = tokens(access='ü"\\\n/\u2028' * 300, scope="ünïcode scope", token_type="DPoP", user="Ådå")
    store.put(odd)
    assert store.reload(KEY) == odd


@pytest.mark.parametrize(
    "other",
    [
        TokenKey(ISSUER, "client-b", KEY.resource),  # another client / account
        TokenKey(ISSUER, KEY.client_id, "https://other.example/mcp"),  # another server
        TokenKey("https://idp2.example", KEY.client_id, KEY.resource),  # another issuer
        TokenKey(ISSUER + "client-a", "", KEY.resource),  # same concatenation, other split
    ],
)
def test_two_servers_or_accounts_never_overwrite_each_other(store: Any, other: TokenKey) -> None:
    """Two servers or accounts never overwrite each other's entries."""
    mine, theirs = tokens(KEY, access="mine"), tokens(other, access="theirs")
    store.put(mine)
    store.put(theirs)
    assert store.reload(KEY) == mine
    assert store.reload(other) == theirs
    store.delete(other)
    assert store.reload(KEY) == mine


def test_client_secret_is_bound_to_its_issuer(store: Any) -> None:
    secret = f"{CANARY}-client-secret"
    store.put_client_secret(ISSUER, "client-a", secret)
    assert store.get_client_secret(ISSUER, "client-a") == secret
    assert store.get_client_secret("https://other-idp.example", "client-a") is None
    store.delete_client_secret(ISSUER, "client-a")
    assert store.get_client_secret(ISSUER, "client-a") is None


def test_nothing_shows_token_values(
    store: Any, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    """No secret leaks from the store: logs, output and reprs never carry a token or secret."""
    caplog.set_level("DEBUG")
    stored = tokens(access="x" * 3000)
    store.put(stored)
    store.put_client_secret(ISSUER, "client-a", f"{CANARY}-secret")
    store.get(KEY)
    store.reload(KEY)
    store.delete(KEY)
    shown = caplog.text + "".join(capsys.readouterr()) + repr(store) + repr(stored) + str(stored)
    assert CANARY not in shown


def test_an_entry_written_before_the_user_field_existed_still_reads() -> None:
    written = tokens(user="ada")
    doc = json.loads(encode_tokens(written))
    del doc["user"]
    assert decode_tokens(dumps(doc), KEY) == dataclasses.replace(written, user=None)
