"""Canary run for the API (no secret in any log, output or file): known token, refresh-token
and secret values go through every path of the API; afterwards no log line and no file the API
wrote contains them."""

from __future__ import annotations

import json
import logging

import pytest

from broker.clients import ClientsFile
from broker.errors import InteractionRequired
from tests.api.conftest import Api
from tests.api.fakes import (
    CANARY_ACCESS,
    CANARY_REFRESH,
    SERVER_A,
    SERVER_B,
    build_request,
    raw_request,
)


def test_no_token_secret_or_query_reaches_a_log_or_a_file(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    named = ClientsFile(api.paths.state_dir, api.paths.lock_dir).add("agent", None)
    api.provider.failures[SERVER_B] = InteractionRequired("sign in")

    api.token({"resource": SERVER_A})
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
    api.server.close()

    files = {
        p.name: p.read_text()
        for p in api.paths.state_dir.iterdir()
        if p.is_file() and p.name != "endpoint.json"  # the default secret's one home
    }
    for canary in (CANARY_ACCESS, CANARY_REFRESH, api.secret, named):
        assert canary not in caplog.text
        for name, text in files.items():
            assert canary not in text, name
    assert "audit.log" in files and "clients.json" in files
    assert json.loads(files["clients.json"])["clients"]["agent"]["secret_sha256"]
