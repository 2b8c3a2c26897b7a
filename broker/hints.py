"""Commands the broker suggests to the user, quoted so that pasting them is safe."""

from __future__ import annotations

import shlex
from collections.abc import Iterable


def login_command(url: str, scopes: Iterable[str] = ()) -> str:
    """``mcp-broker login URL [--scope S ...]`` quoted for a POSIX shell: a scope token may hold
    ``$``, ``(`` or a backtick (RFC 6749 §3.3), and it may come from a client or a server."""
    extra = "".join(f" --scope {shlex.quote(scope)}" for scope in scopes)
    return f"mcp-broker login {shlex.quote(url)}{extra}"
