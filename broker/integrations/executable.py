"""How other programs start the broker: the command line written into client configs and
autostart entries.

GUI clients (Claude Desktop, a login session's autostart) run with a thin ``PATH``, so the
command is always an absolute path: the ``mcp-broker`` script this process was started as, else
the one on ``PATH``, else ``<python> -m broker.cli`` of this interpreter. A symlinked script
(pipx, ``~/.local/bin``) keeps its link path, so upgrading the broker does not break the entry.

Environment variables that choose *which* broker (``MCP_BROKER_HOME``, ``MCP_BROKER_CONFIG``) are
carried into the entry when set, or the client would talk to another config than the one the user
configured it from.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path

SCRIPT = "mcp-broker"
CARRIED_ENVIRONMENT = ("MCP_BROKER_HOME", "MCP_BROKER_CONFIG")


def broker_command(
    argv0: str | None = None, which: str | None = None, python: str | None = None
) -> list[str]:
    """The absolute argv prefix that starts ``mcp-broker`` (arguments are for tests)."""
    started_as = Path(sys.argv[0] if argv0 is None else argv0)
    if started_as.stem == SCRIPT and started_as.is_file():
        return [os.path.abspath(started_as)]
    found = shutil.which(SCRIPT) if which is None else which
    if found:
        return [os.path.abspath(found)]
    return [os.path.abspath(python or sys.executable), "-m", "broker.cli"]


def carried_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The broker-selecting variables set in ``environ``, as absolute paths."""
    env = os.environ if environ is None else environ
    return {
        name: os.path.abspath(os.path.expanduser(env[name]))
        for name in CARRIED_ENVIRONMENT
        if env.get(name)
    }
