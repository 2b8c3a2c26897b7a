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

Per client, from the clients' documentation (checked Nov 2026):

claude-desktop  ``claude_desktop_config.json`` → ``mcpServers``; stdio servers only
                (``command``, ``args``, ``env``). macOS ``~/Library/Application Support/Claude``,
                Windows ``%APPDATA%\\Claude``, Linux ``$XDG_CONFIG_HOME/Claude``.
                https://modelcontextprotocol.io/quickstart/user
claude-code     user scope: ``~/.claude.json`` (``$CLAUDE_CONFIG_DIR/.claude.json`` when set) →
                ``mcpServers``; ``{"type": "stdio", "command", "args", "env"}`` or
                ``{"type": "http", "url", "headersHelper"}``. The helper is a shell command
                (10 s timeout) whose stdout is a JSON object of headers.
                https://code.claude.com/docs/en/mcp ("Use dynamic headers for custom auth")
cursor          ``~/.cursor/mcp.json`` → ``mcpServers``; ``command``/``args``/``env``, or ``url``
                with static ``headers`` (``${env:VAR}`` only, no command): connect.
                https://cursor.com/docs/mcp
vscode          user profile ``Code/User/mcp.json`` → top-level ``servers``;
                ``{"type": "stdio", "command", "args", "env"}``. Its ``inputs`` variables prompt
                the user and cannot run a command, so: connect. The file is JSON with comments;
                a file that has comments or trailing commas is refused, never rewritten.
                https://code.visualstudio.com/docs/copilot/reference/mcp-configuration
"""

from __future__ import annotations

import re
import shlex
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
        return Path(self.environ.get("XDG_CONFIG_HOME") or self.home / ".config")


@dataclass(frozen=True)
class McpClient:
    name: str
    title: str
    servers_key: str
    vias: tuple[str, ...]
    locate: Callable[[Environment], Path]
    stdio_type: bool  # write "type": "stdio" (clients whose own writer does)
    always_env: bool = False  # write "env": {} even when empty (Claude Code's own shape)
    jsonc: bool = False  # the client accepts comments: refuse such a file rather than lose them

    @property
    def default_via(self) -> str:
        return self.vias[0]

    def entry(
        self,
        url: str,
        via: str,
        command: Sequence[str],
        env: Mapping[str, str],
        platform: str = sys.platform,
    ) -> Entry:
        """The server entry for ``url``; ``command`` is the absolute ``mcp-broker`` argv."""
        if via not in self.vias:
            raise ValueError(f"{self.name} supports --via {' or '.join(self.vias)}")
        if via == HELPER:
            helper = shell_command([*command, HEADERS_COMMAND, url], env, platform)
            return {"type": "http", "url": url, "headersHelper": helper}
        entry: Entry = {"type": "stdio"} if self.stdio_type else {}
        entry["command"] = command[0]
        entry["args"] = [*command[1:], CONNECT, url]
        if env or self.always_env:
            entry["env"] = dict(env)
        return entry


def _claude_code_file(env: Environment) -> Path:
    # Claude Code keeps its user-scope file in $CLAUDE_CONFIG_DIR when that is set.
    configured = env.environ.get("CLAUDE_CONFIG_DIR")
    return (Path(configured) if configured else env.home) / ".claude.json"


CLIENTS: dict[str, McpClient] = {
    client.name: client
    for client in (
        McpClient(
            "claude-desktop",
            "Claude Desktop",
            "mcpServers",
            (CONNECT,),
            lambda env: env.app_data() / "Claude" / "claude_desktop_config.json",
            stdio_type=False,
        ),
        McpClient(
            "claude-code",
            "Claude Code",
            "mcpServers",
            (HELPER, CONNECT),
            _claude_code_file,
            stdio_type=True,
            always_env=True,
        ),
        McpClient(
            "cursor",
            "Cursor",
            "mcpServers",
            (CONNECT,),
            lambda env: env.home / ".cursor" / "mcp.json",
            stdio_type=False,
        ),
        McpClient(
            "vscode",
            "VS Code",
            "servers",
            (CONNECT,),
            lambda env: env.app_data() / "Code" / "User" / "mcp.json",
            stdio_type=True,
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
    if not isinstance(entry, dict):
        return None
    helper = entry.get("headersHelper")
    if isinstance(helper, str):
        return _url_after(_split_shell(helper), HEADERS_COMMAND)
    command, args = entry.get("command"), entry.get("args")
    if (
        isinstance(command, str)
        and isinstance(args, list)
        and all(isinstance(a, str) for a in args)
    ):
        return _url_after([command, *args], CONNECT)
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
