"""Token sets and client secrets in the OS keyring, behind an in-memory cache.

* Entries live under the service ``mcp-oauth-broker``; each token set's name is a hash of its
  (issuer, client id, resource), so two servers or accounts never share an entry (SECURITY #50).
* Values are chunked below Windows' 1,280-character limit with a manifest written last
  (:mod:`broker.store.chunks`, #45, #49). Unreadable data reads as "signed out", with a warning.
* Reads are served from memory once loaded: a Secret Service read costs ~11 ms. The cache is per
  process; call :meth:`KeyringTokenStore.reload` under the cross-process lock before refreshing.
* Where the backend is (or would be) keyring's Secret Service one, reads ask the Secret Service
  directly first (:mod:`broker.store.secret_service`: one connection and one encrypted session per
  read, keyring not loaded) and ask keyring whenever that reader cannot answer exactly as keyring
  would (nothing found, locked, unreachable): unlock prompts, errors and writes are keyring's.
* Every keyring call runs on one worker thread with a bounded wait (#47); a locked keyring raises
  :class:`StorageLocked` and changes nothing (#48); no usable keyring raises
  :class:`StorageUnavailable` with the fix, never a plaintext fallback (#46).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from broker.store import codec
from broker.store.chunks import ChunkedEntries, KeyringLike
from broker.store.codec import CorruptEntry
from broker.store.keyring_backend import (
    backend_name,
    check_usable,
    default_backend,
    reads_secret_service,
    secretstorage_error,
    translated,
)
from broker.store.secret_service import NoAnswer, SecretServiceReader
from broker.store.worker import BoundedWorker
from broker.tokens.tokenset import TokenKey, TokenSet

if TYPE_CHECKING:
    from keyring.backend import KeyringBackend

logger = logging.getLogger(__name__)

SERVICE = "mcp-oauth-broker"
DEFAULT_TIMEOUT = 10.0

T = TypeVar("T")
_SecretKey = tuple[str, str]


class KeyringTokenStore:
    """A :class:`~broker.store.base.TokenStore` and ``ClientSecretStore`` on ``keyring``.

    ``backend`` defaults to keyring's configured one, resolved (and checked) on first use.
    Call :meth:`close` when done; a forgotten store stops its thread when collected.
    """

    def __init__(
        self,
        backend: KeyringBackend | None = None,
        *,
        service: str = SERVICE,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self._backend = backend
        self._service = service
        self._worker = BoundedWorker(f"keyring-{service}", timeout)
        self._lock = threading.Lock()
        self._tokens: dict[TokenKey, TokenSet | None] = {}
        self._secrets: dict[_SecretKey, str | None] = {}

    def __repr__(self) -> str:
        return f"KeyringTokenStore(service={self._service!r}, cached={len(self._tokens)})"

    # -- token sets --------------------------------------------------------------------------

    def get(self, key: TokenKey) -> TokenSet | None:
        """The stored tokens (from memory when already loaded), None when signed out."""
        with self._lock:
            if key in self._tokens:
                return self._tokens[key]
        return self.reload(key)

    def reload(self, key: TokenKey) -> TokenSet | None:
        """Read ``key`` from the keyring, bypassing and then refreshing the cache."""
        return self._run_read(lambda entries: self._load_tokens(entries, key), "read tokens")

    def put(self, tokens: TokenSet) -> None:
        """Store durably; when this returns, a restart reads these tokens back.

        On error the previously stored tokens are intact (unless the error is a timeout, whose
        outcome is unknown) and the caller still holds ``tokens`` to retry with.
        """
        name = codec.token_entry_name(tokens.key)
        text = codec.encode_tokens(tokens)
        self._run(
            lambda entries: self._write(entries, name, text, tokens.key, tokens), "store tokens"
        )

    def delete(self, key: TokenKey) -> None:
        """Remove every keyring entry of ``key``, chunks included (#51)."""
        name = codec.token_entry_name(key)
        self._run(lambda entries: self._remove(entries, name, key), "delete tokens")

    # -- client secrets of confidential clients ----------------------------------------------

    def get_client_secret(self, issuer: str, client_id: str) -> str | None:
        with self._lock:
            if (issuer, client_id) in self._secrets:
                return self._secrets[(issuer, client_id)]
        return self._run_read(
            lambda e: self._load_secret(e, issuer, client_id), "read a client secret"
        )

    def put_client_secret(self, issuer: str, client_id: str, secret: str) -> None:
        name = codec.client_secret_entry_name(issuer, client_id)
        text = codec.encode_client_secret(issuer, client_id, secret)
        key = (issuer, client_id)
        self._run(lambda e: self._write(e, name, text, key, secret), "store a client secret")

    def delete_client_secret(self, issuer: str, client_id: str) -> None:
        name = codec.client_secret_entry_name(issuer, client_id)
        key = (issuer, client_id)
        self._run(lambda e: self._remove(e, name, key), "delete a client secret")

    def close(self, wait: float = 0.0) -> None:
        """Stop the keyring thread once queued calls are done, waiting up to ``wait`` s."""
        self._worker.close(wait)

    # -- on the worker thread ----------------------------------------------------------------

    def _run(self, job: Callable[[ChunkedEntries], T], what: str) -> T:
        return self._worker.call(lambda: translated(lambda: job(self._entries())), what)

    def _run_read(self, job: Callable[[ChunkedEntries], T], what: str) -> T:
        """A read job: through the Secret Service reader first where it reads what the backend
        would (a store given its backend never uses it), else as :meth:`_run`."""

        def read() -> T:
            if self._backend is not None or not reads_secret_service():
                return job(self._entries())
            reader = SecretServiceReader(self._worker.timeout)
            try:
                return job(ChunkedEntries(_ReaderFirst(reader, self._keyring), self._service))
            finally:
                reader.close()

        return self._worker.call(lambda: translated(read), what)

    def _entries(self) -> ChunkedEntries:
        return ChunkedEntries(self._keyring(), self._service)

    def _keyring(self) -> KeyringBackend:
        backend = self._backend if self._backend is not None else default_backend()
        check_usable(backend)
        logger.debug("Using keyring backend %s", backend_name(backend))
        return backend

    def _load_tokens(self, entries: ChunkedEntries, key: TokenKey) -> TokenSet | None:
        try:
            text = _read(entries, codec.token_entry_name(key))
            tokens = None if text is None else codec.decode_tokens(text, key)
        except CorruptEntry as exc:
            logger.warning(
                "Stored tokens for %s (issuer %s) are unreadable: %s; treating as signed out",
                key.resource,
                key.issuer,
                exc,
            )
            tokens = None
        self._remember(key, tokens)
        return tokens

    def _load_secret(self, entries: ChunkedEntries, issuer: str, client_id: str) -> str | None:
        try:
            text = _read(entries, codec.client_secret_entry_name(issuer, client_id))
            secret = None if text is None else codec.decode_client_secret(text, issuer, client_id)
        except CorruptEntry as exc:
            logger.warning("Stored client secret for %s is unreadable: %s", issuer, exc)
            secret = None
        self._remember((issuer, client_id), secret)
        return secret

    def _write(
        self,
        entries: ChunkedEntries,
        name: str,
        text: str,
        key: TokenKey | _SecretKey,
        value: TokenSet | str,
    ) -> None:
        staged = entries.stage(name, text)  # a failure here leaves the old value in place
        try:
            entries.commit(staged)
        except BaseException:
            self._forget(key)  # the manifest write may or may not have landed
            raise
        self._remember(key, value)

    def _remove(self, entries: ChunkedEntries, name: str, key: TokenKey | _SecretKey) -> None:
        try:
            entries.remove(name)
        except BaseException:
            self._forget(key)
            raise
        self._remember(key, None)

    def _remember(self, key: TokenKey | _SecretKey, value: TokenSet | str | None) -> None:
        with self._lock:
            if isinstance(key, TokenKey):
                assert value is None or isinstance(value, TokenSet)
                self._tokens[key] = value
            else:
                assert value is None or isinstance(value, str)
                self._secrets[key] = value

    def _forget(self, key: TokenKey | _SecretKey) -> None:
        with self._lock:
            if isinstance(key, TokenKey):
                self._tokens.pop(key, None)
            else:
                self._secrets.pop(key, None)


class _ReaderFirst:
    """The store's reads: the Secret Service reader's answer when it has one, else keyring's
    (resolved, checked and loaded only then). Writes are keyring's."""

    def __init__(self, reader: SecretServiceReader, keyring: Callable[[], KeyringLike]) -> None:
        self._reader = reader
        self._resolve = keyring
        self._keyring: KeyringLike | None = None

    def get_password(self, service: str, username: str) -> str | None:
        try:
            return self._reader.get_password(service, username)
        except NoAnswer as exc:
            logger.debug("Secret Service read left to keyring (%s)", exc)
        return self._backend().get_password(service, username)

    def set_password(self, service: str, username: str, password: str) -> None:
        self._backend().set_password(service, username, password)

    def delete_password(self, service: str, username: str) -> None:
        self._backend().delete_password(service, username)

    def _backend(self) -> KeyringLike:
        if self._keyring is None:
            self._keyring = self._resolve()
        return self._keyring


#: Reads of an entry that another process replaced meanwhile, before giving up.
_READ_ATTEMPTS = 3


def _read(entries: ChunkedEntries, name: str) -> str | None:
    """Read ``name``, again if another process replaced the item between the Secret Service's
    search and the secret's fetch (``ItemNotFoundException``): a writer, not a dead keyring."""
    for attempt in range(1, _READ_ATTEMPTS + 1):
        try:
            return entries.read(name)
        except Exception as exc:
            if secretstorage_error(exc) != "ItemNotFoundException" or attempt == _READ_ATTEMPTS:
                raise
            logger.debug("a keyring entry was replaced while being read; reading it again")
    return None  # not reached
