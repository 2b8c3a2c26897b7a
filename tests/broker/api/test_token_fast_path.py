"""The WSGI fast path for ``POST /v1/token`` answers exactly as the Flask view does.

Two apps built alike, one with the fast path and one without, get the same request matrix
(success, every error the endpoint gives, guard refusals, neighbouring routes) as WSGI calls;
status line, header list and body must be identical, and so must the side effects: provider
calls, consent questions, sign-in prompts, audit records and log lines.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from flask import Flask, request
from werkzeug.test import EnvironBuilder

import broker.api.token
from broker.api.app import create_app
from broker.api.audit import read_audit_log
from broker.api.clients import ApiClients, ClientsFile, ConsentRequest
from broker.api.context import EXTENSION
from broker.api.provider import BoundedCalls
from broker.errors import InteractionRequired, ServerUnreachable, StorageLocked
from broker.paths import BrokerPaths
from tests.broker.api.fakes import (
    SERVER_A,
    SERVER_B,
    TOKEN_RESPONSE_FIELDS,
    FakeProvider,
    token_set,
)

PORT = 5555
SECRET = "mcpb_" + "s" * 43
LOCKED = "https://locked.example/mcp"
UNREACHABLE = "https://down.example/mcp"
SIGN_IN = "https://sign-in.example/mcp"
WRONG = "https://wrong.example/mcp"
BOOM = "https://boom.example/mcp"


@dataclass
class Side:
    """One of the two apps and everything it touches."""

    app: Flask
    provider: FakeProvider
    clients: ApiClients
    calls: BoundedCalls
    consent: list[ConsentRequest] = field(default_factory=list)
    sign_in: list[tuple[str, str, str | None]] = field(default_factory=list)
    flask_saw: list[str] = field(default_factory=list)

    def call(self, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
        answer: dict[str, Any] = {}

        def start_response(status: str, headers: list[tuple[str, str]], exc_info=None) -> None:
            answer.update(status=status, headers=list(headers))

        chunks = self.app(environ, start_response)
        try:
            body = b"".join(chunks)
        finally:
            getattr(chunks, "close", lambda: None)()
        return answer["status"], answer["headers"], body

    def audit(self) -> list[dict[str, Any]]:
        self.clients.audit.flush()
        return [
            {k: v for k, v in e.items() if k != "time"}
            for e in read_audit_log(self.clients.audit.path)
        ]


def build_side(state_dir: Path, lock_dir: Path, fast: bool) -> Side:
    provider = FakeProvider((SERVER_A, SERVER_B, LOCKED, UNREACHABLE, SIGN_IN, WRONG, BOOM))
    provider.failures[LOCKED] = StorageLocked("the keyring is locked")
    provider.failures[UNREACHABLE] = ServerUnreachable("the authorization server is down")
    provider.failures[SIGN_IN] = InteractionRequired(f"sign in: mcp-broker login {SIGN_IN}")
    provider.failures[BOOM] = RuntimeError("a bug in the token side")  # type: ignore[assignment]
    provider.tokens[WRONG] = token_set(SERVER_A)  # the token side answers for another server
    calls = BoundedCalls(workers=2)
    side = Side(None, provider, None, calls)  # type: ignore[arg-type]
    paths = BrokerPaths(state_dir.parent / "config.toml", state_dir, lock_dir, state_dir.parent)
    side.clients = ApiClients(paths, default_secret=SECRET, consent_prompt=side.consent.append)
    side.app = create_app(
        provider,
        side.clients,
        port=PORT,
        calls=calls,
        call_timeout=5.0,
        on_interaction_required=lambda resource, client, scope: side.sign_in.append(
            (resource, client, scope)
        ),
        fast_token_path=fast,
    )
    # The provider is asked once per server in the matrix, whatever the machine's speed.
    side.app.extensions[EXTENSION].recent.ttl = 3600.0
    side.app.before_request(lambda: side.flask_saw.append(f"{request.method} {request.path}"))
    return side


@pytest.fixture
def sides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Side, Side, dict[str, str]]]:
    # One clock for both: expires_in must not tick between the two answers.
    now = token_set(SERVER_A).obtained_at
    monkeypatch.setattr(broker.api.token, "time", SimpleNamespace(time=lambda: now))
    lock_dir = tmp_path / "locks"
    fast_dir, flask_dir = tmp_path / "fast", tmp_path / "flask"
    fast_dir.mkdir(mode=0o700)
    clients_file = ClientsFile(fast_dir, lock_dir)
    secrets = {
        "scoped": clients_file.add("scoped", [SERVER_A]),
        "agent": clients_file.add("agent", None),
    }
    flask_dir.mkdir(mode=0o700)
    shutil.copy2(clients_file.path, flask_dir / clients_file.path.name)
    fast, slow = build_side(fast_dir, lock_dir, True), build_side(flask_dir, lock_dir, False)
    slow.provider.tokens = fast.provider.tokens  # built a moment apart: the same token sets
    try:
        yield fast, slow, secrets
    finally:
        for side in (fast, slow):
            side.calls.close()
            side.clients.close()


def body(**fields: object) -> bytes:
    return json.dumps(fields).encode()


GOOD = body(resource=SERVER_A)

# (label, changes to the default request: method, path, body, headers (None removes one), secret)
CASES: list[tuple[str, dict[str, Any]]] = [
    ("ok", {}),
    ("ok again, from the recent tokens", {}),
    ("ok min_valid", {"body": body(resource=SERVER_A, min_valid_seconds=120)}),
    ("ok min_valid 0", {"body": body(resource=SERVER_A, min_valid_seconds=0)}),
    ("ok scope", {"body": body(resource=SERVER_A, scope="mcp/read")}),
    ("ok non-canonical resource", {"body": body(resource="HTTPS://A.EXAMPLE:443/mcp/")}),
    ("ok server b", {"body": body(resource=SERVER_B)}),
    ("ok charset", {"content_type": "application/json; charset=utf-8"}),
    ("insufficient scope", {"body": body(resource=SERVER_A, scope="mcp/read mcp/admin")}),
    ("step-up", {"body": body(resource=SERVER_A, scope=f"mcp/read {SERVER_A}/admin")}),
    ("no authorization", {"secret": None}),
    ("wrong secret same length", {"secret": SECRET[:-1] + "x"}),
    ("wrong secret empty", {"secret": ""}),
    ("wrong secret non-ascii", {"secret": SECRET[:-2] + "é€"}),
    ("basic scheme", {"authorization": f"Basic {SECRET}"}),
    ("bearer in capitals", {"authorization": f"BEARER {SECRET}"}),
    ("empty body", {"body": b""}),
    ("not json", {"body": b"{"}),
    ("not utf-8", {"body": b'{"resource": "\xff"}'}),
    ("an array", {"body": b"[]"}),
    ("a string", {"body": b'"x"'}),
    ("deep nesting", {"body": b"[" * 60000}),
    ("duplicate field", {"body": b'{"resource": "%s", "resource": "x"}' % SERVER_A.encode()}),
    ("unknown field", {"body": body(resource=SERVER_A, audience="x")}),
    ("nan", {"body": b'{"resource": "%s", "min_valid_seconds": NaN}' % SERVER_A.encode()}),
    ("bool min_valid", {"body": body(resource=SERVER_A, min_valid_seconds=True)}),
    ("negative min_valid", {"body": body(resource=SERVER_A, min_valid_seconds=-1)}),
    ("huge min_valid", {"body": body(resource=SERVER_A, min_valid_seconds=10**9)}),
    ("string min_valid", {"body": body(resource=SERVER_A, min_valid_seconds="60")}),
    ("empty scope", {"body": body(resource=SERVER_A, scope="")}),
    ("bad scope", {"body": body(resource=SERVER_A, scope='a"b')}),
    ("scope not a string", {"body": body(resource=SERVER_A, scope=5)}),
    ("no resource", {"body": body(scope="x")}),
    ("resource not a url", {"body": body(resource="ftp://a.example/mcp")}),
    ("resource with user info", {"body": body(resource="https://u@a.example/mcp")}),
    ("resource with a space", {"body": body(resource=" " + SERVER_A)}),
    ("resource too long", {"body": body(resource="https://a.example/" + "x" * 3000)}),
    ("unconfigured resource", {"body": body(resource="https://c.example/mcp")}),
    ("sign-in required", {"body": body(resource=SIGN_IN)}),
    ("sign-in required again", {"body": body(resource=SIGN_IN)}),
    ("keyring locked", {"body": body(resource=LOCKED)}),
    ("server unreachable", {"body": body(resource=UNREACHABLE)}),
    ("token for another server", {"body": body(resource=WRONG)}),
    ("unexpected error", {"body": body(resource=BOOM)}),
    ("scoped client, its server", {"client": "scoped"}),
    ("scoped client, another server", {"client": "scoped", "body": body(resource=SERVER_B)}),
    ("unscoped client, first use", {"client": "agent"}),
    ("unscoped client, again", {"client": "agent"}),
    ("origin", {"headers": {"Origin": "https://evil.example"}}),
    ("text/plain", {"content_type": "text/plain"}),
    ("no broker header", {"headers": {"X-MCP-Broker": None}}),
    ("query string", {"query": "secret=x"}),
    ("wrong host", {"host": "attacker.example"}),
    ("too large", {"body": b" " * (64 * 1024 + 1)}),
    ("GET /v1/token", {"method": "GET", "body": b""}),
    ("PUT /v1/token", {"method": "PUT"}),
    ("POST /v1/token/", {"path": "/v1/token/"}),
    ("POST /v1/status", {"path": "/v1/status"}),
]


def environ_for(case: dict[str, Any], secrets: dict[str, str]) -> dict[str, Any]:
    headers: dict[str, str | None] = {"X-MCP-Broker": "1"}
    secret = secrets.get(case.get("client", ""), case.get("secret", SECRET))
    if "authorization" in case:
        headers["Authorization"] = case["authorization"]
    elif secret is not None:
        headers["Authorization"] = f"Bearer {secret}"
    headers.update(case.get("headers", {}))
    environ: dict[str, Any] = EnvironBuilder(
        path=case.get("path", "/v1/token"),
        base_url=f"http://{case.get('host', '127.0.0.1')}:{PORT}",
        method=case.get("method", "POST"),
        headers={k: v for k, v in headers.items() if v is not None},
        data=case.get("body", GOOD),
        content_type=case.get("content_type", "application/json"),
        query_string=case.get("query"),
    ).get_environ()
    return environ


def test_every_case_gets_the_same_answer_and_side_effects_both_ways(
    sides: tuple[Side, Side, dict[str, str]], caplog: pytest.LogCaptureFixture
) -> None:
    fast, slow, secrets = sides
    caplog.set_level(logging.ERROR, logger="broker")
    statuses = set()
    for label, case in CASES:
        answers = [side.call(environ_for(case, secrets)) for side in (fast, slow)]
        assert answers[0] == answers[1], label
        statuses.add(int(answers[0][0].split()[0]))

    # The matrix reached every status the endpoint gives.
    assert statuses == {200, 400, 401, 403, 404, 405, 409, 413, 415, 500, 503}
    assert fast.provider.calls == slow.provider.calls and fast.provider.calls
    assert fast.consent == slow.consent == [ConsentRequest("agent", SERVER_A)]
    assert (
        fast.sign_in
        == slow.sign_in
        == [
            (SERVER_A, "default", f"{SERVER_A}/admin"),  # the step-up the tray offers
            (SIGN_IN, "default", None),
        ]
    )
    assert fast.audit() == slow.audit() and fast.audit()
    errors = [r.getMessage() for r in caplog.records]
    assert errors == ["unexpected error on POST /v1/token"] * 2
    # The fast app answered every POST /v1/token itself; Flask saw only the other routes.
    assert "POST /v1/token" not in fast.flask_saw
    assert slow.flask_saw.count("POST /v1/token") > 30


def test_the_success_answer_is_the_contract(sides: tuple[Side, Side, dict[str, str]]) -> None:
    fast, _, _ = sides
    status, headers, data = fast.call(environ_for({}, {}))
    assert status == "200 OK"
    assert headers == [
        ("Content-Type", "application/json"),
        ("Content-Length", str(len(data))),
        ("Cache-Control", "no-store"),
        ("X-Content-Type-Options", "nosniff"),
    ]
    assert set(json.loads(data)) == TOKEN_RESPONSE_FIELDS
