"""Sign-in stamps: how one broker process tells the others that a key was signed in or out.

The tray app keeps the tokens it serves in memory; ``mcp-broker logout URL`` runs in another
process. Each sign-in and sign-out writes a new random stamp to a small file per key (atomically,
beside the locks); a token service compares the stamp it last saw with the file at most once per
recheck interval and, when it changed, forgets what it holds for the key and reads the store
again. So a sign-out anywhere stops every process handing out the key's token within about a
second, and a sign-in anywhere is picked up as fast, without polling the keyring.

The file holds random bytes only: nothing about the key or its tokens (its name is a digest).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
import time
from pathlib import Path
from typing import Protocol

from broker.paths import ensure_private_dir, write_private_file
from broker.tokens.tokenset import TokenKey

logger = logging.getLogger(__name__)

_REPLACE_ATTEMPTS = 5


class SignInStamps(Protocol):
    def bump(self, key: TokenKey) -> bytes | None:
        """Write a new stamp for ``key`` and return it (None if it could not be written)."""
        ...

    def read(self, key: TokenKey) -> bytes | None:
        """The current stamp for ``key``; None when there is none (or it cannot be read)."""
        ...


class FileStamps:
    """One file per key in ``directory`` (0700), replaced atomically on every bump."""

    def __init__(self, directory: Path) -> None:
        self._dir = directory
        self._lock = threading.Lock()

    def bump(self, key: TokenKey) -> bytes | None:
        stamp = secrets.token_bytes(16)
        try:
            with self._lock:
                ensure_private_dir(self._dir)
                self._replace(self._path(key), stamp)
        except OSError as exc:
            # Other processes then see the change later (when their token runs out), as before.
            logger.warning("could not tell other broker processes about a sign-in change: %s", exc)
            return None
        return stamp

    @staticmethod
    def _replace(path: Path, stamp: bytes) -> None:
        # On Windows a file another process has open for its once-a-second read cannot be
        # replaced for that instant (PermissionError): try again a few times.
        for attempt in range(_REPLACE_ATTEMPTS):
            try:
                write_private_file(path, stamp)
                return
            except PermissionError:
                if attempt == _REPLACE_ATTEMPTS - 1:
                    raise
                time.sleep(0.02)

    def read(self, key: TokenKey) -> bytes | None:
        try:
            with open(self._path(key), "rb") as f:
                return f.read(64)
        except OSError:
            return None

    def _path(self, key: TokenKey) -> Path:
        name = f"signin\n{key.issuer}\n{key.client_id}\n{key.resource}"
        return self._dir / (hashlib.sha256(name.encode()).hexdigest()[:32] + ".stamp")
