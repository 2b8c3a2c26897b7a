"""KeyringTokenStore on a real Secret Service (gnome-keyring in a private D-Bus session)."""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator

import pytest

from broker.errors import StorageLocked
from broker.store import KeyringTokenStore
from broker.store.chunks import MAX_ENTRY_CHARS
from broker.tokens import TokenKey, TokenSet
from tests.support.secret_service import SecretServiceHandle

pytestmark = pytest.mark.integration

CANARY = "CANARY-secretservice-90be"
KEY = TokenKey("https://idp.example/pool", "client-a", "https://mcp.example/mcp")


def make_tokens(label: str, size: int = 10) -> TokenSet:
    return TokenSet(
        key=KEY,
        access_token=f"{CANARY}-{label}-" + "a" * size,
        refresh_token=f"{CANARY}-{label}-rt-" + "r" * size,
        expires_at=time.time() + 3600,
    )


@pytest.fixture
def service() -> str:
    return f"mcp-oauth-broker-test-{uuid.uuid4()}"


@pytest.fixture
def store(secret_service: SecretServiceHandle, service: str) -> Iterator[KeyringTokenStore]:
    made = KeyringTokenStore(secret_service.backend, service=service, timeout=30)
    yield made
    made.close()


def test_default_backend_is_the_secret_service(service: str, secret_service: object) -> None:
    store = KeyringTokenStore(service=service, timeout=30)  # keyring's own choice
    store.put(make_tokens("x"))
    assert store.reload(KEY) is not None
    store.close()


def test_large_tokens_are_split_into_entries_within_the_limit(
    store: KeyringTokenStore, secret_service: SecretServiceHandle, service: str
) -> None:
    """Large tokens split into small entries, checked on what the Secret Service really holds."""
    store.put(make_tokens("big", 16 * 1024))
    entries = secret_service.entries(service)
    assert len(entries) > 20
    assert max(len(v) for v in entries.values()) <= MAX_ENTRY_CHARS


def test_sign_out_leaves_nothing_in_the_secret_service(
    store: KeyringTokenStore, secret_service: SecretServiceHandle, service: str
) -> None:
    """Sign-out: every entry of the key goes, chunks included (checked with secret-tool)."""
    store.put(make_tokens("one", 16 * 1024))
    store.put(make_tokens("two", 4 * 1024))
    store.put_client_secret(KEY.issuer, KEY.client_id, f"{CANARY}-client-secret")
    store.delete(KEY)
    store.delete_client_secret(KEY.issuer, KEY.client_id)
    assert secret_service.entries(service) == {}
    if shutil.which("secret-tool"):
        found = subprocess.run(
            ["secret-tool", "search", "--all", "service", service],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert "secret =" not in found.stdout + found.stderr


@pytest.fixture
def isolated_store(
    isolated_secret_service: SecretServiceHandle, service: str
) -> Iterator[KeyringTokenStore]:
    made = KeyringTokenStore(isolated_secret_service.backend, service=service, timeout=30)
    yield made
    made.close()


def test_locked_keyring_is_reported_retryable_and_loses_nothing(
    isolated_store: KeyringTokenStore, isolated_secret_service: SecretServiceHandle, service: str
) -> None:
    """A locked keyring: a really locked collection; the unlock prompt is dismissed headless."""
    store, secret_service = isolated_store, isolated_secret_service
    old = make_tokens("old", 3000)
    store.put(old)
    secret_service.lock()
    assert secret_service.is_locked()
    cold = KeyringTokenStore(secret_service.backend, service=service, timeout=30)
    try:
        with pytest.raises(StorageLocked) as locked:
            cold.get(KEY)
        assert locked.value.retryable
        with pytest.raises(StorageLocked):
            store.put(make_tokens("new", 3000))
        assert store.get(KEY) == old  # a warm cache keeps serving while locked
        secret_service.unlock()
        assert cold.get(KEY) == old  # nothing lost
        store.put(make_tokens("new", 3000))  # the retry succeeds
        assert cold.reload(KEY) == store.get(KEY)
    finally:
        cold.close()


def test_no_token_value_in_logs(
    isolated_store: KeyringTokenStore,
    isolated_secret_service: SecretServiceHandle,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """No token in any log, including keyring's and secretstorage's own debug logging."""
    store, secret_service = isolated_store, isolated_secret_service
    caplog.set_level("DEBUG")
    store.put(make_tokens("x", 2000))
    secret_service.lock()
    with pytest.raises(StorageLocked):
        KeyringTokenStore(secret_service.backend, timeout=30).get(KEY)
    secret_service.unlock()
    store.delete(KEY)
    captured = capsys.readouterr()
    assert CANARY not in caplog.text + captured.out + captured.err
