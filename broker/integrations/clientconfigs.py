"""Where each MCP client keeps its server list, and the entry the broker writes there.

Two ways to reach a server through the broker (``via``):

``connect``  a stdio server entry that runs ``mcp-broker connect URL``: the bridge attaches a
             fresh token to every request, refreshes, retries a 401 once and steps up on 403.
             Works in every client; the default except for Claude Code.
``helper``   the client talks Streamable HTTP to the server itself and runs a command for the
             headers: Claude Code's ``headersHelper`` runs ``mcp-broker headers URL``, which
             prints ``{"Authorization": "Bearer …"}``. No bridge process, but Claude Code runs the
             helper only when it (re)connects, so a token that expires mid-session is not
             replaced until the next reconnect: ``--via connect`` when sessions outlive tokens.
             No other client here runs a command for its headers (their HTTP entries take
             fixed headers or environment variables only), so they all use ``connect``.

Each client's file, format and entry shape is in :data:`CLIENTS`, with the documentation it was
taken from beside it (checked Dec 2026). An entry is the broker's when the command it runs is
``mcp-broker connect URL`` or its helper runs ``mcp-broker headers URL`` (:func:`served_url`),
whatever the entry is called.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any
from urllib.parse import urlsplit

VIAS = ("connect", "helper")
CONNECT = "connect"
HELPER = "helper"
HEADERS_COMMAND = "headers"  # ``mcp-broker headers URL``, see broker.integrations.configure

JSON, TOML, YAML = "json", "toml", "yaml"

Entry = dict[str, Any]


@dataclass(frozen=True)
class Environment:
    """What decides file locations and command quoting (injected by tests)."""

    environ: Mapping[str, str]
    platform: str = sys.platform

    @property
    def home(self) -> Path:
        name = "USERPROFILE" if self.platform == "win32" else "HOME"
        value = self.environ.get(name)
        return Path(value) if value else Path.home()

    def app_data(self) -> Path:
        """The per-user application config root (where Electron apps keep their files)."""
        if self.platform == "darwin":
            return self.home / "Library" / "Application Support"
        if self.platform == "win32":
            return Path(self.environ.get("APPDATA") or self.home / "AppData" / "Roaming")
        return self.xdg_config()

    def xdg_config(self) -> Path:
        """``$XDG_CONFIG_HOME`` or ``~/.config``, on every OS (where CLI tools keep their files)."""
        return Path(self.environ.get("XDG_CONFIG_HOME") or self.home / ".config")

    def which(self, program: str) -> str | None:
        return shutil.which(program, path=self.environ.get("PATH", os.defpath))


@dataclass(frozen=True)
class Command:
    """What an entry runs: the absolute ``mcp-broker`` argv and the variables it needs."""

    argv: Sequence[str]
    env: Mapping[str, str]
    platform: str = sys.platform


Shape = Callable[[str, str, Command], Entry]
"""Builds a client's entry from (entry name, server URL, command)."""


def _stdio(name: str, url: str, command: Command) -> Entry:
    """``{"command", "args", "env"}``: Claude Desktop's shape, which most clients copied."""
    entry: Entry = {"command": command.argv[0], "args": [*command.argv[1:], CONNECT, url]}
    if command.env:
        entry["env"] = dict(command.env)
    return entry


def _typed_stdio(name: str, url: str, command: Command) -> Entry:
    return {"type": "stdio", **_stdio(name, url, command)}


def _claude_code(name: str, url: str, command: Command) -> Entry:
    entry = _typed_stdio(name, url, command)
    entry.setdefault("env", {})  # its own writer always has "env"
    return entry


def _claude_code_helper(name: str, url: str, command: Command) -> Entry:
    helper = shell_command([*command.argv, HEADERS_COMMAND, url], command.env, command.platform)
    return {"type": "http", "url": url, "headersHelper": helper}


def _opencode(name: str, url: str, command: Command) -> Entry:
    entry: Entry = {"type": "local", "command": [*command.argv, CONNECT, url], "enabled": True}
    if command.env:
        entry["environment"] = dict(command.env)
    return entry


def _goose(name: str, url: str, command: Command) -> Entry:
    return {
        "name": name,
        "type": "stdio",
        "cmd": command.argv[0],
        "args": [*command.argv[1:], CONNECT, url],
        "envs": dict(command.env),
        "enabled": True,
        "timeout": 300,
        "description": f"{url} through mcp-broker",
    }


