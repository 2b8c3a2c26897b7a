"""``mcp-broker configure CLIENT``: merging the broker's servers into real client config files.

Each client's file is a realistic one with other servers and unknown keys, in a temporary HOME.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from broker.cli.helpers import configure_headers_parser
from broker.config import ServerConfig, add_server
from broker.errors import ClientConfigError, ConfigError
from broker.integrations.clientconfigs import (
    CLIENTS,
    JSON,
    Command,
    Environment,
    default_entry_name,
    served_url,
)
from broker.integrations.configure import configure_configure_parser

URL = "https://mcp.example.com/mcp"
SCRIPT = Path(sys.executable).parent / "mcp-broker"
OTHER_URL = "http://127.0.0.1:8000/mcp"

CLAUDE_DESKTOP = {
    "globalShortcut": "Ctrl+Space",
    "mcpServers": {
        "filesystem": {
            "command": "npx",
            "args": ["-y", "@modelcontextprotocol/server-filesystem", "/home/me/Documents"],
        },
        "weather": {"command": "uv", "args": ["run", "weather.py"], "env": {"API_KEY": "k-123"}},
    },
    "preferences": {"menuBarEnabled": False},
}

CLAUDE_CODE = {
    "numStartups": 41,
    "installMethod": "native",
    "autoUpdates": True,
    "tipsHistory": {"new-user-warmup": 1, "shift-enter": 27},
    "firstStartTime": "2026-06-28T11:38:57.179Z",
    "userID": "0f3c…",
    "projects": {
        "/home/me/src/app": {
            "allowedTools": [],
            "mcpServers": {"local-db": {"type": "stdio", "command": "db-mcp", "args": []}},
        }
    },
    "mcpServers": {
        "playwright": {
            "type": "stdio",
            "command": "npx",
            "args": ["@playwright/mcp@latest"],
            "env": {},
        },
        "sentry": {"type": "http", "url": "https://mcp.sentry.dev/mcp"},
    },
    "oauthAccount": {"emailAddress": "me@example.com"},
}

CURSOR = {
    "mcpServers": {
        "github": {
            "url": "https://api.githubcopilot.com/mcp/",
            "headers": {"Authorization": "Bearer ${env:GITHUB_TOKEN}"},
        },
        "time": {"command": "uvx", "args": ["mcp-server-time"]},
    }
}

VSCODE = {
    "inputs": [
        {"type": "promptString", "id": "perplexity-key", "description": "Key", "password": True}
    ],
    "servers": {
        "github": {"type": "http", "url": "https://api.githubcopilot.com/mcp/"},
        "perplexity": {
            "type": "stdio",
            "command": "npx",
            "args": ["-y", "server-perplexity-ask"],
            "env": {"PERPLEXITY_API_KEY": "${input:perplexity-key}"},
        },
    },
}

# Shapes from each client's documentation (see broker/integrations/clientconfigs.py).
WINDSURF = {
    "mcpServers": {
        "github": {
            "command": "npx",
            "args": ["-y", "@modelcontextprotocol/server-github"],
            "env": {"GITHUB_PERSONAL_ACCESS_TOKEN": "ghp-canary"},
        },
        "sevalla": {"serverUrl": "https://mcp.sevalla.com/mcp"},
    }
}

ZED = {
    "theme": {"mode": "system", "light": "One Light", "dark": "One Dark"},
    "buffer_font_size": 15,
    "context_servers": {
        "local-mcp-server": {"command": "some-command", "args": ["arg-1"], "env": {}},
    },
    "agent": {"dock": "right"},
}

CLINE = {
    "mcpServers": {
        "local-server": {
            "command": "node",
            "args": ["/path/to/server.js"],
            "env": {"API_KEY": "your_api_key"},
            "disabled": False,
            "autoApprove": [],
        }
    }
}

GEMINI = {
    "selectedAuthType": "gemini-api-key",
    "theme": "Dracula",
    "mcpServers": {
        "git": {"command": "uvx", "args": ["mcp-server-git"]},
        "github": {
            "httpUrl": "https://api.githubcopilot.com/mcp/",
            "headers": {"Authorization": "pat-canary"},
            "timeout": 5000,
        },
    },
}

AMAZONQ = {
    "mcpServers": {
        "awslabs.cdk-mcp-server": {
            "command": "uvx",
            "args": ["awslabs.cdk-mcp-server@latest"],
            "env": {"FASTMCP_LOG_LEVEL": "ERROR"},
            "disabled": False,
            "autoApprove": [],
        }
    }
}

KIRO = {
    "mcpServers": {
        "aws-docs": {
            "command": "uvx",
            "args": ["awslabs.aws-documentation-mcp-server@latest"],
            "disabled": False,
            "autoApprove": ["search_documentation"],
        },
        "api-server": {
            "url": "https://api.example.com/mcp",
            "headers": {"Authorization": "Bearer ${API_TOKEN}"},
        },
    }
}

LMSTUDIO = {
    "mcpServers": {
        "hf-mcp-server": {
            "url": "https://huggingface.co/mcp",
            "headers": {"Authorization": "Bearer <YOUR_HF_TOKEN>"},
        }
    }
}

OPENCODE = {
    "$schema": "https://opencode.ai/config.json",
    "theme": "opencode",
    "mcp": {
        "my-local-mcp-server": {
            "type": "local",
            "command": ["bun", "x", "my-mcp-command"],
            "enabled": True,
            "environment": {"MY_ENV_VAR": "my_env_var_value"},
        },
        "my-remote-mcp": {"type": "remote", "url": "https://my-mcp-server.com", "enabled": True},
    },
}

EXISTING = {
    "claude-desktop": (CLAUDE_DESKTOP, 2),
    "claude-code": (CLAUDE_CODE, 2),
    "cursor": (CURSOR, 2),
    "vscode": (VSCODE, "\t"),
    "windsurf": (WINDSURF, 2),
    "zed": (ZED, 2),
    "cline": (CLINE, 2),
    "gemini": (GEMINI, 2),
    "amazonq": (AMAZONQ, 2),
    "kiro": (KIRO, 2),
    "lmstudio": (LMSTUDIO, 4),
    "opencode": (OPENCODE, 2),
}
JSON_CLIENTS = sorted(n for n, c in CLIENTS.items() if c.file_format == JSON)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temporary HOME, XDG config dir and broker home with two configured servers."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.delenv("CLAUDE_CONFIG_DIR", raising=False)
    monkeypatch.delenv("MCP_BROKER_CONFIG", raising=False)
    broker_home = tmp_path / "broker"
    monkeypatch.setenv("MCP_BROKER_HOME", str(broker_home))
    monkeypatch.setattr(sys, "argv", [str(SCRIPT)])  # as if run as the installed script
    for url in (URL, OTHER_URL):
        add_server(broker_home / "config.toml", broker_home / "locks", ServerConfig(url=url))
    return home


def client_file(home: Path, client: str) -> Path:
    env = Environment({"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config")}, "linux")
    return CLIENTS[client].locate(env)


def write_existing(home: Path, client: str) -> tuple[Path, bytes]:
    data, indent = EXISTING[client]
    path = client_file(home, client)
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = (json.dumps(data, indent=indent, ensure_ascii=False) + "\n").encode()
    path.write_bytes(raw)
    path.chmod(0o640)
    return path, raw


def configure(*argv: str) -> tuple[int, str]:
    parser = argparse.ArgumentParser(prog="mcp-broker")
    configure_configure_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["configure", *argv])
    out: list[str] = []
    stream = SimpleNamespace(write=out.append, flush=lambda: None)
    code: int = args.run(args, None, stream)
    return code, "".join(out)


def backups(path: Path) -> list[Path]:
    return sorted(path.parent.glob(path.name + ".mcp-broker-*.bak"))


def servers_key(client: str) -> str:
    return CLIENTS[client].servers_key


@pytest.mark.parametrize("client", [n for n in JSON_CLIENTS if not CLIENTS[n].jsonc])
def test_merging_keeps_other_servers_and_keys_in_order_and_writes_a_backup(
    home: Path, client: str
) -> None:
    path, original = write_existing(home, client)
    before = json.loads(original)

    code, out = configure(client, "--server", URL)

    assert code == 0
    after = json.loads(path.read_bytes())
    assert list(after) == list(before)  # every top-level key, in its order
    for key in before:
        if key != servers_key(client):
            assert after[key] == before[key]
    servers = after[servers_key(client)]
    old_servers = before[servers_key(client)]
    assert list(servers)[: len(old_servers)] == list(old_servers)
    for name, entry in old_servers.items():
        assert servers[name] == entry
    name = default_entry_name(URL)
    assert list(servers) == [*old_servers, name]
    assert served_url(servers[name]) == URL
    assert [b.read_bytes() for b in backups(path)] == [original]
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert "added" in out and str(path) in out


@pytest.mark.parametrize("client", [n for n in JSON_CLIENTS if not CLIENTS[n].jsonc])
def test_running_twice_changes_nothing_the_second_time(home: Path, client: str) -> None:
    path, _ = write_existing(home, client)
    configure(client)
    first = path.read_bytes()

    code, out = configure(client)

    assert code == 0
    assert "already up to date" in out
    assert path.read_bytes() == first
    assert len(backups(path)) == 1


@pytest.mark.parametrize("client", [n for n in JSON_CLIENTS if not CLIENTS[n].jsonc])
@pytest.mark.parametrize(
    "content",
    [
        b'{"KEY": {"a": {"command": "x"}},,}',
        b'{"KEY": {}',
        b"[1, 2]",
        b'{"a": 1, "a": 2}',
        b'{"KEY": {}, "x": NaN}',
        b'{"KEY": []}',
        b"\xff\xfe{}",
    ],
    ids=["syntax", "truncated", "array", "duplicate-key", "nan", "servers-not-object", "utf16"],
)
def test_a_file_that_cannot_be_parsed_is_refused_and_left_untouched(
    home: Path, client: str, content: bytes
) -> None:
    path = client_file(home, client)
    path.parent.mkdir(parents=True, exist_ok=True)
    content = content.replace(b"KEY", servers_key(client).encode())
    path.write_bytes(content)

    with pytest.raises(ClientConfigError) as info:
        configure(client, "--server", URL)

    assert str(path) in str(info.value)
    assert "unchanged" in str(info.value)
    assert path.read_bytes() == content
    assert backups(path) == []
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]


@pytest.mark.parametrize("client", [n for n in JSON_CLIENTS if not CLIENTS[n].jsonc])
def test_json_with_comments_is_refused_untouched_and_print_gives_the_entry_to_paste(
    home: Path, client: str
) -> None:
    """A client that reads plain JSON only: a file with comments is not one it can read, and
    rewriting it would drop them, so the broker leaves it alone and --print helps. (Clients that
    read comments get them kept: test_client_formats.)"""
    path = client_file(home, client)
    path.parent.mkdir(parents=True, exist_ok=True)
    key = servers_key(client).encode()
    content = (
        b'{\n  // my servers\n  "' + key + b'": {\n    "github": {"type": "http", '
        b'"url": "https://api.githubcopilot.com/mcp/"}, /* trailing */\n  },\n}\n'
    )
    path.write_bytes(content)

    with pytest.raises(ClientConfigError, match="comments or trailing commas"):
        configure(client)

    assert path.read_bytes() == content and backups(path) == []
    code, out = configure(client, "--server", URL, "--print")  # the way out the message names
    assert code == 0
    assert served_url(json.loads(out)[servers_key(client)][default_entry_name(URL)]) == URL


@pytest.mark.parametrize("client", [n for n in JSON_CLIENTS if not CLIENTS[n].jsonc])
def test_remove_takes_out_only_the_brokers_entries(home: Path, client: str) -> None:
    path, original = write_existing(home, client)
    configure(client)
    assert (
        len(json.loads(path.read_bytes())[servers_key(client)])
        == len(json.loads(original)[servers_key(client)]) + 2
    )

    code, out = configure(client, "--remove", "--server", OTHER_URL)
    assert code == 0 and "removed" in out
    urls = [served_url(e) for e in json.loads(path.read_bytes())[servers_key(client)].values()]
    assert URL in urls and OTHER_URL not in urls

    configure(client, "--remove")
    assert json.loads(path.read_bytes()) == json.loads(original)
    code, out = configure(client, "--remove")
    assert "already up to date" in out


@pytest.mark.parametrize("client", [n for n in JSON_CLIENTS if not CLIENTS[n].jsonc])
def test_print_shows_the_entry_and_writes_nothing(home: Path, client: str) -> None:
    before = sorted(home.rglob("*"))

    code, out = configure(client, "--server", URL, "--print")

    assert code == 0
    assert sorted(home.rglob("*")) == before
    entry = json.loads(out)[servers_key(client)][default_entry_name(URL)]
    assert served_url(entry) == URL
    path, original = write_existing(home, client)
    configure(client, "--print")
    assert path.read_bytes() == original and backups(path) == []


@pytest.mark.parametrize("client", [n for n in JSON_CLIENTS if not CLIENTS[n].jsonc])
def test_a_missing_file_is_created_private_at_the_clients_location(home: Path, client: str) -> None:
    path = client_file(home, client)
    configure(client, "--server", URL)
    data = json.loads(path.read_bytes())
    assert list(data) == [servers_key(client)]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert backups(path) == []


@pytest.mark.parametrize("client", [n for n in JSON_CLIENTS if n != "claude-code"])
def test_stdio_clients_run_the_absolute_broker_command_with_connect(
    home: Path, client: str
) -> None:
    configure(client, "--server", URL)
    entry = json.loads(client_file(home, client).read_bytes())[servers_key(client)][
        default_entry_name(URL)
    ]
    argv = entry["command"] if client == "opencode" else [entry["command"], *entry["args"]]
    environment = entry["environment"] if client == "opencode" else entry["env"]
    assert argv == [str(SCRIPT), "connect", URL]
    assert environment == {"MCP_BROKER_HOME": os.environ["MCP_BROKER_HOME"]}
    assert ("type" in entry) == (client in ("vscode", "opencode"))


def test_claude_code_uses_a_headers_helper_by_default_and_connect_on_request(
    home: Path,
) -> None:
    path = client_file(home, "claude-code")
    configure("claude-code", "--server", URL)
    entry = json.loads(path.read_bytes())["mcpServers"][default_entry_name(URL)]
    assert entry["type"] == "http" and entry["url"] == URL
    words = shlex.split(entry["headersHelper"])
    assert words[0] == f"MCP_BROKER_HOME={os.environ['MCP_BROKER_HOME']}"
    assert words[1:] == [str(SCRIPT), "headers", URL]

    configure("claude-code", "--server", URL, "--via", "connect")  # replaced where it stood
    servers = json.loads(path.read_bytes())["mcpServers"]
    assert servers[default_entry_name(URL)]["type"] == "stdio"
    assert sum(served_url(e) == URL for e in servers.values()) == 1


def test_only_claude_code_has_a_helper(home: Path) -> None:
    with pytest.raises(ConfigError, match="--via connect"):
        configure("cursor", "--via", "helper")


@pytest.mark.integration
def test_the_headers_helper_runs_in_a_real_shell_with_spaces_in_the_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What Claude Code does with it: ``sh -c HELPER``, stdout parsed as a JSON object."""
    bin_dir = tmp_path / "dir with 'quotes' and spaces"
    bin_dir.mkdir()
    fake = bin_dir / "mcp-broker"
    fake.write_text(
        f"#!{sys.executable}\nimport json, os, sys\n"
        "print(json.dumps({'argv': sys.argv[1:], 'home': os.environ.get('MCP_BROKER_HOME')}))\n"
    )
    fake.chmod(0o755)
    broker_home = tmp_path / "broker $HOME"
    entry = CLIENTS["claude-code"].entry(
        "n", URL, "helper", Command([str(fake)], {"MCP_BROKER_HOME": str(broker_home)}, "linux")
    )
    monkeypatch.delenv("MCP_BROKER_HOME", raising=False)
    result = subprocess.run(
        ["/bin/sh", "-c", entry["headersHelper"]], capture_output=True, text=True, check=True
    )
    assert json.loads(result.stdout) == {"argv": ["headers", URL], "home": str(broker_home)}
    assert served_url(entry) == URL


