"""``configure`` on the clients whose files are TOML (Codex), YAML (Goose, Continue) or JSON with
comments (VS Code, Zed, Gemini CLI, opencode): the broker's entries are added, replaced and
removed as whole blocks of lines, so every comment and every other line of the user's file
survives, and removing gives back the file byte for byte."""

from __future__ import annotations

import json
import os
import shutil
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from broker.errors import ClientConfigError
from broker.integrations.clientconfigs import (
    CLIENTS,
    JSON,
    Environment,
    default_entry_name,
    served_url,
)
from broker.integrations.jsonconfig import strip_jsonc
from tests.broker.integrations.test_configure import (
    OTHER_URL,
    SCRIPT,
    URL,
    backups,
    configure,
    home,
)

__all__ = ["home"]  # the fixture

CODEX = """\
# Codex settings: https://developers.openai.com/codex/config-reference
model = "gpt-5.1-codex"
approval_policy = "on-request"   # ask before running commands

[features]
web_search_request = true

# Documentation lookups
[mcp_servers.context7]
command = "npx"
args = ["-y", "@upstash/context7-mcp"]

[mcp_servers.context7.env]
LOG_LEVEL = "warn"

[mcp_servers.figma]
url = "https://mcp.figma.com/mcp"
bearer_token_env_var = "FIGMA_OAUTH_TOKEN"

[profiles.deep]
model = "o3"   # the slow one
"""

GOOSE = """\
GOOSE_PROVIDER: anthropic
GOOSE_MODEL: claude-sonnet-4-5
# extensions I use every day
extensions:
  developer:
    bundled: true
    display_name: Developer
    enabled: true
    name: developer
    timeout: 300
    type: builtin
  github:
    args:
    - -y
    - '@modelcontextprotocol/server-github'
    cmd: npx
    description: GitHub  # the GitHub MCP server
    enabled: true
    env_keys:
    - GITHUB_PERSONAL_ACCESS_TOKEN
    envs: {}
    name: github
    timeout: 300
    type: stdio

GOOSE_MODE: smart_approve
"""

CONTINUE = """\
name: Local Config
version: 1.0.0
schema: v1
models:
  - name: Llama 3.1 8B   # local
    provider: ollama
    model: llama3.1:8b
    roles:
      - chat
mcpServers:
  - name: Playwright
    command: npx
    args:
      - "@playwright/mcp@latest"
  # remote docs server
  - name: Docs
    type: streamable-http
    url: https://docs.example.com/mcp
context:
  - provider: code
"""

ZED = """\
// Zed settings
//
// For information on how to configure Zed, see the Zed
// documentation: https://zed.dev/docs/configuring-zed
{
  "theme": "One Dark", // dark, always
  "context_servers": {
    // the one from the docs
    "local-mcp-server": {
      "command": "some-command",
      "args": ["arg-1", "arg-2"],
      "env": {}
    },
  },
  "buffer_font_size": 15,
}
"""

VSCODE = """\
{
\t// Servers for every workspace
\t"servers": {
\t\t"github": {
\t\t\t"type": "http",
\t\t\t"url": "https://api.githubcopilot.com/mcp/"
\t\t}
\t},
\t/* prompts */
\t"inputs": []
}
"""

GEMINI = """\
{
  // API key sign-in
  "selectedAuthType": "gemini-api-key",
  "mcpServers": {
    "git": {
      "command": "uvx",
      "args": ["mcp-server-git"]
    }
  }
}
"""

OPENCODE = """\
{
  "$schema": "https://opencode.ai/config.json",
  // local tools
  "mcp": {
    "my-local-mcp-server": {
      "type": "local",
      // Or ["bun", "x", "my-mcp-command"]
      "command": ["npx", "-y", "my-mcp-command"],
      "enabled": true,
      "environment": {
        "MY_ENV_VAR": "my_env_var_value",
      },
    },
  },
}
"""

EXISTING = {
    "codex": CODEX,
    "goose": GOOSE,
    "continue": CONTINUE,
    "zed": ZED,
    "vscode": VSCODE,
    "gemini": GEMINI,
    "opencode": OPENCODE,
}
BROKEN = {
    "zed": '// c\n{"context_servers": {"a": {"command": "x"},,}}\n',
    "vscode": '// c\n{"servers": {"a": {"command": "x"}\n',
    "gemini": '// c\n{"mcpServers": {"a": {"command": x}}}\n',
    "opencode": '// c\n{"mcp": {"a": {"command": ["x"]}}} }\n',
    "codex": '[mcp_servers.a]\ncommand = "x\n',
    "goose": "extensions:\n  a: [1, 2\nGOOSE_MODE: auto\n",
    "continue": "name: x\nmcpServers:\n  - name: a\n   command: [\n",
}
NOT_A_LIST = {
    "zed": '// c\n{"context_servers": []}\n',
    "vscode": '// c\n{"servers": "none"}\n',
    "gemini": '// c\n{"mcpServers": 5}\n',
    "opencode": '// c\n[{"mcp": {}}]\n',
    "codex": 'mcp_servers = "none"\n',
    "goose": "extensions: [a, b]\n",
    "continue": "mcpServers:\n  a: {command: x}\n",
}
TEXT_CLIENTS = sorted(EXISTING)