@dataclass(frozen=True)
class McpClient:
    name: str
    title: str
    file_format: str  # JSON, TOML or YAML
    servers_key: str
    locate: Callable[[Environment], Path]
    shapes: Mapping[str, Shape]  # via → entry shape; the first is the default
    programs: tuple[str, ...] = ()  # its command-line programs, for --detect
    listed: bool = False  # servers are a list of entries with a "name" (Continue)
    new_file: str = ""  # what a new file starts with (Continue needs its header)
    jsonc: bool = False  # the client accepts comments: refuse such a file rather than lose them
    marker: Callable[[Environment], Path] | None = None  # installed when this exists

    @property
    def vias(self) -> tuple[str, ...]:
        return tuple(self.shapes)

    @property
    def default_via(self) -> str:
        return self.vias[0]

    def entry(self, name: str, url: str, via: str, command: Command) -> Entry:
        """The server entry called ``name`` for ``url``."""
        if via not in self.shapes:
            raise ValueError(f"{self.name} supports --via {' or '.join(self.vias)}")
        return self.shapes[via](name, url, command)

    def installed(self, env: Environment) -> bool:
        """Whether this user has the client: its config file or folder (or marker) exists, or
        one of its programs is on PATH."""
        file = self.locate(env)
        marker = self.marker(env) if self.marker else file.parent
        return marker.exists() or file.exists() or any(env.which(p) for p in self.programs)


def _claude_code_file(env: Environment) -> Path:
    # Claude Code keeps its user-scope file in $CLAUDE_CONFIG_DIR when that is set.
    configured = env.environ.get("CLAUDE_CONFIG_DIR")
    return (Path(configured) if configured else env.home) / ".claude.json"


def _zed_file(env: Environment) -> Path:
    if env.platform == "win32":
        return env.app_data() / "Zed" / "settings.json"
    return env.xdg_config() / "zed" / "settings.json"


def _cline_file(env: Environment) -> Path:
    # The VS Code extension's global storage; the Cline CLI's own folder when only it is there.
    extension = env.app_data() / "Code" / "User" / "globalStorage" / "saoudrizwan.claude-dev"
    cli = env.home / ".cline" / "data"
    folder = cli if cli.is_dir() and not extension.is_dir() else extension
    return folder / "settings" / "cline_mcp_settings.json"


def _goose_file(env: Environment) -> Path:
    if env.platform == "win32":
        return env.app_data() / "Block" / "goose" / "config" / "config.yaml"
    return env.xdg_config() / "goose" / "config.yaml"


def _codex_file(env: Environment) -> Path:
    configured = env.environ.get("CODEX_HOME")
    return (Path(configured) if configured else env.home / ".codex") / "config.toml"


CONTINUE_HEADER = "name: Local Config\nversion: 1.0.0\nschema: v1\n"