def test_windows_helper_and_paths_are_recognised_as_the_brokers() -> None:
    exe = r"C:\Program Files\Broker\Scripts\mcp-broker.exe"
    entry = CLIENTS["claude-code"].entry("n", URL, "helper", Command([exe], {}, "win32"))
    assert entry["headersHelper"] == f'"{exe}" headers {URL}'
    assert served_url(entry) == URL
    stdio = CLIENTS["cursor"].entry(
        "n", URL, "connect", Command([r"C:\bin\mcp-broker.exe"], {}, "win32")
    )
    assert served_url(stdio) == URL
    python = CLIENTS["vscode"].entry(
        "n", URL, "connect", Command(["/usr/bin/python3", "-m", "broker.cli"], {})
    )
    assert served_url(python) == URL
    assert served_url({"command": "npx", "args": ["connect", URL]}) is None


def test_a_name_taken_by_another_server_is_refused(home: Path) -> None:
    path = client_file(home, "cursor")
    path.parent.mkdir(parents=True, exist_ok=True)
    original = json.dumps({"mcpServers": {"mine": {"command": "x"}}}).encode()
    path.write_bytes(original)

    with pytest.raises(ClientConfigError, match="--name"):
        configure("cursor", "--server", URL, "--name", "mine")
    assert path.read_bytes() == original

    configure("cursor", "--server", URL, "--name", "work")
    assert list(json.loads(path.read_bytes())["mcpServers"]) == ["mine", "work"]