def path_of(home: Path, client: str) -> Path:
    env = Environment({"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config")}, "linux")
    return CLIENTS[client].locate(env)


def parse(client: str, text: str) -> dict[str, Any]:
    if CLIENTS[client].file_format == JSON:
        data: dict[str, Any] = json.loads(strip_jsonc(text))
    else:
        data = tomllib.loads(text) if client == "codex" else yaml.safe_load(text)
    return data


def servers(client: str, text: str) -> dict[str, Any]:
    value = parse(client, text).get(CLIENTS[client].servers_key) or {}
    if client == "continue":
        return {item["name"]: item for item in value}
    return dict(value)


def write(home: Path, client: str, text: str) -> Path:
    path = path_of(home, client)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def in_order(part: list[str], whole: list[str]) -> bool:
    """Every line of ``part`` is in ``whole``, in the same order."""
    rest = iter(whole)
    return all(line in rest for line in part)


def broker_argv(client: str, entry: dict[str, Any]) -> list[str]:
    if client == "opencode":
        return list(entry["command"])
    command = entry["cmd"] if client == "goose" else entry["command"]
    return [command, *entry["args"]]


def env_of(client: str, entry: dict[str, Any]) -> dict[str, str]:
    key = {"goose": "envs", "opencode": "environment"}.get(client, "env")
    return dict(entry[key])


@pytest.mark.parametrize("client", TEXT_CLIENTS)
def test_adding_keeps_every_line_and_comment_and_writes_a_backup(home: Path, client: str) -> None:
    original = EXISTING[client]
    path = write(home, client, original)

    code, out = configure(client, "--server", URL)

    assert code == 0 and "added" in out
    text = path.read_text()
    assert in_order(original.splitlines(), text.splitlines())  # comments and all
    before, after = parse(client, original), parse(client, text)
    key = CLIENTS[client].servers_key
    assert {k: v for k, v in after.items() if k != key} == {
        k: v for k, v in before.items() if k != key
    }
    new = servers(client, text)
    old = servers(client, original)
    assert list(new)[: len(old)] == list(old) and all(new[n] == old[n] for n in old)
    entry = new[default_entry_name(URL)]
    assert served_url(entry) == URL
    assert broker_argv(client, entry) == [str(SCRIPT), "connect", URL]
    assert [b.read_text() for b in backups(path)] == [original]


@pytest.mark.parametrize("client", TEXT_CLIENTS)
def test_running_twice_changes_nothing_and_removing_gives_back_the_file(
    home: Path, client: str
) -> None:
    original = EXISTING[client]
    path = write(home, client, original)
    configure(client)
    first = path.read_bytes()

    code, out = configure(client)
    assert code == 0 and "already up to date" in out
    assert path.read_bytes() == first and len(backups(path)) == 1

    code, out = configure(client, "--remove", "--server", OTHER_URL)
    assert "removed" in out
    assert [served_url(e) for e in servers(client, path.read_text()).values()].count(URL) == 1
    configure(client, "--remove")
    assert path.read_text() == original


@pytest.mark.parametrize("client", TEXT_CLIENTS)
def test_an_entry_that_changed_is_replaced_where_it_stands(
    home: Path, client: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = write(home, client, EXISTING[client])
    configure(client, "--server", URL)
    config = Path(os.environ["MCP_BROKER_HOME"]) / "config.toml"
    monkeypatch.setenv("MCP_BROKER_CONFIG", str(config))  # now carried into the entry

    code, out = configure(client, "--server", URL)

    assert code == 0 and "updated" in out
    text = path.read_text()
    names = list(servers(client, text))
    assert names == [*servers(client, EXISTING[client]), default_entry_name(URL)]
    entry = servers(client, text)[default_entry_name(URL)]
    assert env_of(client, entry) == {
        "MCP_BROKER_HOME": os.environ["MCP_BROKER_HOME"],
        "MCP_BROKER_CONFIG": str(config),
    }
    assert in_order(EXISTING[client].splitlines(), text.splitlines())


@pytest.mark.parametrize("client", TEXT_CLIENTS)
@pytest.mark.parametrize("kind", ["broken", "not-a-list"])
def test_a_file_that_cannot_be_parsed_is_refused_and_left_untouched(
    home: Path, client: str, kind: str
) -> None:
    content = (BROKEN if kind == "broken" else NOT_A_LIST)[client]
    path = write(home, client, content)

    with pytest.raises(ClientConfigError) as info:
        configure(client, "--server", URL)

    assert str(path) in str(info.value) and "unchanged" in str(info.value)
    assert path.read_text() == content
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]