CLIENTS: dict[str, McpClient] = {
    client.name: client
    for client in (
        # https://modelcontextprotocol.io/quickstart/user — claude_desktop_config.json,
        # "mcpServers", stdio only (command/args/env). macOS ~/Library/Application Support/Claude,
        # Windows %APPDATA%\Claude, Linux $XDG_CONFIG_HOME/Claude.
        McpClient(
            "claude-desktop",
            "Claude Desktop",
            JSON,
            "mcpServers",
            lambda env: env.app_data() / "Claude" / "claude_desktop_config.json",
            {CONNECT: _stdio},
        ),
        # https://code.claude.com/docs/en/mcp ("Use dynamic headers for custom auth") — user scope
        # ~/.claude.json ($CLAUDE_CONFIG_DIR/.claude.json) → "mcpServers"; {"type": "stdio",
        # command, args, env} or {"type": "http", url, headersHelper}: a shell command (10 s
        # timeout) whose stdout is a JSON object of headers.
        McpClient(
            "claude-code",
            "Claude Code",
            JSON,
            "mcpServers",
            _claude_code_file,
            {HELPER: _claude_code_helper, CONNECT: _claude_code},
            programs=("claude",),
            marker=lambda env: env.home / ".claude",
        ),
        # https://cursor.com/docs/mcp — ~/.cursor/mcp.json → "mcpServers"; command/args/env, or
        # url with static headers (${env:VAR} only, no command).
        McpClient(
            "cursor",
            "Cursor",
            JSON,
            "mcpServers",
            lambda env: env.home / ".cursor" / "mcp.json",
            {CONNECT: _stdio},
            programs=("cursor",),
        ),
        # https://code.visualstudio.com/docs/copilot/reference/mcp-configuration — user profile
        # Code/User/mcp.json → top-level "servers"; {"type": "stdio", command, args, env}. Its
        # "inputs" prompt the user and cannot run a command. JSON with comments.
        McpClient(
            "vscode",
            "VS Code",
            JSON,
            "servers",
            lambda env: env.app_data() / "Code" / "User" / "mcp.json",
            {CONNECT: _typed_stdio},
            programs=("code",),
            jsonc=True,
        ),
        # https://docs.windsurf.com/windsurf/cascade/mcp — ~/.codeium/windsurf/mcp_config.json
        # (Windows %USERPROFILE%\.codeium\windsurf) → "mcpServers"; command/args/env, or
        # "serverUrl" with static headers.
        McpClient(
            "windsurf",
            "Windsurf",
            JSON,
            "mcpServers",
            lambda env: env.home / ".codeium" / "windsurf" / "mcp_config.json",
            {CONNECT: _stdio},
            programs=("windsurf",),
        ),
        # https://zed.dev/docs/ai/mcp ("As Custom Servers") and
        # https://zed.dev/docs/configuring-zed — settings.json → "context_servers";
        # {command, args, env}. ~/.config/zed ($XDG_CONFIG_HOME/zed) on Linux and macOS,
        # %APPDATA%\Zed on Windows. JSON with // comments (its default file has some).
        McpClient(
            "zed",
            "Zed",
            JSON,
            "context_servers",
            _zed_file,
            {CONNECT: _stdio},
            programs=("zed", "zeditor"),
            jsonc=True,
        ),
        # https://docs.cline.bot/mcp/configuring-mcp-servers — cline_mcp_settings.json →
        # "mcpServers"; command/args/env. The VS Code extension keeps it in
        # Code/User/globalStorage/saoudrizwan.claude-dev/settings/, the Cline CLI in
        # ~/.cline/data/settings/.
        McpClient(
            "cline",
            "Cline",
            JSON,
            "mcpServers",
            _cline_file,
            {CONNECT: _stdio},
            programs=("cline",),
        ),
        # https://docs.continue.dev/customize/deep-dives/mcp and
        # https://docs.continue.dev/reference (config.yaml) — ~/.continue/config.yaml
        # (%USERPROFILE%\.continue on Windows) → "mcpServers", a list of {name, command, args,
        # env}; a new config.yaml needs name, version and schema.
        McpClient(
            "continue",
            "Continue",
            YAML,
            "mcpServers",
            lambda env: env.home / ".continue" / "config.yaml",
            {CONNECT: _stdio},
            programs=("cn",),
            listed=True,
            new_file=CONTINUE_HEADER,
        ),
        # https://block.github.io/goose/docs/guides/config-files — ~/.config/goose/config.yaml
        # (Windows %APPDATA%\Block\goose\config\config.yaml) → "extensions", a mapping of
        # {name, type: stdio, cmd, args, envs, enabled, timeout, description}.
        McpClient(
            "goose",
            "Goose",
            YAML,
            "extensions",
            _goose_file,
            {CONNECT: _goose},
            programs=("goose",),
        ),
        # https://developers.openai.com/codex/mcp and
        # https://github.com/openai/codex/blob/main/docs/config.md — $CODEX_HOME/config.toml
        # (~/.codex) → [mcp_servers.NAME] tables; command/args/env, or url with
        # bearer_token_env_var / env_http_headers (environment variables only).
        McpClient(
            "codex",
            "Codex CLI",
            TOML,
            "mcp_servers",
            _codex_file,
            {CONNECT: _stdio},
            programs=("codex",),
        ),
        # https://geminicli.com/docs/tools/mcp-server/ — ~/.gemini/settings.json →
        # "mcpServers"; command/args/env, or httpUrl with static headers. Comments allowed.
        McpClient(
            "gemini",
            "Gemini CLI",
            JSON,
            "mcpServers",
            lambda env: env.home / ".gemini" / "settings.json",
            {CONNECT: _stdio},
            programs=("gemini",),
            jsonc=True,
        ),
        # https://docs.aws.amazon.com/amazonq/latest/qdeveloper-ug/command-line-mcp-configuration.html
        # and https://github.com/aws/amazon-q-developer-cli/blob/main/docs/agent-format.md
        # (useLegacyMcpJson) — global ~/.aws/amazonq/mcp.json → "mcpServers";
        # command/args/env/timeout/disabled. The default agent reads it.
        McpClient(
            "amazonq",
            "Amazon Q Developer CLI",
            JSON,
            "mcpServers",
            lambda env: env.home / ".aws" / "amazonq" / "mcp.json",
            {CONNECT: _stdio},
            programs=("q", "qchat"),
        ),
        # https://kiro.dev/docs/mcp/configuration and https://kiro.dev/docs/cli/mcp/configuration
        # — user level ~/.kiro/settings/mcp.json → "mcpServers"; command/args/env/disabled, or
        # url with static headers.
        McpClient(
            "kiro",
            "Kiro",
            JSON,
            "mcpServers",
            lambda env: env.home / ".kiro" / "settings" / "mcp.json",
            {CONNECT: _stdio},
            programs=("kiro", "kiro-cli"),
            marker=lambda env: env.home / ".kiro",
        ),
        # https://lmstudio.ai/docs/app/mcp — ~/.lmstudio/mcp.json (%USERPROFILE%\.lmstudio on
        # Windows) → "mcpServers", "Cursor's mcp.json notation".
        McpClient(
            "lmstudio",
            "LM Studio",
            JSON,
            "mcpServers",
            lambda env: env.home / ".lmstudio" / "mcp.json",
            {CONNECT: _stdio},
            programs=("lms",),
        ),
        # https://opencode.ai/docs/mcp-servers and https://opencode.ai/docs/config — global
        # ~/.config/opencode/opencode.json → "mcp"; {"type": "local", "command": [argv…],
        # "enabled", "environment"} or {"type": "remote", url, headers}.
        McpClient(
            "opencode",
            "opencode",
            JSON,
            "mcp",
            lambda env: env.xdg_config() / "opencode" / "opencode.json",
            {CONNECT: _opencode},
            programs=("opencode",),
            jsonc=True,
        ),
    )
}


