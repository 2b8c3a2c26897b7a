"""KeyringTokenStore beyond the contract: chunk limits, crash safety, corrupt data, caching,
hanging and locked keyrings, refusal of unusable backends."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import keyring.errors
import pytest
from keyring.backends import SecretService, fail, null

from broker.errors import (
    ServerUnreachable,
    StorageError,
    StorageLocked,
    StorageTimeout,
    StorageUnavailable,
    as_answered,
)
from broker.store import KeyringTokenStore
from broker.store.chunks import MAX_ENTRY_CHARS
from broker.tokens.tokenset import TokenKey, TokenSet
from tests.support.keyrings import HangingKeyring, LimitedKeyring, RaisingKeyring

CANARY = "CANARY-keyring-51d2"
KEY = TokenKey("https://idp.example/pool", "client-a", "https://mcp.example/mcp")
OTHER = TokenKey("https://idp.example/pool", "client-a", "https://other.example/mcp")


def label(tokens: TokenSet | None) -> str | None:
    """Which ``make_tokens`` call these tokens came from."""
    return None if tokens is None else tokens.access_token.split("-")[3]


def make_tokens(label: str, size: int = 10, key: TokenKey = KEY) -> TokenSet:
    return TokenSet(
        key=key,
        access_token=f"{CANARY}-{label}-" + "a" * size,
        refresh_token=f"{CANARY}-{label}-rt-" + "r" * size,
        expires_at=time.time() + 3600,
        scope="openid",
    )


@pytest.fixture(autouse=True)
def no_canary_anywhere(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> Iterator[None]:
    """Whatever a test does, no token value reaches a log or the terminal."""
    caplog.set_level("DEBUG")
    yield
    captured = capsys.readouterr()
    assert CANARY not in caplog.text + captured.out + captured.err


@pytest.fixture
def backend() -> LimitedKeyring:
    return LimitedKeyring()


@pytest.fixture
def store(backend: LimitedKeyring) -> Iterator[KeyringTokenStore]:
    made = KeyringTokenStore(backend, timeout=30)
    yield made
    made.close()


def restart(backend: LimitedKeyring) -> KeyringTokenStore:
    """A fresh store (empty cache) over the same keyring contents, as after a restart."""
    return KeyringTokenStore(LimitedKeyring(backend.entries), timeout=30)


# -- #45: chunking ---------------------------------------------------------------------------


@pytest.mark.parametrize("size", [4 * 1024, 16 * 1024])
def test_no_entry_exceeds_the_windows_limit(
    store: KeyringTokenStore, backend: LimitedKeyring, size: int
) -> None:
    store.put(make_tokens("big", size))
    assert len(backend.entries) > 2
    assert max(len(v) for v in backend.entries.values()) <= MAX_ENTRY_CHARS


def test_entry_names_reveal_nothing_about_the_server(
    store: KeyringTokenStore, backend: LimitedKeyring
) -> None:
    store.put(make_tokens("x"))
    names = " ".join(user for _, user in backend.entries)
    assert "mcp.example" not in names and "client-a" not in names


# -- #49: crash at every point of a write or a delete ----------------------------------------


def count_mutations(action: str) -> int:
    probe = LimitedKeyring()
    s = KeyringTokenStore(probe, timeout=30)
    s.put(make_tokens("old", 3000))
    probe.crash_after = 10_000
    if action == "put":
        s.put(make_tokens("new", 2000))
    else:
        s.delete(KEY)
    s.close()
    return 10_000 - probe.crash_after


@pytest.mark.parametrize("action", ["put", "delete"])
def test_a_crash_at_any_point_leaves_old_or_new_and_no_leftovers(action: str) -> None:
    old, new = make_tokens("old", 3000), make_tokens("new", 2000)
    for crash_at in range(count_mutations(action) + 1):
        backend = LimitedKeyring()
        first = KeyringTokenStore(backend, timeout=30)
        first.put(old)
        backend.crash_after = crash_at
        with contextlib.suppress(StorageError):
            first.put(new) if action == "put" else first.delete(KEY)
        first.close()
        backend.crash_after = None

        after = restart(backend)
        got = after.get(KEY)
        assert got in ((old, new) if action == "put" else (old, None)), f"crash at {crash_at}"
        after.put(make_tokens("again", 5000))  # the next write and delete clean up everything
        after.delete(KEY)
        assert backend.entries == {}, f"leftovers after a crash at {crash_at}"
        after.close()


def test_failed_write_keeps_previous_tokens_and_cache(
    store: KeyringTokenStore, backend: LimitedKeyring
) -> None:
    old = make_tokens("old")
    store.put(old)
    backend.crash_after = 1  # first chunk written, then the keyring fails
    with pytest.raises(StorageError):
        store.put(make_tokens("new", 3000))
    backend.crash_after = None
    assert store.get(KEY) == old
    assert restart(backend).get(KEY) == old


# -- #49: corrupt data reads as signed out ---------------------------------------------------


def manifest_name(backend: LimitedKeyring) -> tuple[str, str]:
    return next(k for k in backend.entries if k[1].count("/") == 0)


def corrupt_manifest(backend: LimitedKeyring) -> None:
    backend.entries[manifest_name(backend)] = "{not json"


def drop_a_chunk(backend: LimitedKeyring) -> None:
    del backend.entries[next(k for k in backend.entries if k[1].endswith("/1"))]


def flip_a_chunk(backend: LimitedKeyring) -> None:
    name = next(k for k in backend.entries if k[1].endswith("/0"))
    backend.entries[name] = "X" + backend.entries[name][1:]


def wrong_count(backend: LimitedKeyring) -> None:
    name = manifest_name(backend)
    doc = json.loads(backend.entries[name])
    backend.entries[name] = json.dumps({**doc, "n": "three"})


@pytest.mark.parametrize("damage", [corrupt_manifest, drop_a_chunk, flip_a_chunk, wrong_count])
def test_corrupt_entries_read_as_signed_out_and_can_be_replaced(
    store: KeyringTokenStore,
    backend: LimitedKeyring,
    damage: object,
    caplog: pytest.LogCaptureFixture,
) -> None:
    store.put(make_tokens("x", 3000))
    damage(backend)  # type: ignore[operator]
    fresh = restart(backend)
    assert fresh.get(KEY) is None
    assert "unreadable" in caplog.text
    replacement = make_tokens("y", 100)
    fresh.put(replacement)
    assert restart(backend).get(KEY) == replacement
    fresh.close()


def test_wrong_document_types_read_as_signed_out(backend: LimitedKeyring) -> None:
    from broker.store.chunks import ChunkedEntries
    from broker.store.codec import token_entry_name

    entries = ChunkedEntries(backend, "mcp-oauth-broker")
    bad = {"v": 1, "issuer": KEY.issuer, "client_id": KEY.client_id, "resource": KEY.resource}
    for doc in [
        bad,
        {**bad, "access_token": 5},
        "[]",
        {**bad, "access_token": "a", "expires_at": "x"},
    ]:
        entries.write(token_entry_name(KEY), json.dumps(doc))
        assert restart(backend).get(KEY) is None


def test_entry_of_another_key_is_not_served_for_this_one(backend: LimitedKeyring) -> None:
    """Even if entries were swapped, one server never gets another's tokens."""
    from broker.store.codec import token_entry_name

    store = KeyringTokenStore(backend, timeout=30)
    store.put(make_tokens("other", key=OTHER))
    mine, theirs = token_entry_name(KEY), token_entry_name(OTHER)
    for (service, user), value in list(backend.entries.items()):
        backend.entries[(service, user.replace(theirs, mine))] = value
    assert restart(backend).get(KEY) is None
    store.close()


