"""Canary run for the API (no secret in any log, output or file): known token, refresh-token
and secret values go through every path of the API; afterwards no log line, nothing written to
stdout or stderr (by any thread, at the file-descriptor level) and no file anywhere under the
broker's home (state, logs, locks, config) contains them."""

from __future__ import annotations

import json
import logging

import pytest

from broker.api.clients import ClientsFile
from broker.errors import InteractionRequired
from tests.broker.api.conftest import Api
from tests.broker.api.fakes import (
    CANARY_ACCESS,
    CANARY_REFRESH,
    SERVER_A,
    SERVER_B,
    build_request,
    raw_request,
)
from tests.support.canaries import files_under, leaks

pytestmark = pytest.mark.integration


def test_no_token_secret_or_query_reaches_a_log_a_terminal_or_a_file(
    api: Api, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    named = ClientsFile(api.paths.state_dir, api.paths.lock_dir).add("agent", None)
    api.provider.failures[SERVER_B] = InteractionRequired("sign in")

    served = api.token({"resource": SERVER_A})
    api.token({"resource": SERVER_B})
    api.token({"resource": SERVER_A}, secret=named)  # consent asked, logged by nobody here
    api.token({"resource": SERVER_A}, secret=named + "x")
    api.http.get("/v1/status", headers=api.headers())
    raw_request(
        api.port,
        build_request(
            "GET",
            f"/v1/status?secret={api.secret}&t={CANARY_ACCESS}",
            api.port,
            {"X-MCP-Broker": "1"},
        ),
    )
    root = api.paths.config_file.parent
    running = files_under(root)  # endpoint.json exists only while the API runs
    api.server.close()
    stopped = files_under(root)
    terminal = capfd.readouterr()

    assert served.json()["access_token"].startswith(CANARY_ACCESS)  # the canary went through
    assert "state/endpoint.json" in running
    assert {"state/audit.log", "state/clients.json"} <= stopped.keys()
    assert any(name.startswith("locks/") for name in stopped), sorted(stopped)
    home = {f"{name} (running)": text for name, text in running.items()} | stopped
    places = {
        "log records": caplog.text,
        "stdout": terminal.out,
        "stderr": terminal.err,
        **{name: text for name, text in home.items() if "endpoint.json" not in name},
    }
    assert leaks([CANARY_ACCESS, CANARY_REFRESH, api.secret, named], places) == []
    # endpoint.json is the default secret's one home, and holds nothing else secret.
    assert leaks([CANARY_ACCESS, CANARY_REFRESH, named], home) == []
    assert json.loads(stopped["state/clients.json"])["clients"]["agent"]["secret_sha256"]
