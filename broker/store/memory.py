"""An in-memory token store, for unit tests and ``--ephemeral`` runs."""

from __future__ import annotations

import threading

from broker.tokens import TokenKey, TokenSet


class MemoryTokenStore:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[TokenKey, TokenSet] = {}

    def get(self, key: TokenKey) -> TokenSet | None:
        with self._lock:
            return self._items.get(key)

    def put(self, tokens: TokenSet) -> None:
        with self._lock:
            self._items[tokens.key] = tokens

    def delete(self, key: TokenKey) -> None:
        with self._lock:
            self._items.pop(key, None)
