"""The Secret Service reader's cryptography, and when the store may use it (no D-Bus here)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import SimpleNamespace

import keyring.core
import keyring.util.platform_
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from keyring.backends import SecretService, null
from secretstorage.dhcrypto import DH_PRIME_1024
from secretstorage.dhcrypto import Session as SecretStorageSession

from broker.store import keyring_backend
from broker.store.keyring_backend import (
    SECRET_SERVICE,
    default_backend,
    keyringrc_paths,
    reads_secret_service,
)
from broker.store.secret_service import (
    DH_PRIME,
    NoAnswer,
    SecretServiceReader,
    _decrypt,
    _hkdf_sha256,
)
from tests.support.keyrings import LimitedKeyring


def encrypt(key: bytes, iv: bytes, padded: bytes) -> bytes:
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return encryptor.update(padded) + encryptor.finalize()


def test_hkdf_is_rfc_5869_test_case_3() -> None:
    """SHA-256, no salt, no info (RFC 5869 A.3), the derivation the specification names."""
    okm = _hkdf_sha256(bytes([0x0B]) * 22, 42)
    assert okm.hex() == (
        "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"
    )


def test_session_key_is_the_one_secretstorage_derives() -> None:
    """The group and the key derivation are the ones keyring's backend (secretstorage) uses, so
    the daemon derives the same key for either client."""
    assert DH_PRIME == DH_PRIME_1024
    theirs = SecretStorageSession()
    ours_private = int.from_bytes(os.urandom(32), "big")
    ours_public = pow(2, ours_private, DH_PRIME)
    theirs.set_server_public_key(ours_public)
    shared = pow(theirs.my_public_key, ours_private, DH_PRIME).to_bytes(128, "big")
    assert _hkdf_sha256(shared, 16) == theirs.aes_key


def test_decrypt_strips_checked_pkcs7_padding() -> None:
    key, iv = os.urandom(16), os.urandom(16)
    for text in (b"", b"a", b"x" * 15, b"y" * 16, "caf\u00e9".encode() * 50):
        pad = 16 - len(text) % 16
        assert _decrypt(key, iv, encrypt(key, iv, text + bytes([pad]) * pad)) == text


@pytest.mark.parametrize(
    "padded",
    [
        b"x" * 15 + b"\x00",
        b"x" * 15 + b"\x11",
        b"x" * 14 + b"\x01\x02",
        b"x" * 13 + b"\x02\x03\x03",
    ],
    ids=["zero", "too-long", "mismatch", "short-run"],
)
def test_decrypt_refuses_a_bad_padding(padded: bytes) -> None:
    key, iv = os.urandom(16), os.urandom(16)
    with pytest.raises(NoAnswer):
        _decrypt(key, iv, encrypt(key, iv, padded))


@pytest.mark.parametrize(
    ("iv", "ciphertext"), [(b"i" * 15, b"c" * 16), (b"i" * 16, b""), (b"i" * 16, b"c" * 17)]
)
def test_decrypt_refuses_what_is_not_an_aes_cbc_message(iv: bytes, ciphertext: bytes) -> None:
    with pytest.raises(NoAnswer):
        _decrypt(b"k" * 16, iv, ciphertext)


def test_no_session_bus_is_no_answer(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", f"unix:path={tmp_path}/no-bus")
    reader = SecretServiceReader(timeout=5)
    with pytest.raises(NoAnswer) as refused:
        reader.get_password("svc", "user")
    reader.close()
    assert "no-bus" not in str(refused.value)  # an error class, not the address


# -- when the store may read the Secret Service directly -------------------------------------


@pytest.fixture
def nothing_configured(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A Linux desktop where keyring is not configured and has chosen no backend yet."""
    for name in list(os.environ):
        if name.startswith(("PYTHON_KEYRING", "KEYRING_PROPERTY_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CURRENT_DESKTOP", "GNOME")
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setitem(sys.modules, "keyring.core", SimpleNamespace(_keyring_backend=None))
    return tmp_path


def test_reads_directly_with_nothing_configured(nothing_configured: Path) -> None:
    assert reads_secret_service()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PYTHON_KEYRING_BACKEND", "keyring.backends.null.Keyring"),
        ("PYTHON_KEYRING_BACKEND", "keyrings.alt.file.PlaintextKeyring"),
        ("KEYRING_PROPERTY_PREFERRED_COLLECTION", "/org/freedesktop/secrets/collection/other"),
        ("KEYRING_PROPERTY_SCHEME", "KeePassXC"),
        ("XDG_CURRENT_DESKTOP", "KDE"),
        ("XDG_CURRENT_DESKTOP", "ubuntu:KDE"),
    ],
)
def test_any_other_configuration_goes_through_keyring(
    nothing_configured: Path, monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    assert not reads_secret_service()


def test_keyring_configured_to_the_secret_service_reads_directly(
    nothing_configured: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", SECRET_SERVICE)
    assert reads_secret_service()


@pytest.mark.parametrize("where", ["config", "data"])
def test_a_keyringrc_goes_through_keyring(nothing_configured: Path, where: str) -> None:
    rc = nothing_configured / where / "python_keyring" / "keyringrc.cfg"
    rc.parent.mkdir(parents=True)
    rc.write_text("[backend]\ndefault-keyring=keyring.backends.SecretService.Keyring\n")
    assert not reads_secret_service()


def test_keyringrc_paths_are_where_keyring_looks(nothing_configured: Path) -> None:
    paths = keyringrc_paths()
    assert keyring.core._config_path() in paths
    assert keyring.util.platform_.data_root() / "keyringrc.cfg" in paths  # the old location


@pytest.mark.parametrize("platform", ["darwin", "win32"])
def test_not_on_macos_or_windows(
    nothing_configured: Path, monkeypatch: pytest.MonkeyPatch, platform: str
) -> None:
    monkeypatch.setattr(sys, "platform", platform)
    assert not reads_secret_service()


def test_a_backend_this_process_chose_decides(
    nothing_configured: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    core = sys.modules["keyring.core"]
    monkeypatch.setattr(core, "_keyring_backend", SecretService.Keyring())
    assert reads_secret_service()
    other_collection = SecretService.Keyring()
    other_collection.preferred_collection = "/org/freedesktop/secrets/collection/other"
    monkeypatch.setattr(core, "_keyring_backend", other_collection)
    assert not reads_secret_service()
    monkeypatch.setattr(core, "_keyring_backend", null.Keyring())
    assert not reads_secret_service()


def test_default_backend_is_the_one_this_process_set(monkeypatch: pytest.MonkeyPatch) -> None:
    """keyring.set_keyring() (the demo's temporary keyring, tests) is respected as before."""
    chosen = LimitedKeyring()
    monkeypatch.setattr(keyring.core, "_keyring_backend", chosen)
    assert default_backend() is chosen


def test_default_backend_asks_keyring_when_configured(
    nothing_configured: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "keyring.core", keyring.core)
    monkeypatch.setattr(keyring.core, "_keyring_backend", None)
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.null.Keyring")
    assert isinstance(default_backend(), null.Keyring)
    assert keyring_backend._keyring_decides()
