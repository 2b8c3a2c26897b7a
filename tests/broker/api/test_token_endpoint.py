"""The v1 contract (DESIGN §3) against the running API: token, status, openapi, errors;
never a refresh or ID token, always no-store; canonical resources; never stuck behind a sign-in."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import pytest

from broker.errors import InteractionRequired, ServerUnreachable, StorageLocked
from tests.broker.api.conftest import Api
from tests.broker.api.fakes import (
    CANARY_ACCESS,
    CANARY_REFRESH,
    SERVER_A,
    SERVER_B,
    TOKEN_RESPONSE_FIELDS,
)

pytestmark = pytest.mark.integration


def test_a_token_response_has_the_contract_fields_and_nothing_else(api: Api) -> None:
    response = api.token({"resource": SERVER_A, "min_valid_seconds": 120})

    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == TOKEN_RESPONSE_FIELDS
    assert body["access_token"] == f"{CANARY_ACCESS}-{SERVER_A}"
    assert body["token_type"] == "Bearer"
    assert body["resource"] == SERVER_A and body["scope"] == "openid mcp/read"
    assert 3500 < body["expires_in"] <= 3600
    assert abs(body["expires_at"] - (time.time() + body["expires_in"])) <= 2
    assert api.provider.calls == [(SERVER_A, 120.0)]


def test_no_refresh_or_id_token_is_ever_serialised(api: Api) -> None:
    responses = [
        api.token({"resource": SERVER_A}),
        api.http.get("/v1/status", headers=api.headers()),
        api.http.get("/v1/openapi.json", headers={"X-MCP-Broker": "1"}),
    ]
    for response in responses:
        assert CANARY_REFRESH not in response.text
        assert "refresh_token" not in response.text and "id_token" not in response.text
        assert response.headers["Cache-Control"] == "no-store"


def test_status_lists_servers_and_states_but_no_tokens(api: Api) -> None:
    response = api.http.get("/v1/status", headers=api.headers())

    assert response.status_code == 200
    servers = {s["url"]: s for s in response.json()["servers"]}
    assert set(servers) == {SERVER_A, SERVER_B}
    assert servers[SERVER_A]["state"] == "valid" and servers[SERVER_A]["expires_in"] > 0
    assert CANARY_ACCESS not in response.text


def test_status_names_each_server_and_says_which_are_machine_identities(api: Api) -> None:
    api.provider.names[SERVER_A] = "Example MCP"
    api.provider.machines.add(SERVER_B)

    servers = {
        s["url"]: s for s in api.http.get("/v1/status", headers=api.headers()).json()["servers"]
    }

    assert (servers[SERVER_A]["name"], servers[SERVER_A]["machine"]) == ("Example MCP", False)
    assert (servers[SERVER_B]["name"], servers[SERVER_B]["machine"]) == (None, True)
    assert servers[SERVER_B]["client_id"] == "client-1"


def test_status_needs_the_secret(api: Api) -> None:
    response = api.http.get("/v1/status", headers={"X-MCP-Broker": "1"})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_openapi_document_describes_every_endpoint(api: Api) -> None:
    doc = api.http.get("/v1/openapi.json", headers={"X-MCP-Broker": "1"}).json()
    assert doc["openapi"].startswith("3.1")
    assert set(doc["paths"]) == {"/v1/token", "/v1/status", "/v1/hello", "/v1/openapi.json"}
    schema = doc["components"]["schemas"]["TokenRequest"]
    assert schema["additionalProperties"] is False and schema["required"] == ["resource"]


def test_interaction_required_is_answered_at_once_and_the_tray_is_told(api: Api) -> None:
    api.provider.failures[SERVER_A] = InteractionRequired(f"sign in: mcp-broker login {SERVER_A}")

    first = api.token({"resource": SERVER_A})
    second = api.token({"resource": SERVER_A})

    assert first.status_code == 409
    assert first.json() == {
        "error": "interaction_required",
        "error_description": f"sign in: mcp-broker login {SERVER_A}",
    }
    assert second.status_code == 409
    assert api.sign_in_asked == [(SERVER_A, "default")]  # once, not per request


@pytest.mark.parametrize(
    ("failure", "status", "error"),
    [
        (StorageLocked("the keyring is locked"), 503, "temporarily_unavailable"),
        (ServerUnreachable("idp down"), 503, "temporarily_unavailable"),
    ],
)
def test_token_side_failures_map_to_json_errors(
    api: Api, failure: Exception, status: int, error: str
) -> None:
    api.provider.failures[SERVER_A] = failure  # type: ignore[assignment]
    response = api.token({"resource": SERVER_A})
    assert response.status_code == status
    assert response.json()["error"] == error
    assert "Retry-After" in response.headers


def test_an_unconfigured_server_is_404_invalid_target(api: Api) -> None:
    response = api.token({"resource": "https://c.example/mcp"})
    assert response.status_code == 404
    assert response.json()["error"] == "invalid_target"


def test_requested_scopes_must_be_in_the_token(api: Api) -> None:
    assert api.token({"resource": SERVER_A, "scope": "mcp/read"}).status_code == 200
    response = api.token({"resource": SERVER_A, "scope": "mcp/read mcp/admin"})
    assert response.status_code == 403
    assert response.json()["error"] == "insufficient_scope"


def test_a_missing_scope_of_this_server_is_offered_in_the_tray(api: Api) -> None:
    admin = f"{SERVER_A}/admin"
    response = api.token({"resource": SERVER_A, "scope": f"mcp/read {admin}"})

    assert response.status_code == 403
    description = response.json()["error_description"]
    assert f"mcp-broker login {SERVER_A} --scope {admin}" in description
    assert "tray offers" in description
    assert api.sign_in_asked == [(SERVER_A, "default", admin)]  # what is missing, no more


def test_a_scope_of_another_server_is_never_offered_and_never_pasted(api: Api) -> None:
    """A client must not get the user to grant scopes meant elsewhere, nor hand them a
    command that a shell would run something in (RFC 6749 scope tokens allow $, ( and &)."""
    for scope in ("https://b.example/mcp/admin", "$(touch${IFS}pwned)", "a&calc"):
        response = api.token({"resource": SERVER_A, "scope": scope})
        assert response.status_code == 403
        description = response.json()["error_description"]
        assert "does not offer" in description
        command = description.split("run:")[1]
        assert "$(" not in command and "&" not in command
        assert ("--scope SCOPE" in command) is (scope != "https://b.example/mcp/admin")
    assert api.sign_in_asked == []


def test_the_tray_is_asked_once_a_minute_per_client_whatever_the_scope(api: Api) -> None:
    for n in range(5):  # a client varying the scope must not flood the user
        api.token({"resource": SERVER_A, "scope": f"{SERVER_A}/s{n}"})
    assert api.sign_in_asked == [(SERVER_A, "default", f"{SERVER_A}/s0")]


# -- #20: one canonicalisation rule --------------------------------------------------------------


@pytest.mark.parametrize(
    "spelling",
    [
        "HTTPS://A.EXAMPLE/mcp",
        "https://a.example:443/mcp",
        "https://a.example/mcp/",
        "https://a.example/mcp#fragment",
        "https://A.example:443/mcp//",
    ],
)
def test_spellings_of_a_server_get_its_token(api: Api, spelling: str) -> None:
    response = api.token({"resource": spelling})
    assert response.status_code == 200
    assert response.json()["resource"] == SERVER_A
    assert api.provider.calls[-1][0] == SERVER_A  # the provider only sees the canonical form


@pytest.mark.parametrize(
    "other",
    [
        "https://a.example/MCP",
        "https://a.example/mcp/x",
        "https://a.example:8443/mcp",
        "http://a.example/mcp",
        "https://a.example/mcp?x=1",
        "https://a.example.evil/mcp",
    ],
)
def test_other_urls_never_get_that_servers_token(api: Api, other: str) -> None:
    response = api.token({"resource": other})
    assert response.status_code == 404
    assert CANARY_ACCESS not in response.text


@pytest.mark.parametrize(
    "bad", ["ftp://a.example/mcp", "https://user:pw@a.example/mcp", "a.example/mcp", "https://"]
)
def test_unusable_resource_urls_are_refused(api: Api, bad: str) -> None:
    response = api.token({"resource": bad})
    assert response.status_code == 400
    assert api.provider.calls == []


def test_a_token_kept_for_another_server_is_never_returned(api: Api) -> None:
    api.provider.tokens[SERVER_A] = api.provider.tokens[SERVER_B]  # a confused token side
    response = api.token({"resource": SERVER_A})
    assert response.status_code == 500
    assert CANARY_ACCESS not in response.text


# -- #31: the API keeps answering while the token side is stuck -----------------------------------


def test_a_blocked_token_side_is_bounded_and_the_api_keeps_answering(paths, api_settings) -> None:
    import httpx2

    from broker.api.server import start_api
    from tests.broker.api.fakes import FakeProvider

    provider = FakeProvider()
    provider.gate = threading.Event()  # e.g. a keyring unlock prompt nobody answers
    provider.gated = {SERVER_A}
    settings = replace(api_settings, call_timeout=1.0)
    with (
        start_api(provider, paths, settings=settings) as server,
        httpx2.Client(base_url=server.url, trust_env=False, timeout=30) as http,
    ):
        headers = {"X-MCP-Broker": "1", "Authorization": f"Bearer {server.clients.default_secret}"}
        results: list[int] = []
        blocked = [
            threading.Thread(
                target=lambda: results.append(
                    http.post("/v1/token", json={"resource": SERVER_A}, headers=headers).status_code
                )
            )
            for _ in range(6)
        ]
        for thread in blocked:
            thread.start()
        while len(provider.calls) < 1:
            time.sleep(0.01)
        other = http.post("/v1/token", json={"resource": SERVER_B}, headers=headers)
        document = http.get("/v1/openapi.json", headers={"X-MCP-Broker": "1"})
        for thread in blocked:
            thread.join(30)
        provider.gate.set()

    assert other.status_code == 200 and document.status_code == 200
    assert sorted(results) == [503] * 6  # each answered within the bound, none hung
