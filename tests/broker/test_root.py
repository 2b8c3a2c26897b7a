"""The composition root: what ``build`` makes, and when the HTTP sender is made."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from broker.config import ServerConfig
from broker.paths import broker_paths
from broker.root import LazySender, build
from broker.store.memory import MemoryTokenStore


class FakeSender:
    def __init__(self, made: list[FakeSender]) -> None:
        made.append(self)
        self.closed = False

    def __call__(self, request: Any) -> Any:
        return ("answer to", request)

    def close(self) -> None:
        self.closed = True


def test_the_sender_is_made_on_first_use_once_and_closed_with_the_broker(tmp_path: Path) -> None:
    made: list[FakeSender] = []
    sender = LazySender(lambda: FakeSender(made))  # type: ignore[arg-type,return-value]
    paths = broker_paths({"MCP_BROKER_HOME": str(tmp_path / "home")})
    root = build(paths, paths.config_file, store=MemoryTokenStore(), send=sender)

    root.broker.add(ServerConfig("https://mcp.example/mcp"))
    root.broker.status()
    assert made == []  # configuring and reading the status send nothing

    root.broker.prepare_refresh()
    root.broker.prepare_refresh()
    assert sender("request") == ("answer to", "request")  # type: ignore[arg-type,comparison-overlap]
    assert len(made) == 1

    root.close()
    assert made[0].closed


def test_the_root_hands_the_broker_its_parts(tmp_path: Path) -> None:
    paths = broker_paths({"MCP_BROKER_HOME": str(tmp_path / "home")})
    store = MemoryTokenStore()
    root = build(paths, paths.config_file, store=store)
    try:
        assert root.broker.store is store
        assert root.broker.config is root.config and root.config.path == paths.config_file
        assert root.refresher is root.refresher  # one, made on first use
        assert root.settings.api_port == 0 and root.settings.log_level is None
    finally:
        root.close()
