"""The token store contract: every backend (OS keyring, in-memory) satisfies it."""

from __future__ import annotations

from typing import Protocol

from broker.tokens import TokenKey, TokenSet


class TokenStore(Protocol):
    """Durable storage of token sets, keyed by (issuer, client id, resource).

    ``get`` returns None for a missing *or unreadable* entry (corrupt data means signed out).
    Implementations raise :class:`broker.errors.StorageError` subclasses when the store itself
    cannot be used (no keyring, locked, timed out).
    """

    def get(self, key: TokenKey) -> TokenSet | None: ...

    def put(self, tokens: TokenSet) -> None: ...

    def delete(self, key: TokenKey) -> None: ...
