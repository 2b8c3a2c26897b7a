"""A child process for the cross-process single-flight test: one TokenService over a shared
file store and the real file lock; prints the access token it got.

    python -m tests.broker.tokens.service_child DIR
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from broker.errors import InvalidGrant
from broker.filelock import lock_for
from broker.paths import write_private_file
from broker.tokens.service import TokenService
from broker.tokens.tokenset import TokenKey, TokenSet
from tests.broker.tokens.service_fakes import KEY


class FileStore:
    """One JSON file per store, replaced atomically (a test stand-in for the keyring)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def get(self, key: TokenKey) -> TokenSet | None:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        return TokenSet(key=key, **data)

    reload = get

    def put(self, tokens: TokenSet) -> None:
        data = {
            "access_token": tokens.access_token,
            "expires_at": tokens.expires_at,
            "refresh_token": tokens.refresh_token,
            "obtained_at": tokens.obtained_at,
        }
        write_private_file(self.path, json.dumps(data))

    def delete(self, key: TokenKey) -> None:
        self.path.unlink(missing_ok=True)


def rotating_grant(root: Path):  # type: ignore[no-untyped-def]
    """The authorization server: logs each refresh; the refresh token rotates, so a second
    refresh with the same old token is refused as a real server would."""

    def grant(tokens: TokenSet) -> TokenSet:
        with lock_for("as", root / "as-lock", timeout=30):
            current = (root / "valid-refresh").read_text()
            with (root / "refresh-log").open("a") as log:
                log.write(f"{os.getpid()}\n")
            if tokens.refresh_token != current:
                raise InvalidGrant("refresh token already rotated", error="invalid_grant")
            n = len((root / "refresh-log").read_text().splitlines())
            (root / "valid-refresh").write_text(f"refresh-{n}")
        time.sleep(0.2)  # a slow server widens the window a second refresher would use
        now = time.time()
        return TokenSet(
            tokens.key, f"access-{n}", now + 3600, refresh_token=f"refresh-{n}", obtained_at=now
        )

    return grant


def main() -> int:
    root = Path(sys.argv[1])
    service = TokenService(
        FileStore(root / "tokens.json"),
        rotating_grant(root),
        lock_factory=lambda key: lock_for("refresh", root / "locks", timeout=60),
    )
    go = root / "go"
    while not go.exists():  # start together
        time.sleep(0.01)
    print(service.get_token(KEY).access_token, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
