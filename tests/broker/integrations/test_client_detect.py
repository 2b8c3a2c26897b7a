"""``configure --detect`` (which clients this user has, which already reach which servers) and
``configure all``, and where each client's file is on each OS."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from broker.integrations.clientconfigs import CLIENTS, Environment, default_entry_name, served_url
from broker.integrations.configure import detect_clients
from broker.integrations.jsonconfig import strip_jsonc
from tests.broker.integrations.test_configure import OTHER_URL, URL, configure, home

__all__ = ["home"]  # the fixture


@pytest.fixture
def bare_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A PATH with only the programs a test puts there."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    return bin_dir


def program(bin_dir: Path, name: str) -> None:
    path = bin_dir / name
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)


def test_a_user_without_clients_has_none_detected(home: Path, bare_path: Path) -> None:
    assert detect_clients() == []
    code, out = configure("--detect")
    assert code == 0 and "No MCP client found" in out


def test_detect_names_installed_clients_and_the_servers_they_reach_through_the_broker(
    home: Path, bare_path: Path
) -> None:
    (home / ".cursor").mkdir()  # Cursor has been run: its folder exists
    (home / ".config" / "goose").mkdir(parents=True)
    program(bare_path, "gemini")  # Gemini CLI is installed, never configured
    configure("codex", "--server", URL)  # creates ~/.codex/config.toml with one entry
    (home / ".kiro").mkdir()
    kiro = home / ".kiro" / "settings" / "mcp.json"
    kiro.parent.mkdir()
    kiro.write_text("{ not json")

    found = {d.client.name: d for d in detect_clients()}

    assert sorted(found) == ["codex", "cursor", "gemini", "goose", "kiro"]
    assert found["codex"].urls == (URL,) and found["cursor"].urls == ()
    assert found["kiro"].problem is not None and str(kiro) in found["kiro"].problem
    code, out = configure("--detect")
    lines = {line.split()[0]: line for line in out.splitlines()}
    assert code == 0 and sorted(lines) == sorted(found)
    assert f"broker entries for {URL}" in lines["codex"]
    assert "no broker entries" in lines["gemini"] and "cannot read" in lines["kiro"]
    assert not (home / ".gemini").exists()  # detecting changes nothing


def test_configure_all_does_every_detected_client_and_goes_on_past_one_it_cannot(
    home: Path, bare_path: Path
) -> None:
    (home / ".cursor").mkdir()
    program(bare_path, "codex")
    zed = home / ".config" / "zed" / "settings.json"
    zed.parent.mkdir(parents=True)
    zed.write_text('// Zed settings\n{\n  "theme": "One Dark"\n}\n')
    windsurf = home / ".codeium" / "windsurf" / "mcp_config.json"
    windsurf.parent.mkdir(parents=True)
    windsurf.write_text('{\n  // mine\n  "mcpServers": {}\n}\n')  # Windsurf reads no comments

    code, out = configure("all")

    assert code == 1  # Windsurf's file has comments it does not accept: left alone, and said so
    assert "Windsurf: not changed" in out and "// mine" in windsurf.read_text()
    cursor = json.loads((home / ".cursor" / "mcp.json").read_text())["mcpServers"]
    codex = tomllib.loads((home / ".codex" / "config.toml").read_text())["mcp_servers"]
    zed_servers = json.loads(strip_jsonc(zed.read_text()))["context_servers"]
    for servers in (cursor, codex, zed_servers):
        assert {served_url(e) for e in servers.values()} == {URL, OTHER_URL}
    assert zed.read_text().startswith("// Zed settings")
    assert not (home / ".gemini").exists()  # not installed: not configured

    code, out = configure("all", "--remove")
    assert "Cursor: removed" in out and "Codex CLI: removed" in out and "Zed: removed" in out
    assert json.loads((home / ".cursor" / "mcp.json").read_text())["mcpServers"] == {}


def test_configure_needs_a_client_or_detect(home: Path) -> None:
    from broker.errors import ConfigError

    with pytest.raises(ConfigError, match="--detect"):
        configure()
    with pytest.raises(ConfigError, match="all"):
        configure("all", "--file", str(home / "x.json"))


def at(client: str, platform: str, **environ: str) -> str:
    return str(CLIENTS[client].locate(Environment(environ, platform))).replace("\\", "/")


@pytest.mark.parametrize(
    ("client", "linux", "darwin", "win32"),
    [
        ("windsurf", "/h/.codeium/windsurf/mcp_config.json",
         "/Users/me/.codeium/windsurf/mcp_config.json",
         "C:/Users/me/.codeium/windsurf/mcp_config.json"),
        ("zed", "/x/zed/settings.json", "/Users/me/.config/zed/settings.json",
         "C:/AD/Zed/settings.json"),
        ("cline", "/x/Code/User/globalStorage/saoudrizwan.claude-dev/settings/"
         "cline_mcp_settings.json",
         "/Users/me/Library/Application Support/Code/User/globalStorage/saoudrizwan.claude-dev/"
         "settings/cline_mcp_settings.json",
         "C:/AD/Code/User/globalStorage/saoudrizwan.claude-dev/settings/cline_mcp_settings.json"),
        ("continue", "/h/.continue/config.yaml", "/Users/me/.continue/config.yaml",
         "C:/Users/me/.continue/config.yaml"),
        ("goose", "/x/goose/config.yaml", "/Users/me/.config/goose/config.yaml",
         "C:/AD/Block/goose/config/config.yaml"),
        ("codex", "/h/.codex/config.toml", "/Users/me/.codex/config.toml",
         "C:/Users/me/.codex/config.toml"),
        ("gemini", "/h/.gemini/settings.json", "/Users/me/.gemini/settings.json",
         "C:/Users/me/.gemini/settings.json"),
        ("amazonq", "/h/.aws/amazonq/mcp.json", "/Users/me/.aws/amazonq/mcp.json",
         "C:/Users/me/.aws/amazonq/mcp.json"),
        ("kiro", "/h/.kiro/settings/mcp.json", "/Users/me/.kiro/settings/mcp.json",
         "C:/Users/me/.kiro/settings/mcp.json"),
        ("lmstudio", "/h/.lmstudio/mcp.json", "/Users/me/.lmstudio/mcp.json",
         "C:/Users/me/.lmstudio/mcp.json"),
        ("opencode", "/x/opencode/opencode.json", "/Users/me/.config/opencode/opencode.json",
         "C:/Users/me/.config/opencode/opencode.json"),
    ],
)  # fmt: skip
def test_per_os_locations(client: str, linux: str, darwin: str, win32: str) -> None:
    assert at(client, "linux", HOME="/h", XDG_CONFIG_HOME="/x") == linux
    assert at(client, "darwin", HOME="/Users/me") == darwin
    assert at(client, "win32", USERPROFILE="C:/Users/me", APPDATA="C:/AD") == win32


def test_codex_follows_codex_home_and_cline_its_cli_when_only_the_cli_is_there(
    tmp_path: Path,
) -> None:
    assert at("codex", "linux", HOME="/h", CODEX_HOME="/c") == "/c/config.toml"
    (tmp_path / ".cline" / "data").mkdir(parents=True)
    assert at("cline", "linux", HOME=str(tmp_path)) == (
        f"{tmp_path}/.cline/data/settings/cline_mcp_settings.json"
    )


def test_every_clients_entry_is_recognised_as_the_brokers_and_keeps_its_name(home: Path) -> None:
    for name in CLIENTS:
        configure(name, "--server", URL)
    found = {d.client.name: d.urls for d in detect_clients()}
    assert {name for name, urls in found.items() if urls == (URL,)} == set(CLIENTS)
    assert default_entry_name(URL) == "mcp-example-com-mcp"