def test_an_unconfigured_server_is_refused(home: Path) -> None:
    with pytest.raises(ConfigError, match="mcp-broker add"):
        configure("cursor", "--server", "https://elsewhere.example/mcp")


@pytest.mark.parametrize(
    ("raw", "expected_prefix"),
    [
        (b'{\n    "mcpServers": {}\n}\n', b'{\n    "mcpServers": {\n        "'),
        (b'{\n\t"mcpServers": {}\n}', b'{\n\t"mcpServers": {\n\t\t"'),
        (b'{"mcpServers": {}}', b'{"mcpServers": {"'),
        ('\ufeff{\n  "mcpServers": {}, "note": "caf\u00e9"\n}\n'.encode(), b'\xef\xbb\xbf{\n  "'),
    ],
    ids=["four-spaces", "tabs", "minified", "bom-and-unicode"],
)
def test_the_files_own_style_is_kept(home: Path, raw: bytes, expected_prefix: bytes) -> None:
    path = client_file(home, "cursor")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(raw)
    configure("cursor", "--server", URL)
    written = path.read_bytes()
    assert written.startswith(expected_prefix)
    assert written.endswith(b"\n") == raw.endswith(b"\n")
    if b"caf" in raw:
        assert "café".encode() in written


def test_per_os_locations() -> None:
    def at(client: str, platform: str, **environ: str) -> str:
        return str(CLIENTS[client].locate(Environment(environ, platform))).replace("\\", "/")

    assert at("claude-desktop", "darwin", HOME="/Users/me") == (
        "/Users/me/Library/Application Support/Claude/claude_desktop_config.json"
    )
    assert at("claude-desktop", "win32", USERPROFILE="C:/Users/me", APPDATA="C:/AD") == (
        "C:/AD/Claude/claude_desktop_config.json"
    )
    assert at("claude-desktop", "linux", HOME="/home/me") == (
        "/home/me/.config/Claude/claude_desktop_config.json"
    )
    assert at("vscode", "darwin", HOME="/Users/me") == (
        "/Users/me/Library/Application Support/Code/User/mcp.json"
    )
    assert at("vscode", "win32", USERPROFILE="C:/Users/me", APPDATA="C:/AD") == (
        "C:/AD/Code/User/mcp.json"
    )
    assert at("vscode", "linux", HOME="/h", XDG_CONFIG_HOME="/x") == "/x/Code/User/mcp.json"
    assert at("cursor", "win32", USERPROFILE="C:/Users/me") == "C:/Users/me/.cursor/mcp.json"
    assert at("claude-code", "linux", HOME="/h") == "/h/.claude.json"
    assert at("claude-code", "linux", HOME="/h", CLAUDE_CONFIG_DIR="/c") == "/c/.claude.json"


