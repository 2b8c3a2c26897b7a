"""KeyringTokenStore on a real Secret Service (gnome-keyring in a private D-Bus session)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import pytest

from broker.errors import ServerUnreachable, StorageError, StorageLocked, as_answered
from broker.store import KeyringTokenStore
from broker.store.chunks import MAX_ENTRY_CHARS
from broker.tokens.tokenset import TokenKey, TokenSet
from tests.support.keyrings import CrashingDeletes
from tests.support.realparts import require
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


# A user's process: keyring detects its backend itself (no PYTHON_KEYRING_BACKEND, no keyringrc
# in the fresh HOME), and the store stores one token set with it.
USER_PROCESS = """
import sys, time
from broker.store import KeyringTokenStore
from broker.store.keyring_backend import backend_name, default_backend
from broker.tokens.tokenset import TokenKey, TokenSet

key = TokenKey(*sys.argv[2:5])
store = KeyringTokenStore(service=sys.argv[1], timeout=30)
store.put(TokenSet(key=key, access_token=sys.argv[5], refresh_token=sys.argv[6],
                   expires_at=time.time() + 3600))
store.close(wait=30)
print(backend_name(default_backend()))
"""


def test_default_backend_is_the_secret_service(
    service: str, secret_service: SecretServiceHandle
) -> None:
    """With nothing configured, keyring picks the Secret Service on the session bus, and the
    tokens land in the daemon (in a subprocess: keyring's choice is process-global)."""
    env = {
        k: v
        for k, v in secret_service.daemons.environ().items()
        if not k.startswith("PYTHON_KEYRING")
    }
    tokens = make_tokens("default")
    args = [service, KEY.issuer, KEY.client_id, KEY.resource, tokens.access_token]
    done = subprocess.run(
        [sys.executable, "-c", USER_PROCESS, *args, tokens.refresh_token or ""],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "keyring.backends.SecretService.Keyring"
    assert len(daemon_items(secret_service, service)) == 2  # the manifest and one chunk
    stored = KeyringTokenStore(secret_service.backend, service=service, timeout=30)
    try:
        got = stored.get(KEY)
    finally:
        stored.close()
    assert got is not None
    assert (got.access_token, got.refresh_token) == (tokens.access_token, tokens.refresh_token)


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
    assert daemon_items(secret_service, service) == []


def daemon_items(secret_service: SecretServiceHandle, service: str) -> list[str]:
    """The names of the items the daemon itself holds under ``service`` (read over D-Bus, and
    cross-checked with secret-tool)."""
    require(
        shutil.which("secret-tool") is not None, "secret-tool", "apt-get install libsecret-tools"
    )
    found = subprocess.run(
        ["secret-tool", "search", "--all", "service", service],
        capture_output=True,
        text=True,
        timeout=30,
    )
    listed = found.stdout + found.stderr
    items = secret_service.entries(service)
    assert listed.count("secret =") == len(items)
    return sorted(items)


def write_three_generations(backend: CrashingDeletes, service: str) -> None:
    """Tokens written three times, the third write's cleanup interrupted: chunks of generations
    2 and 3 are both in the keyring, besides the manifest."""
    store = KeyringTokenStore(backend, service=service, timeout=30)
    store.put(make_tokens("one", 1500))
    store.put(make_tokens("two", 1800))
    backend.deletes_left = 0  # the third write commits, then fails to purge generation 2
    store.put(make_tokens("three", 700))
    backend.deletes_left = None
    store.close()


def generations(items: list[str]) -> set[str]:
    return {name.split("/")[1] for name in items if "/" in name}


def deletes_of_a_remove(secret_service: SecretServiceHandle, service: str) -> int:
    backend = CrashingDeletes(secret_service.backend)
    write_three_generations(backend, service)
    assert generations(daemon_items(secret_service, service)) == {"2", "3"}
    before = backend.deletes
    store = KeyringTokenStore(backend, service=service, timeout=30)
    store.delete(KEY)
    store.close()
    assert daemon_items(secret_service, service) == []
    return backend.deletes - before


def test_a_sign_out_interrupted_at_any_step_and_repeated_leaves_nothing(
    secret_service: SecretServiceHandle, service: str
) -> None:
    """Sign-out leaves nothing behind, even interrupted: whichever keyring delete a crash stops
    a sign-out at, signing out again removes every entry of the server from the daemon, chunks of
    older writes included."""
    steps = deletes_of_a_remove(secret_service, f"{service}-probe")
    assert steps > 5, steps  # the manifest and the chunks of two generations
    for crash_after in range(steps):
        name = f"{service}-{crash_after}"
        backend = CrashingDeletes(secret_service.backend)
        write_three_generations(backend, name)
        backend.deletes_left = crash_after
        interrupted = KeyringTokenStore(backend, service=name, timeout=30)
        with pytest.raises(StorageError):
            interrupted.delete(KEY)
        interrupted.close()

        again = KeyringTokenStore(secret_service.backend, service=name, timeout=30)
        left = again.reload(KEY)
        assert left is None or left.access_token.startswith(f"{CANARY}-three-"), crash_after
        again.delete(KEY)
        again.close()
        assert daemon_items(secret_service, name) == [], f"left after a crash at {crash_after}"


@pytest.fixture
def isolated_store(
    isolated_secret_service: SecretServiceHandle, service: str
) -> Iterator[KeyringTokenStore]:
    made = KeyringTokenStore(isolated_secret_service.backend, service=service, timeout=30)
    yield made
    made.close()


# keyring 25.7 leaks a D-Bus connection per call on a locked collection (see
# tests/support/secret_service.py); the garbage collector may free it during this test too.
@pytest.mark.filterwarnings(r"ignore:unclosed <socket\.socket fd=\d+, family=1,:ResourceWarning")
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
        assert isinstance(as_answered(locked.value), ServerUnreachable)  # "retry later"
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