def shell_command(argv: Sequence[str], env: Mapping[str, str], platform: str) -> str:
    """``argv`` as one command line for the client's shell (``sh -c`` or ``cmd.exe /c``)."""
    if platform == "win32":
        # cmd.exe cannot set a variable for one command; the helper then uses the defaults.
        return subprocess.list2cmdline(list(argv))
    assignments = [f"{name}={shlex.quote(value)}" for name, value in env.items()]
    return " ".join([*assignments, shlex.join(argv)])


def default_entry_name(url: str) -> str:
    """A stable entry name from the URL that every client accepts (``^[A-Za-z][\\w-]*$``):
    ``https://mcp.example.com/mcp`` → ``mcp-example-com-mcp``."""
    parts = urlsplit(url)
    text = f"{parts.hostname or ''}-{parts.port or ''}-{parts.path}"
    name = re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()
    return name if name[:1].isalpha() else f"mcp-{name}"


def served_url(entry: object) -> str | None:
    """The server URL of an entry the broker wrote (``connect`` or ``headers``), else None."""
    argv = _entry_argv(entry)
    if argv is not None:
        return _url_after(argv, CONNECT)
    if isinstance(entry, dict) and isinstance(entry.get("headersHelper"), str):
        return _url_after(_split_shell(entry["headersHelper"]), HEADERS_COMMAND)
    return None


def _entry_argv(entry: object) -> list[str] | None:
    """What a stdio entry runs, in any of the clients' shapes: ``command`` + ``args``, Goose's
    ``cmd`` + ``args``, or opencode's ``command`` list."""
    if not isinstance(entry, dict):
        return None
    command = entry.get("command", entry.get("cmd"))
    args = entry.get("args", [])
    words = [command, *args] if isinstance(command, str) and isinstance(args, list) else command
    if isinstance(words, list) and words and all(isinstance(w, str) for w in words):
        return words
    return None


def _split_shell(command: str) -> list[str]:
    # Only the broker's name and the URL matter here, so Windows backslashes become slashes
    # first and POSIX rules then split a cmd.exe line from list2cmdline too.
    try:
        return shlex.split(command.replace("\\", "/"))
    except ValueError:
        return []


def _url_after(argv: list[str], subcommand: str) -> str | None:
    """The argument after ``subcommand`` when the words before it run the broker."""
    if subcommand not in argv:
        return None
    index = argv.index(subcommand)
    if index + 1 < len(argv) and any(_is_broker(word) for word in argv[:index]):
        return argv[index + 1]
    return None


def _is_broker(word: str) -> bool:
    return word == "broker.cli" or PurePath(word.replace("\\", "/")).stem == "mcp-broker"