# -- cache: the hot path never touches the keyring -------------------------------------------


def test_reads_after_the_first_are_served_from_memory(
    store: KeyringTokenStore, backend: LimitedKeyring
) -> None:
    store.put(make_tokens("x", 3000))
    calls = backend.calls
    for _ in range(20):
        assert store.get(KEY) is not None
    assert store.get(OTHER) is None
    assert store.get(OTHER) is None
    assert backend.calls - calls == 1  # the one read of OTHER


def test_reload_sees_what_another_process_stored(backend: LimitedKeyring) -> None:
    mine, theirs = KeyringTokenStore(backend, timeout=30), restart(backend)
    mine.put(make_tokens("one"))
    theirs.put(make_tokens("two"))
    assert label(mine.get(KEY)) == "one"  # cached until told to reload
    assert label(mine.reload(KEY)) == "two"
    assert label(mine.get(KEY)) == "two"
    mine.close()
    theirs.close()


# -- #47: a hanging keyring ------------------------------------------------------------------


def test_hanging_keyring_times_out_and_cached_reads_keep_working() -> None:
    backend = HangingKeyring()
    store = KeyringTokenStore(backend, timeout=0.3)
    old = make_tokens("old")
    store.put(old)
    backend.hang.set()
    try:
        with pytest.raises(StorageTimeout) as first:
            store.put(make_tokens("new"))
        assert isinstance(as_answered(first.value), ServerUnreachable)  # "retry later"
        backend.entered.wait()
        with pytest.raises(StorageTimeout):  # stuck: fails at once instead of queueing
            store.reload(OTHER)
        assert store.get(KEY) == old  # the hot path does not wait on the keyring
    finally:
        backend.hang.clear()
        backend.release.set()
    store.close(wait=60)
    # The put was already running, so it completes once the keyring answers.
    assert label(restart(backend).get(KEY)) == "new"