def test_a_file_changed_during_the_edit_is_not_overwritten(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import broker.integrations.jsonconfig as jsonconfig

    path, _ = write_existing(home, "cursor")
    real_backup: Callable[[Path], Path] = jsonconfig._backup

    def backup_then_client_writes(p: Path) -> Path:
        made = real_backup(p)
        p.write_text('{"mcpServers": {"new": {"command": "y"}}}')
        return made

    monkeypatch.setattr(jsonconfig, "_backup", backup_then_client_writes)
    with pytest.raises(ClientConfigError, match="changed while"):
        configure("cursor")
    assert json.loads(path.read_bytes()) == {"mcpServers": {"new": {"command": "y"}}}


def test_headers_prints_one_json_header_object() -> None:
    parser = argparse.ArgumentParser()
    configure_headers_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["headers", URL, "--min-valid", "30"])
    calls: list[Any] = []

    class Broker:
        def token(self, url: str, min_valid: float | None) -> Any:
            calls.append((url, min_valid))
            return SimpleNamespace(access_token="at-1")

    out: list[str] = []
    code = args.run(args, Broker(), SimpleNamespace(write=out.append, flush=lambda: None))
    assert code == 0 and calls == [(URL, 30.0)]
    assert json.loads("".join(out)) == {"Authorization": "Bearer at-1"}


