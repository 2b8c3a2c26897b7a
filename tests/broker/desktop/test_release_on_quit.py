"""Quit gives back everything the broker held: its threads, file descriptors and sockets.

The real runner (``BrokerSession``, what ``mcp-broker run --headless`` runs) in this process,
with real work done while it runs: a token served through the token API from the real Secret
Service. What the process holds is counted from /proc before the start and after Quit.
"""

from __future__ import annotations

import gc
import os
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from broker.api.endpoint import request_token
from broker.config import ServerConfig, add_server
from broker.desktop.instance import hold_instance
from broker.desktop.menu import Action, Command
from broker.desktop.runner import BrokerSession
from broker.paths import broker_paths
from broker.store.keyring_store import KeyringTokenStore
from broker.tokens.tokenset import TokenKey, TokenSet
from tests.support.desktop import wait_for
from tests.support.secret_service import SecretServiceHandle

pytestmark = pytest.mark.integration

URL = "https://a.example/mcp"
KEY = TokenKey("https://as.example/pool", "client-1", URL)


def held() -> Counter[str]:
    """Open file descriptors by kind (socket, pipe, file, ...) and the OS threads, from /proc."""
    gc.collect()  # objects already dropped may still hold a descriptor until collected
    kinds: Counter[str] = Counter()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # the descriptor listdir itself used, now closed
            continue
        kinds[target.split(":")[0] if ":" in target else "file"] += 1
    kinds["threads"] = len(os.listdir("/proc/self/task"))
    return kinds


def test_quit_releases_every_thread_socket_and_file_the_broker_held(
    secret_service: SecretServiceHandle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MCP_BROKER_HOME", str(tmp_path / "home"))
    paths = broker_paths().ensure_private_dirs()
    add_server(paths.config_file, paths.lock_dir, ServerConfig(URL, "client-1", issuer=KEY.issuer))
    store = KeyringTokenStore()
    store.put(TokenSet(KEY, "CANARY-access", expires_at=time.time() + 3600))
    store.close(wait=5)
    before, threads_before = held(), set(threading.enumerate())

    with hold_instance(paths) as instance:
        session = BrokerSession(instance, None, None)
        running = threading.Thread(target=session.run, args=(True,), name="test-broker")
        running.start()
        wait_for("the token API", lambda: paths.endpoint_file.exists() and session.api)
        assert request_token(URL, paths=paths).access_token == "CANARY-access"
        while_running = held()
        session.controller.post(Command(Action.QUIT))
        running.join(30)
    assert not running.is_alive()

    after = held()
    assert while_running["socket"] > before["socket"]  # the count sees what the broker opens
    assert [t.name for t in threading.enumerate() if t not in threads_before] == []
    assert after == before, f"held before the start: {before}; after Quit: {after}"
