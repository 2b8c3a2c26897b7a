"""A keyring read racing another process's write: the Secret Service may say the item it just
listed is gone (``ItemNotFoundException``). That is a writer, not a dead keyring: read again."""

from __future__ import annotations

import pytest
from secretstorage.exceptions import ItemNotFoundException

from broker.errors import StorageUnavailable
from broker.store import KeyringTokenStore
from broker.tokens.tokenset import TokenKey, TokenSet
from tests.support.keyrings import LimitedKeyring

KEY = TokenKey("https://as.example/pool", "client", "https://mcp.example/mcp")


class ReplacedWhileRead(LimitedKeyring):
    """Raises ``ItemNotFoundException`` from the next ``vanish`` reads, as gnome-keyring does
    when a concurrent writer replaced the item between search and fetch."""

    def __init__(self) -> None:
        super().__init__()
        self.vanish = 0

    def get_password(self, service: str, username: str) -> str | None:
        if self.vanish > 0:
            self.vanish -= 1
            raise ItemNotFoundException("No such item")
        return super().get_password(service, username)


def test_an_item_replaced_while_read_is_read_again() -> None:
    backend = ReplacedWhileRead()
    store = KeyringTokenStore(backend)
    try:
        store.put(TokenSet(KEY, "CANARY-access", expires_at=4e9, refresh_token="CANARY-refresh"))
        backend.vanish = 1
        again = store.reload(KEY)
    finally:
        store.close()
    assert again is not None and again.access_token == "CANARY-access"


def test_an_item_that_keeps_vanishing_is_still_an_error() -> None:
    backend = ReplacedWhileRead()
    store = KeyringTokenStore(backend)
    try:
        backend.vanish = 10
        with pytest.raises(StorageUnavailable):
            store.reload(KEY)
    finally:
        store.close()
