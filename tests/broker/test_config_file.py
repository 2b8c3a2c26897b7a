"""The config file as the running broker reads it (``ConfigFile``): parsed once, again only when
the file changed; never on the way to a token."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

import broker.config
from broker.config import ConfigFile, ServerConfig, add_server
from broker.errors import ConfigError
from broker.paths import broker_paths
from broker.root import build
from broker.store.memory import MemoryTokenStore
from broker.tokens.tokenset import TokenKey, TokenSet

ISSUER = "https://as.example/pool"
URL = "https://mcp.example/mcp"
OTHER = "https://other.example/mcp"


class CountingLoads:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        real = broker.config.load_config

        def counted(path: Path) -> broker.config.Config:
            self.count += 1
            return real(path)

        monkeypatch.setattr(broker.config, "load_config", counted)


def test_a_token_miss_reads_no_unchanged_config_and_a_changed_file_is_seen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = broker_paths({"MCP_BROKER_HOME": str(tmp_path / "home")}).ensure_private_dirs()
    add_server(paths.config_file, paths.lock_dir, ServerConfig(URL, "client-1", issuer=ISSUER))
    store = MemoryTokenStore()
    key = TokenKey(ISSUER, "client-1", URL)
    store.put(TokenSet(key, "CANARY-access", expires_at=time.time() + 3600))
    loads = CountingLoads(monkeypatch)
    root = build(paths, paths.config_file, store=store)
    try:
        assert root.broker.token(URL).access_token == "CANARY-access"
        first = loads.count
        assert first == 1  # read once

        for _ in range(20):  # each looks the server up in the config first
            root.broker.token(URL, min_valid=0)
            root.broker.servers()
        assert loads.count == first

        # Another process (or the user's editor) changes the file: the next look sees it.
        add_server(paths.config_file, paths.lock_dir, ServerConfig(OTHER, "client-2"))
        assert root.broker.server(OTHER).client_id == "client-2"
        assert loads.count > first
    finally:
        root.close()


def test_a_replaced_file_of_the_same_size_and_time_is_seen(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(f'[[servers]]\nurl = "{URL}"\n')
    config = ConfigFile(path, tmp_path / "locks")
    assert config.load().get_server(URL) is not None

    replacement = tmp_path / "new.toml"
    replacement.write_text(f'[[servers]]\nurl = "{OTHER[:-2]}"\n')  # the same size
    info = path.stat()
    os.utime(replacement, ns=(info.st_atime_ns, info.st_mtime_ns))
    os.replace(replacement, path)  # a new inode: an atomic save

    assert config.load().get_server(OTHER[:-2]) is not None


def test_a_broken_edit_is_refused_and_the_fix_is_seen(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(f'[[servers]]\nurl = "{URL}"\n')
    config = ConfigFile(path, tmp_path / "locks")
    config.load()
    path.write_text("[[servers]\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        config.load()
    path.write_text(f'[[servers]]\nurl = "{OTHER}"\n')
    assert config.load().get_server(OTHER) is not None
