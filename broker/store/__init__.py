"""Token storage: the OS keyring in production, memory in tests."""

from broker.store.base import TokenStore
from broker.store.memory import MemoryTokenStore

__all__ = ["MemoryTokenStore", "TokenStore"]