def test_claude_code_print_also_shows_its_own_cli_command(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = configure("claude-code", "--server", URL, "--print")
    assert code == 0
    err = capsys.readouterr().err
    line = next(x for x in err.splitlines() if x.startswith("# or: claude mcp add-json"))
    words = shlex.split(line.removeprefix("# or: "))
    assert words[:6] == ["claude", "mcp", "add-json", "--scope", "user", default_entry_name(URL)]
    assert json.loads(words[6]) == json.loads(out)["mcpServers"][default_entry_name(URL)]


def test_file_option_edits_another_file_such_as_a_vscode_profile(home: Path) -> None:
    profile = home / ".config" / "Code" / "User" / "profiles" / "5f3a" / "mcp.json"
    code, _ = configure("vscode", "--server", URL, "--file", str(profile))
    assert code == 0
    assert served_url(json.loads(profile.read_bytes())["servers"][default_entry_name(URL)]) == URL
    assert not client_file(home, "vscode").exists()


def test_a_symlinked_file_is_edited_through_the_link(home: Path) -> None:
    dotfiles = home / "dotfiles"
    dotfiles.mkdir()
    target = dotfiles / "cursor-mcp.json"
    target.write_text(json.dumps(CURSOR))
    link = client_file(home, "cursor")
    link.parent.mkdir(parents=True)
    link.symlink_to(target)

    configure("cursor", "--server", URL)

    assert link.is_symlink() and link.resolve() == target
    assert default_entry_name(URL) in json.loads(target.read_bytes())["mcpServers"]
    assert [b.read_text() for b in backups(target)] == [json.dumps(CURSOR)]
