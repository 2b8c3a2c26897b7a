"""Named clients: own secrets (hash only on disk), resource scopes (a client scoped to one
server never gets another's token), first-use consent through the pluggable prompt, and the
audit log (never a token)."""

from __future__ import annotations

import json
import stat

import pytest

from broker.api.audit import read_audit_log
from broker.api.clients import ClientsFile, ConsentRequest, Decision
from tests.broker.api.conftest import Api
from tests.broker.api.fakes import CANARY_ACCESS, CANARY_REFRESH, SERVER_A, SERVER_B

pytestmark = pytest.mark.integration


def clients_file(api: Api) -> ClientsFile:
    return ClientsFile(api.paths.state_dir, api.paths.lock_dir)


def test_a_named_client_gets_tokens_with_its_own_secret_and_only_its_hash_is_stored(
    api: Api,
) -> None:
    secret = clients_file(api).add("script", [SERVER_A])

    response = api.token({"resource": SERVER_A}, secret=secret)

    assert response.status_code == 200
    stored = clients_file(api).path
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert secret not in stored.read_text()
    assert json.loads(stored.read_text())["clients"]["script"]["resources"] == [SERVER_A]


def test_a_client_scoped_to_a_asking_for_b_is_403_and_the_token_side_is_not_contacted(
    api: Api,
) -> None:
    secret = clients_file(api).add("script", [SERVER_A])

    response = api.token({"resource": SERVER_B}, secret=secret)

    assert response.status_code == 403
    assert response.json()["error"] == "access_denied"
    assert api.provider.calls_for(SERVER_B) == 0
    assert api.consent_asked == []  # a scope is a hard limit, not a question


def test_a_removed_client_is_refused_at_once(api: Api) -> None:
    secret = clients_file(api).add("script", [SERVER_A])
    assert api.token({"resource": SERVER_A}, secret=secret).status_code == 200

    clients_file(api).remove("script")

    assert api.token({"resource": SERVER_A}, secret=secret).status_code == 401


def test_first_use_asks_once_and_answers_consent_required_at_once(api: Api) -> None:
    secret = clients_file(api).add("agent", None)

    first = api.token({"resource": SERVER_A}, secret=secret)
    again = api.token({"resource": SERVER_A}, secret=secret)

    assert first.status_code == again.status_code == 403
    assert first.json()["error"] == "consent_required"
    assert "mcp-broker clients allow agent" in first.json()["error_description"]
    assert api.consent_asked == [ConsentRequest("agent", SERVER_A)]
    assert api.provider.calls == []


def test_allow_once_serves_one_request(api: Api) -> None:
    secret = clients_file(api).add("agent", None)
    api.token({"resource": SERVER_A}, secret=secret)

    api.server.clients.decide(api.consent_asked[0], Decision.ALLOW_ONCE)

    assert api.token({"resource": SERVER_A}, secret=secret).status_code == 200
    assert api.token({"resource": SERVER_A}, secret=secret).json()["error"] == "consent_required"


def test_allow_always_is_stored_and_deny_is_remembered(api: Api) -> None:
    secret = clients_file(api).add("agent", None)
    api.token({"resource": SERVER_A}, secret=secret)
    api.token({"resource": SERVER_B}, secret=secret)
    ask_a, ask_b = api.consent_asked

    api.server.clients.decide(ask_a, Decision.ALLOW_ALWAYS)
    api.server.clients.decide(ask_b, Decision.DENY)

    assert api.token({"resource": SERVER_A}, secret=secret).status_code == 200
    assert api.token({"resource": SERVER_A}, secret=secret).status_code == 200
    denied = api.token({"resource": SERVER_B}, secret=secret)
    assert denied.status_code == 403 and denied.json()["error"] == "access_denied"
    assert SERVER_A in clients_file(api).load()["agent"].allowed
    assert api.provider.calls_for(SERVER_B) == 0


def test_the_cli_allow_applies_to_the_running_broker(api: Api) -> None:
    secret = clients_file(api).add("agent", None)
    assert api.token({"resource": SERVER_A}, secret=secret).status_code == 403

    clients_file(api).allow("agent", "https://A.example/mcp/")

    assert api.token({"resource": SERVER_A}, secret=secret).status_code == 200


def test_status_shows_a_named_client_only_its_allowed_servers(api: Api) -> None:
    secret = clients_file(api).add("script", [SERVER_A])
    response = api.http.get("/v1/status", headers=api.headers(secret))
    assert [s["url"] for s in response.json()["servers"]] == [SERVER_A]


def test_the_audit_log_records_who_got_what_and_never_a_token(api: Api) -> None:
    secret = clients_file(api).add("script", [SERVER_A])
    for _ in range(3):
        api.token({"resource": SERVER_A})
    api.token({"resource": SERVER_A}, secret=secret)
    api.token({"resource": SERVER_B}, secret=secret)
    api.server.close()  # flushes folded counts

    entries = list(read_audit_log(api.paths.audit_log))
    raw = api.paths.audit_log.read_text()

    assert stat.S_IMODE(api.paths.audit_log.stat().st_mode) == 0o600
    outcomes = {(e["client"], e["resource"], e["outcome"]) for e in entries}
    assert outcomes == {
        ("default", SERVER_A, "granted"),
        ("script", SERVER_A, "granted"),
        ("script", SERVER_B, "not_in_scope"),
    }
    granted = [e["count"] for e in entries if e["client"] == "default"]
    assert sum(granted) == 3
    for canary in (CANARY_ACCESS, CANARY_REFRESH, secret, api.secret):
        assert canary not in raw
