"""``mcp-broker headers`` and ``token`` as a client runs them: a fresh process each time.

With a broker running they ask its token API (``endpoint.json`` read and checked, the listener's
hello proof verified) and import none of the broker's heavy parts: no OAuth library, no mcp SDK,
no Flask or waitress, no HTTP client library, no keyring. With no broker answering they use the
broker library, with the same messages and exit codes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from broker.api.endpoint import Endpoint, write_endpoint
from tests.broker.api.conftest import Api
from tests.broker.api.fakes import SERVER_A, token_set
from tests.support.procs import refusing_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
HEAVY = ("mcp", "authlib", "flask", "werkzeug", "waitress", "httpx2", "keyring", "http.client")
# Runs the helper as the console script does and reports what it imported (on stderr, after
# the helper's own output).
RUNNER = (
    "import sys; from broker.cli import main; code = main(sys.argv[1:]); "
    "print(json.dumps(sorted(sys.modules)), file=sys.stderr); sys.exit(code)"
)


def helper(home: Path, *args: str) -> tuple[int, str, str, set[str]]:
    """(exit code, stdout, the helper's stderr, modules imported) of one helper run."""
    env = {**os.environ, "MCP_BROKER_HOME": str(home), "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", "import json; " + RUNNER, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    *errors, modules = done.stderr.splitlines()
    return done.returncode, done.stdout, "\n".join(errors), set(json.loads(modules))


def heavy_in(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m in HEAVY or m.split(".")[0] in HEAVY[:-1])


def test_headers_asks_the_running_broker_and_imports_nothing_heavy(api: Api) -> None:
    code, out, err, modules = helper(api.paths.state_dir.parent, "headers", SERVER_A)

    assert (code, err) == (0, "")
    assert json.loads(out) == {"Authorization": f"Bearer {token_set(SERVER_A).access_token}"}
    assert api.provider.calls_for(SERVER_A) == 1  # the broker's token service answered
    assert heavy_in(modules) == []
    assert "broker.app" not in modules and "broker.tokens.service" not in modules


def test_token_through_the_api_keeps_the_library_messages_and_exit_codes(api: Api) -> None:
    code, out, _, modules = helper(api.paths.state_dir.parent, "token", SERVER_A)
    assert (code, out) == (0, token_set(SERVER_A).access_token + "\n")
    assert heavy_in(modules) == []

    other = "https://c.example/mcp"
    code, out, err, _ = helper(api.paths.state_dir.parent, "token", other)
    assert (code, out) == (3, "")  # ConfigError, as the library answers
    assert err == f"mcp-broker: {other} is not configured; add it with: mcp-broker add {other}"


def test_with_no_broker_answering_the_library_answers_with_its_own_message(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    state = home / "state"
    state.mkdir(parents=True, mode=0o700)
    with refusing_port() as port:  # a broker that crashed left its file behind
        write_endpoint(
            state / "endpoint.json", Endpoint(f"http://127.0.0.1:{port}", port, 1, "s3cret", 0.0)
        )
        code, out, err, modules = helper(home, "headers", SERVER_A)

    assert (code, out) == (3, "")
    assert (
        err == f"mcp-broker: {SERVER_A} is not configured; add it with: mcp-broker add {SERVER_A}"
    )
    assert "broker.app" in modules  # the library answered
    library_needs = ("keyring", "http.client")  # the keyring (which loads http.client) only
    assert [m for m in heavy_in(modules) if not m.startswith(library_needs)] == []
