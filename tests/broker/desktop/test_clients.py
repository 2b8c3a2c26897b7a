""" "Connect a client…" with the user's real files: the clients ``configure --detect`` finds,
ticked once ``configure`` has written the broker's entries for every server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from broker.desktop.clients import DetectedClients
from broker.desktop.menu import ClientChoice
from broker.integrations.clientconfigs import served_url
from tests.broker.integrations.test_configure import OTHER_URL, URL, home

__all__ = ["home"]  # the fixture


def test_a_found_client_is_connected_in_its_own_file_and_then_ticked(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "no-programs"))
    (home / ".cursor").mkdir()
    clients = DetectedClients()

    assert clients.detected([URL, OTHER_URL]) == (ClientChoice("cursor", "Cursor", False),)
    message = clients.connect("cursor", [URL, OTHER_URL])

    servers = json.loads((home / ".cursor" / "mcp.json").read_text())["mcpServers"]
    assert {served_url(e) for e in servers.values()} == {URL, OTHER_URL}
    assert "Cursor now reaches 2 servers" in message and "Restart Cursor" in message
    assert clients.detected([URL, OTHER_URL]) == (ClientChoice("cursor", "Cursor", True),)
    assert "already reaches every server" in clients.connect("cursor", [URL, OTHER_URL])
    assert clients.detected([]) == (ClientChoice("cursor", "Cursor", False),)


def test_the_files_are_read_again_only_after_a_while_or_a_connect(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "no-programs"))
    now = [0.0]
    clients = DetectedClients(max_age=300, clock=lambda: now[0])
    assert clients.detected([URL]) == ()

    (home / ".cursor").mkdir()  # Cursor is installed meanwhile
    now[0] = 299.0
    assert clients.detected([URL]) == ()
    now[0] = 300.0
    assert clients.detected([URL]) == (ClientChoice("cursor", "Cursor", False),)

    clients.connect("cursor", [URL])
    assert clients.detected([URL]) == (ClientChoice("cursor", "Cursor", True),)


def test_connecting_claude_code_gives_a_dpop_bound_server_the_bridge(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tray's "Connect a client…" asks the broker which servers' tokens are DPoP-bound:
    Claude Code's default headers helper cannot use those, so they get the bridge."""
    monkeypatch.setenv("PATH", str(tmp_path / "no-programs"))
    (home / ".claude").mkdir()
    clients = DetectedClients(bridge_only=lambda: frozenset({URL}))

    clients.connect("claude-code", [URL, OTHER_URL])

    servers = json.loads((home / ".claude.json").read_text())["mcpServers"]
    by_url = {served_url(e): e for e in servers.values()}
    assert by_url[URL]["type"] == "stdio" and by_url[URL]["args"][-2:] == ["connect", URL]
    assert by_url[OTHER_URL]["type"] == "http" and "headersHelper" in by_url[OTHER_URL]
