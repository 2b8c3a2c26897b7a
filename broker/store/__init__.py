"""Token storage: the OS keyring in production, memory in tests."""

from broker.store.base import ClientSecretStore, TokenStore
from broker.store.keyring_store import KeyringTokenStore
from broker.store.memory import MemoryTokenStore

__all__ = ["ClientSecretStore", "KeyringTokenStore", "MemoryTokenStore", "TokenStore"]
