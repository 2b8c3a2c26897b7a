"""The token store contract: every backend (OS keyring, in-memory) satisfies it.

``tests/broker/store/test_contract.py`` runs the same tests against every backend.
"""

from __future__ import annotations

from typing import Protocol

from broker.tokens.tokenset import TokenKey, TokenSet


class TokenStore(Protocol):
    """Durable storage of token sets, keyed by (issuer, client id, resource).

    ``get`` returns None for a missing *or unreadable* entry (corrupt data means signed out).
    Implementations raise :class:`broker.errors.StorageError` subclasses when the store itself
    cannot be used (no keyring, locked, timed out).
    """

    def get(self, key: TokenKey) -> TokenSet | None: ...

    def reload(self, key: TokenKey) -> TokenSet | None:
        """Like ``get`` but from durable storage, bypassing any cache: another process may have
        refreshed the tokens. Use it under the cross-process refresh lock."""
        ...

    def put(self, tokens: TokenSet) -> None: ...

    def delete(self, key: TokenKey) -> None: ...


class ClientSecretStore(Protocol):
    """Secrets of confidential clients, bound to the issuer that issued the client id.

    Client secrets never live in the config file; the ``client_secret`` of a server goes here.
    """

    def get_client_secret(self, issuer: str, client_id: str) -> str | None: ...

    def put_client_secret(self, issuer: str, client_id: str, secret: str) -> None: ...

    def delete_client_secret(self, issuer: str, client_id: str) -> None: ...
