"""The store's direct Secret Service reads, on a real Secret Service (gnome-keyring in a private
D-Bus session): the same answers as keyring's backend, over an encrypted session, keyring's
prompts and messages whenever the reader cannot answer, and keyring's configuration obeyed."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from broker.errors import StorageLocked, StorageUnavailable
from broker.store import KeyringTokenStore, keyring_store
from broker.store.secret_service import NoAnswer, SecretServiceReader
from broker.tokens.tokenset import TokenKey, TokenSet
from tests.support.secret_service import SecretServiceHandle

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
CANARY = "CANARY-ssreader-51c7"
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
def reader(secret_service: SecretServiceHandle) -> Iterator[SecretServiceReader]:
    made = SecretServiceReader(timeout=30)
    yield made
    made.close()


class Replies:
    """Every D-Bus reply body the reader received."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.bodies: list[Any] = []
        original = SecretServiceReader._call_on

        def recording(reader: SecretServiceReader, *args: Any) -> Any:
            body = original(reader, *args)
            self.bodies.append(body)
            return body

        monkeypatch.setattr(SecretServiceReader, "_call_on", recording)

    def raw(self) -> bytes:
        return repr(self.bodies).encode() + b"".join(
            bytes(part) for body in self.bodies for part in _byte_parts(body)
        )


def _byte_parts(value: Any) -> Iterator[bytes]:
    if isinstance(value, bytes | bytearray):
        yield bytes(value)
    elif isinstance(value, tuple | list):
        for part in value:
            yield from _byte_parts(part)


def test_reads_what_keyrings_backend_stored_over_an_encrypted_session(
    secret_service: SecretServiceHandle,
    reader: SecretServiceReader,
    service: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    replies = Replies(monkeypatch)
    values = {
        "plain": f"{CANARY}-plain",
        "unicode": f"{CANARY}-caf\u00e9-\u2603",
        "long": "z" * 5000,
    }
    for name, value in values.items():
        secret_service.backend.set_password(service, name, value)

    assert {name: reader.get_password(service, name) for name in values} == values
    assert secret_service.backend.get_password(service, "plain") == values["plain"]
    # The secrets crossed the bus encrypted: no reply carried one in clear.
    assert replies.bodies and CANARY.encode() not in replies.raw()
    assert b"z" * 64 not in replies.raw()


def test_what_it_cannot_find_is_no_answer(
    secret_service: SecretServiceHandle, reader: SecretServiceReader, service: str
) -> None:
    secret_service.backend.set_password(service, "present", "x")
    with pytest.raises(NoAnswer):
        reader.get_password(service, "absent")
    with pytest.raises(NoAnswer):
        reader.get_password(f"{service}-other", "present")


def test_a_locked_collection_is_no_answer_and_stays_locked(
    isolated_secret_service: SecretServiceHandle, service: str
) -> None:
    isolated_secret_service.backend.set_password(service, "name", f"{CANARY}-locked")
    isolated_secret_service.lock()
    reader = SecretServiceReader(timeout=30)
    try:
        with pytest.raises(NoAnswer) as refused:
            reader.get_password(service, "name")
    finally:
        reader.close()
    assert CANARY not in str(refused.value)
    assert isolated_secret_service.is_locked()  # the reader never unlocks or prompts


def test_the_store_reads_directly_and_keyring_only_writes(
    secret_service: SecretServiceHandle, service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store on keyring's (Secret Service) backend: large tokens written through keyring come
    back through the reader, with no keyring backend resolved for the read."""
    writer = KeyringTokenStore(service=service, timeout=30)
    tokens = make_tokens("big", 16 * 1024)
    writer.put(tokens)
    writer.close()

    resolved: list[object] = []
    original = keyring_store.default_backend
    monkeypatch.setattr(keyring_store, "default_backend", lambda: resolved.append(1) or original())
    reader_store = KeyringTokenStore(service=service, timeout=30)
    try:
        got = reader_store.get(KEY)
    finally:
        reader_store.close()
    assert got == tokens
    assert resolved == []  # keyring was not asked


def test_the_store_on_a_locked_keyring_prompts_through_keyring_as_before(
    isolated_secret_service: SecretServiceHandle, service: str
) -> None:
    """Locked: the reader cannot answer, keyring asks to unlock (dismissed here: headless), the
    store says "locked"; unlocked again, the same store reads the tokens."""
    store = KeyringTokenStore(service=service, timeout=30)
    try:
        tokens = make_tokens("locked")
        store.put(tokens)
        isolated_secret_service.lock()
        with pytest.raises(StorageLocked) as locked:
            store.reload(KEY)
        assert CANARY not in str(locked.value)
        isolated_secret_service.unlock()
        assert store.reload(KEY) == tokens
    finally:
        store.close()


# A user's process with no broker running: the store reads the tokens another process stored.
USER_READ = """
import json, sys
from broker.store import KeyringTokenStore
from broker.tokens.tokenset import TokenKey

store = KeyringTokenStore(service=sys.argv[1], timeout=30)
try:
    tokens = store.get(TokenKey(*sys.argv[2:5]))
    print(json.dumps([tokens and tokens.access_token, "keyring" in sys.modules,
                      "secretstorage" in sys.modules]))
except Exception as exc:
    print(json.dumps([type(exc).__name__, str(exc)]))
store.close()
"""


def user_read(
    secret_service: SecretServiceHandle, service: str, tmp_path: Path, **env: str
) -> list[Any]:
    import json

    environ = {
        k: v
        for k, v in secret_service.daemons.environ().items()
        if not k.startswith("PYTHON_KEYRING")
    }
    environ.update(
        HOME=str(tmp_path / "home"),
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        XDG_DATA_HOME=str(tmp_path / "data"),
        PYTHONPATH=str(ROOT),
        **env,
    )
    done = subprocess.run(
        [sys.executable, "-c", USER_READ, service, KEY.issuer, KEY.client_id, KEY.resource],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: list[Any] = json.loads(done.stdout)
    return result


def test_a_process_with_nothing_configured_reads_without_loading_keyring(
    secret_service: SecretServiceHandle, service: str, tmp_path: Path
) -> None:
    tokens = make_tokens("fresh-process")
    store = KeyringTokenStore(secret_service.backend, service=service, timeout=30)
    store.put(tokens)
    store.close()

    assert user_read(secret_service, service, tmp_path) == [tokens.access_token, False, False]


def test_keyrings_configuration_is_obeyed_even_with_the_tokens_in_the_secret_service(
    secret_service: SecretServiceHandle, service: str, tmp_path: Path
) -> None:
    """keyring configured to its null backend: the broker refuses, as before, though the Secret
    Service holds the tokens; a keyringrc naming another collection is not read around either."""
    store = KeyringTokenStore(secret_service.backend, service=service, timeout=30)
    store.put(make_tokens("configured"))
    store.close()

    refused = user_read(
        secret_service, service, tmp_path, PYTHON_KEYRING_BACKEND="keyring.backends.null.Keyring"
    )
    assert refused[0] == StorageUnavailable.__name__ and "null backend" in refused[1]
    assert CANARY not in refused[1]

    rc = tmp_path / "config" / "python_keyring" / "keyringrc.cfg"
    rc.parent.mkdir(parents=True)
    rc.write_text("[backend]\ndefault-keyring=keyring.backends.null.Keyring\n")
    refused = user_read(secret_service, service, tmp_path)
    assert refused[0] == StorageUnavailable.__name__ and CANARY not in refused[1]
