"""A DPoP-bound server's token is never handed out (RFC 9449): ``POST /v1/token`` answers
403 ``dpop_bound`` naming the bridge, and ``mcp-broker token``/``headers`` exit 3 with the same
message, whether the running broker or the library answers; the token and the key stay in."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from broker.api.audit import read_audit_log
from broker.errors import DpopBound, from_wire
from broker.oauth import dpop as proofs
from tests.broker.api.conftest import Api
from tests.broker.api.fakes import CANARY_ACCESS, CANARY_REFRESH, SERVER_A, SERVER_B
from tests.broker.api.test_helper_commands import helper

pytestmark = pytest.mark.integration


def bind_server_a(api: Api) -> str:
    """Make SERVER_A's tokens DPoP-bound; returns the private key's ``d`` (a canary)."""
    key = proofs.new_key()
    api.provider.tokens[SERVER_A] = dataclasses.replace(
        api.provider.tokens[SERVER_A], token_type="DPoP", dpop_key=proofs.key_to_text(key)
    )
    return str(key.as_dict(private=True)["d"])


def test_the_token_api_refuses_a_bound_token_and_names_the_bridge(api: Api) -> None:
    private_d = bind_server_a(api)
    response = api.token({"resource": SERVER_A})

    assert response.status_code == 403
    body = response.json()
    assert body["error"] == "dpop_bound"
    assert f"mcp-broker connect {SERVER_A}" in body["error_description"]
    assert response.headers["Cache-Control"] == "no-store"
    for secret in (CANARY_ACCESS, CANARY_REFRESH, private_d):
        assert secret not in response.text
    # The client side raises the same class for the answer (one error tree).
    assert isinstance(from_wire(403, "dpop_bound", body["error_description"]), DpopBound)
    # Bearer servers are served as before.
    assert api.token({"resource": SERVER_B}).status_code == 200

    api.server.close()
    outcomes = {(e["resource"], e["outcome"]) for e in read_audit_log(api.paths.audit_log)}
    assert (SERVER_A, "dpop_bound") in outcomes
    assert private_d not in api.paths.audit_log.read_text()


def test_status_says_which_servers_are_dpop_bound_and_shows_no_key(api: Api) -> None:
    private_d = bind_server_a(api)
    response = api.http.get("/v1/status", headers=api.headers())

    servers = {s["url"]: s for s in response.json()["servers"]}
    assert servers[SERVER_A]["dpop_bound"] is True and servers[SERVER_B]["dpop_bound"] is False
    assert private_d not in response.text and "dpop_key" not in response.text
    schema = api.http.get("/v1/openapi.json", headers=api.headers()).json()
    status_item = schema["components"]["schemas"]["Status"]["properties"]["servers"]["items"]
    assert status_item["properties"]["dpop_bound"]["type"] == "boolean"


def test_token_and_headers_exit_3_through_the_running_broker(api: Api) -> None:
    private_d = bind_server_a(api)
    home: Path = api.paths.state_dir.parent
    for command in ("token", "headers"):
        code, out, err, _ = helper(home, command, SERVER_A)
        assert code == 3 and out == ""
        assert "DPoP-bound" in err and f"mcp-broker connect {SERVER_A}" in err
        for secret in (CANARY_ACCESS, private_d):
            assert secret not in out + err