def test_a_call_given_up_while_queued_never_runs() -> None:
    backend = HangingKeyring()
    store = KeyringTokenStore(backend, timeout=1.0)
    backend.hang.set()
    errors: list[BaseException] = []

    def read() -> None:
        try:
            store.get(OTHER)
        except StorageTimeout as exc:
            errors.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        backend.entered.wait()  # the read is running and stuck; the put queues behind it
        with pytest.raises(StorageTimeout):
            store.put(make_tokens("queued"))
    finally:
        backend.hang.clear()
        backend.release.set()
        reader.join()
    store.close(wait=60)
    assert len(errors) == 1
    assert restart(backend).get(KEY) is None


# -- #48: a locked keyring (fake; the real one is in test_store_secret_service.py) ----------


def test_locked_keyring_raises_storage_locked_and_loses_nothing() -> None:
    backend = RaisingKeyring()
    store = KeyringTokenStore(backend, timeout=30)
    old = make_tokens("old")
    store.put(old)
    backend.error = keyring.errors.KeyringLocked("Failed to unlock the collection!")
    with pytest.raises(StorageLocked) as locked:
        store.put(make_tokens("new"))
    assert isinstance(as_answered(locked.value), ServerUnreachable)  # "retry later"
    assert store.get(KEY) == old  # still served from memory while locked
    with pytest.raises(StorageLocked):
        store.reload(KEY)
    backend.error = None
    assert store.reload(KEY) == old  # nothing lost
    store.put(make_tokens("new"))  # and the retry works
    assert label(restart(backend).get(KEY)) == "new"
    store.close()


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (keyring.errors.NoKeyringError("none"), StorageUnavailable),
        (keyring.errors.InitError("Failed to create the collection"), StorageUnavailable),
        (keyring.errors.PasswordSetError("refused"), StorageError),
        (ConnectionRefusedError(), StorageUnavailable),
        (ValueError(CANARY), StorageError),
    ],
)
def test_keyring_errors_become_storage_errors_without_values(
    error: Exception, expected: type[StorageError]
) -> None:
    backend = RaisingKeyring()
    backend.error = error
    store = KeyringTokenStore(backend, timeout=30)
    with pytest.raises(expected) as raised:
        store.put(make_tokens("x"))
    assert CANARY not in str(raised.value)
    assert raised.value.__cause__ is None and raised.value.__suppress_context__
    store.close()


# -- #46: no usable keyring ------------------------------------------------------------------


class FakeAltKeyring(LimitedKeyring):
    """Stands in for a keyrings.alt file backend."""


FakeAltKeyring.__module__ = "keyrings.alt.file"


@pytest.mark.parametrize(
    "unusable",
    [
        fail.Keyring(),
        null.Keyring(),
        FakeAltKeyring(),
    ],
    ids=["fail", "null", "keyrings.alt"],
)
def test_unusable_backend_is_refused_with_a_fix(unusable: object) -> None:
    store = KeyringTokenStore(unusable, timeout=30)  # type: ignore[arg-type]
    with pytest.raises(StorageUnavailable) as refused:
        store.put(make_tokens("x"))
    message = str(refused.value)
    assert "gnome-keyring" in message and "never" in message.lower()
    with pytest.raises(StorageUnavailable):
        store.get(KEY)
    if isinstance(unusable, LimitedKeyring):
        assert unusable.entries == {}  # not even written to the unsafe backend
    store.close()


def test_secret_service_without_a_bus_is_refused_with_a_fix(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", f"unix:path={tmp_path}/no-bus")
    store = KeyringTokenStore(SecretService.Keyring(), timeout=30)
    with pytest.raises(StorageUnavailable) as refused:
        store.put(make_tokens("x"))
    assert "Secret Service" in str(refused.value)
    store.close()


@pytest.mark.integration
def test_default_backend_without_d_bus_refuses_and_writes_no_file(tmp_path: Path) -> None:
    """A fresh process with no session bus: keyring picks its fail backend; nothing on disk."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DBUS_", "PYTHON_KEYRING"))}
    env.update(
        HOME=str(tmp_path / "home"),
        XDG_CONFIG_HOME=str(tmp_path / "cfg"),
        XDG_DATA_HOME=str(tmp_path / "data"),
        MCP_BROKER_HOME=str(tmp_path / "broker"),
    )
    script = (
        "import time\n"
        "from broker.errors import StorageUnavailable\n"
        "from broker.store import KeyringTokenStore\n"
        "from broker.tokens.tokenset import TokenKey, TokenSet\n"
        "k = TokenKey('https://i', 'c', 'https://r')\n"
        f"t = TokenSet(k, access_token='{CANARY}', expires_at=time.time() + 60)\n"
        "try:\n"
        "    KeyringTokenStore().put(t)\n"
        "except StorageUnavailable as e:\n"
        "    print('REFUSED', e)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.stdout.startswith("REFUSED"), done.stderr
    assert "gnome-keyring-daemon --start" in done.stdout
    assert CANARY not in done.stdout + done.stderr
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert written == []
