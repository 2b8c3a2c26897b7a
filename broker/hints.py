"""Commands the broker suggests to the user, safe to paste."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable

#: Characters no shell (POSIX or cmd.exe) gives a meaning to in an argument.
_PLAIN = re.compile(r"[A-Za-z0-9._:/@+=,~-]+")


def login_command(url: str, scopes: Iterable[str] = ()) -> str:
    """``mcp-broker login URL [--scope S ...]``. A scope token may hold ``$``, ``(``, ``&`` or a
    backtick (RFC 6749 §3.3) and may come from a client or a server; no quoting is safe in
    every shell (cmd.exe has none for ``&``), so such a scope is shown as a placeholder."""
    parts = ["mcp-broker", "login", url if _PLAIN.fullmatch(url) else shlex.quote(url)]
    for scope in scopes:
        parts += ["--scope", scope if _PLAIN.fullmatch(scope) else "SCOPE"]
    return " ".join(parts)
