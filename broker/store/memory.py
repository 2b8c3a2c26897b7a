"""An in-memory token store, for unit tests and ``--ephemeral`` runs."""

from __future__ import annotations

import threading

from broker.tokens.tokenset import TokenKey, TokenSet


class MemoryTokenStore:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[TokenKey, TokenSet] = {}
        self._secrets: dict[tuple[str, str], str] = {}

    def __repr__(self) -> str:
        return f"MemoryTokenStore(entries={len(self._items)})"

    def get(self, key: TokenKey) -> TokenSet | None:
        with self._lock:
            return self._items.get(key)

    reload = get

    def put(self, tokens: TokenSet) -> None:
        with self._lock:
            self._items[tokens.key] = tokens

    def delete(self, key: TokenKey) -> None:
        with self._lock:
            self._items.pop(key, None)

    def get_client_secret(self, issuer: str, client_id: str) -> str | None:
        with self._lock:
            return self._secrets.get((issuer, client_id))

    def put_client_secret(self, issuer: str, client_id: str, secret: str) -> None:
        with self._lock:
            self._secrets[(issuer, client_id)] = secret

    def delete_client_secret(self, issuer: str, client_id: str) -> None:
        with self._lock:
            self._secrets.pop((issuer, client_id), None)

    def close(self, wait: float = 0.0) -> None:
        pass