@pytest.mark.parametrize(
    ("client", "content"),
    [
        ("codex", 'mcp_servers = { other = { command = "x" } }\n'),
        ("goose", "extensions: {developer: {enabled: true, type: builtin, name: developer}}\n"),
        ("continue", "name: c\nversion: 1.0.0\nschema: v1\nmcpServers: [{name: a, command: x}]\n"),
        (
            "zed",
            '// mine\n{"context_servers": {"a": {"command": "x"}, "mcp-example-com-mcp": '
            '{"command": "/old/mcp-broker", "args": ["connect", "https://mcp.example.com/mcp"]}}}\n',
        ),
    ],
    ids=["codex-inline-table", "goose-flow-mapping", "continue-flow-list", "zed-one-line"],
)
def test_a_layout_the_line_editor_cannot_follow_is_left_alone_with_an_entry_to_paste(
    home: Path, client: str, content: str
) -> None:
    path = write(home, client, content)

    with pytest.raises(ClientConfigError, match="by hand") as info:
        configure(client, "--server", URL)

    assert "unchanged" in str(info.value) and path.read_text() == content
    assert backups(path) == []
    code, snippet = configure(client, "--server", URL, "--print")
    assert code == 0 and path.read_text() == content
    pasted = servers(client, snippet)  # the printed text is the file's own format
    assert served_url(pasted[default_entry_name(URL)]) == URL


@pytest.mark.parametrize("client", TEXT_CLIENTS)
def test_print_shows_the_entry_in_the_clients_format_and_writes_nothing(
    home: Path, client: str
) -> None:
    before = sorted(home.rglob("*"))
    code, out = configure(client, "--print")
    assert code == 0 and sorted(home.rglob("*")) == before
    urls = {served_url(e) for e in servers(client, out).values()}
    assert urls == {URL, OTHER_URL}


@pytest.mark.parametrize("client", TEXT_CLIENTS)
def test_a_missing_file_is_created_private_in_a_form_the_client_reads(
    home: Path, client: str
) -> None:
    path = path_of(home, client)
    configure(client, "--server", URL)
    text = path.read_text()
    assert path.stat().st_mode & 0o777 == 0o600
    assert served_url(servers(client, text)[default_entry_name(URL)]) == URL
    if client == "continue":  # Continue refuses a config.yaml without its header
        assert {"name", "version", "schema"} <= set(parse(client, text))
    configure(client, "--remove")
    assert servers(client, path.read_text()) == {}


def test_goose_entries_carry_the_fields_goose_requires(home: Path) -> None:
    configure("goose", "--server", URL, "--name", "work")
    entry = servers("goose", path_of(home, "goose").read_text())["work"]
    assert entry["name"] == "work" and entry["type"] == "stdio" and entry["enabled"] is True
    assert isinstance(entry["timeout"], int) and isinstance(entry["description"], str)


def test_codex_names_and_values_that_need_quoting_are_quoted(
    home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    odd = tmp_path / 'a "quoted" dir\\with\x7fdel' / "config.toml"
    odd.parent.mkdir()
    shutil.copy(Path(os.environ["MCP_BROKER_HOME"]) / "config.toml", odd)
    monkeypatch.setenv("MCP_BROKER_CONFIG", str(odd))
    configure("codex", "--server", URL, "--name", "my server.v2")
    entry = tomllib.loads(path_of(home, "codex").read_text())["mcp_servers"]["my server.v2"]
    assert entry["env"]["MCP_BROKER_CONFIG"] == str(odd)
    configure("codex", "--remove")
    assert tomllib.loads(path_of(home, "codex").read_text()) == {}


def test_crlf_files_keep_their_line_ends(home: Path) -> None:
    original = CODEX.replace("\n", "\r\n")
    path = path_of(home, "codex")
    path.parent.mkdir(parents=True)
    path.write_bytes(original.encode())
    configure("codex", "--server", URL)
    assert b"\n" not in path.read_bytes().replace(b"\r\n", b"")
    configure("codex", "--remove")
    assert path.read_bytes() == original.encode()
