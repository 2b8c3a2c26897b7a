"""The composition root behind the CLI: the refresh grant against a recorded authorization
server (which failures need the user, which may pass), sign-out with revocation, and status
that never shows a token."""

from __future__ import annotations

import json
import re
import socket
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx2
import pytest

from broker.app import Broker
from broker.config import ServerConfig
from broker.errors import (
    InteractionRequired,
    InvalidGrant,
    ServerUnreachable,
    TokenRequestFailed,
)
from broker.net.limited_http import LimitedSender
from broker.paths import broker_paths
from broker.root import build
from broker.store.memory import MemoryTokenStore
from broker.tokens.grant import needs_user
from broker.tokens.service import State
from broker.tokens.tokenset import TokenKey, TokenSet

ISSUER = "https://as.example/us-east-1_Test"
URL = "https://mcp.example/mcp"
CLIENT = "client-1"
KEY = TokenKey(ISSUER, CLIENT, URL)
CANARY = "CANARY-SECRET-"

Handler = Callable[[httpx2.Request], httpx2.Response]


def metadata(revocation: bool = True) -> dict[str, object]:
    body: dict[str, object] = {
        "issuer": ISSUER,
        "authorization_endpoint": "https://auth.example/oauth2/authorize",
        "token_endpoint": "https://auth.example/oauth2/token",
        "response_types_supported": ["code"],
    }
    if revocation:
        body["revocation_endpoint"] = "https://auth.example/oauth2/revoke"
    return body


class RecordedServer:
    """An authorization server answering from ``token_answer``; records every request."""

    def __init__(self) -> None:
        self.requests: list[httpx2.Request] = []
        self.token_answer: Callable[[], httpx2.Response] = lambda: httpx2.Response(
            200,
            json={
                "access_token": f"{CANARY}new-access",
                "token_type": "Bearer",
                "expires_in": 3600,
            },
        )
        self.revocation = True
        self.down = False

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        if self.down:
            raise httpx2.ConnectError("connection refused", request=request)
        path = request.url.path
        if path == "/us-east-1_Test/.well-known/openid-configuration":
            return httpx2.Response(200, json=metadata(self.revocation))
        if path == "/oauth2/token":
            return self.token_answer()
        if path == "/oauth2/revoke":
            return httpx2.Response(200)
        return httpx2.Response(404)

    def forms(self, path: str) -> list[dict[str, list[str]]]:
        return [
            urllib.parse.parse_qs(r.content.decode()) for r in self.requests if r.url.path == path
        ]


@pytest.fixture
def server() -> RecordedServer:
    return RecordedServer()


@pytest.fixture
def store() -> MemoryTokenStore:
    return MemoryTokenStore()


@pytest.fixture
def broker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: RecordedServer, store: MemoryTokenStore
) -> Iterator[Broker]:
    monkeypatch.setenv("MCP_BROKER_HOME", str(tmp_path / "home"))
    paths = broker_paths()
    sender = LimitedSender(httpx2.Client(transport=httpx2.MockTransport(server)))
    b = build(paths, paths.config_file, store=store, send=sender).broker
    b.add(ServerConfig(URL, client_id=CLIENT, provider="cognito", issuer=ISSUER))
    yield b
    b.close()


def stored(store: MemoryTokenStore, age: float, lifetime: float = 3600) -> TokenSet:
    import time

    now = time.time()
    tokens = TokenSet(
        KEY,
        f"{CANARY}old-access",
        expires_at=now - age + lifetime,
        refresh_token=f"{CANARY}refresh",
        obtained_at=now - age,
    )
    store.put(tokens)
    return tokens


def test_a_due_token_is_refreshed_at_the_pinned_issuer_with_the_resource(
    broker: Broker, server: RecordedServer, store: MemoryTokenStore
) -> None:
    stored(store, age=4000)

    tokens = broker.token(URL)

    assert tokens.access_token == f"{CANARY}new-access"
    (form,) = server.forms("/oauth2/token")
    assert form["grant_type"] == ["refresh_token"]
    assert form["refresh_token"] == [f"{CANARY}refresh"]
    assert form["resource"] == [URL]
    assert store.get(KEY) == tokens
    assert tokens.refresh_token == f"{CANARY}refresh"  # kept: no rotation
    assert not any(r.url.host == "mcp.example" for r in server.requests)  # no PRM round trip


def test_a_fresh_token_needs_no_request_at_all(
    broker: Broker, server: RecordedServer, store: MemoryTokenStore
) -> None:
    old = stored(store, age=10)

    assert broker.token(URL) == old
    assert server.requests == []


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (400, {"error": "invalid_grant"}, InteractionRequired),
        (401, {"error": "invalid_client"}, InteractionRequired),
        (503, {"error": "temporarily_unavailable"}, ServerUnreachable),
        (500, None, ServerUnreachable),
        (429, {"error": "slow_down"}, ServerUnreachable),
        (200, None, ServerUnreachable),  # a proxy's HTML page
        (400, None, ServerUnreachable),  # not an OAuth answer
    ],
)
def test_refresh_failures_are_sorted_into_sign_in_required_or_retry_later(
    broker: Broker,
    server: RecordedServer,
    store: MemoryTokenStore,
    status: int,
    body: dict[str, str] | None,
    expected: type[Exception],
) -> None:
    stored(store, age=4000)
    server.token_answer = lambda: (
        httpx2.Response(status, json=body)
        if body is not None
        else httpx2.Response(status, text="<html>oops</html>")
    )

    with pytest.raises(expected):
        broker.token(URL)
    with pytest.raises(expected):
        broker.token(URL)  # answered at once: sign-in required, or backing off

    assert len(server.forms("/oauth2/token")) == 1
    state = broker.service.status(KEY).state
    assert state is (State.SIGN_IN_REQUIRED if expected is InteractionRequired else State.RETRYING)


def test_a_timeout_is_a_passing_failure(
    broker: Broker, server: RecordedServer, store: MemoryTokenStore
) -> None:
    stored(store, age=4000)

    def slow() -> httpx2.Response:
        raise httpx2.ReadTimeout("timed out")

    server.token_answer = slow

    with pytest.raises(ServerUnreachable):
        broker.token(URL)


@pytest.mark.integration
def test_dns_failure_and_refused_connections_are_passing_failures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, store: MemoryTokenStore
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]  # bound, never listening: connections are refused
        monkeypatch.setenv("MCP_BROKER_HOME", str(tmp_path / "home"))
        paths = broker_paths()

        def unresolvable(request: httpx2.Request) -> httpx2.Response:
            raise httpx2.ConnectError("[Errno -2] Name or service not known")

        for issuer, transport in (
            (f"http://127.0.0.1:{closed_port}/pool", None),
            ("https://nowhere.invalid/pool", httpx2.MockTransport(unresolvable)),
        ):
            key = TokenKey(issuer, CLIENT, URL)
            store.put(TokenSet(key, "x", expires_at=1.0, refresh_token="r", obtained_at=0.0))
            client = httpx2.Client(transport=transport) if transport else httpx2.Client()
            b = build(paths, paths.config_file, store=store, send=LimitedSender(client)).broker
            b.add(ServerConfig(URL, client_id=CLIENT, provider="cognito", issuer=issuer))
            with pytest.raises(ServerUnreachable):
                b.token(URL)
            assert b.service.status(key).state is State.RETRYING
            b.close()


@pytest.mark.parametrize(
    ("error", "needing"),
    [
        (InvalidGrant("x", error="invalid_grant", status_code=400), True),
        (TokenRequestFailed("x", error="invalid_scope", status_code=400), True),
        (TokenRequestFailed("x", error="unauthorized_client", status_code=401), True),
        (TokenRequestFailed("x", error="slow_down", status_code=429), False),
        (TokenRequestFailed("x", error="server_error", status_code=500), False),
        (TokenRequestFailed("the token response has no access_token"), False),
    ],
)
def test_which_token_endpoint_refusals_need_the_user(
    error: TokenRequestFailed, needing: bool
) -> None:
    assert needs_user(error) is needing


def test_logout_deletes_the_tokens_and_revokes_the_refresh_token(
    broker: Broker, server: RecordedServer, store: MemoryTokenStore
) -> None:
    stored(store, age=10)
    broker.token(URL)

    result = broker.logout(URL)

    assert (result.removed, result.revoked, result.problem) == (1, 1, None)
    (form,) = server.forms("/oauth2/revoke")
    assert form["token"] == [f"{CANARY}refresh"]
    assert form["token_type_hint"] == ["refresh_token"]
    assert form["client_id"] == [CLIENT]
    assert store.get(KEY) is None
    with pytest.raises(InteractionRequired):
        broker.token(URL)


def test_logout_without_a_revocation_endpoint_still_deletes(
    broker: Broker, server: RecordedServer, store: MemoryTokenStore
) -> None:
    server.revocation = False
    stored(store, age=10)

    result = broker.logout(URL)

    assert (result.removed, result.revoked, result.revocation_supported) == (1, 0, False)
    assert store.get(KEY) is None


def test_logout_with_the_server_down_deletes_and_says_revocation_failed(
    broker: Broker, server: RecordedServer, store: MemoryTokenStore
) -> None:
    stored(store, age=10)
    server.revocation = True

    def down(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("refused")

    broker._send = LimitedSender(httpx2.Client(transport=httpx2.MockTransport(down)))

    result = broker.logout(URL)

    assert result.removed == 1 and result.revoked == 0 and result.problem
    assert store.get(KEY) is None


def test_status_shows_states_and_never_a_token(
    broker: Broker, server: RecordedServer, store: MemoryTokenStore
) -> None:
    stored(store, age=10)
    broker.add(ServerConfig("https://other.example/mcp"))

    rows = broker.status()

    assert [(r.url, r.state) for r in rows] == [
        (URL, "valid"),
        ("https://other.example/mcp", "signed_out"),
    ]
    assert CANARY not in json.dumps([r.__dict__ for r in rows])
    assert server.requests == []


def test_a_server_without_sign_in_says_how_to_sign_in(broker: Broker) -> None:
    broker.add(ServerConfig("https://other.example/mcp"))

    with pytest.raises(InteractionRequired, match=re.escape("mcp-broker login https://other")):
        broker.token("https://other.example/mcp")


def metadata_requests(server: RecordedServer) -> int:
    """Discoveries: each ends at the one URL that answers (after the 404s of the others)."""
    return sum(
        r.url.path == "/us-east-1_Test/.well-known/openid-configuration" for r in server.requests
    )


def another_process(broker: Broker, server: RecordedServer, store: MemoryTokenStore) -> Broker:
    """A second broker on the same home (another process, or the next run)."""
    sender = LimitedSender(httpx2.Client(transport=httpx2.MockTransport(server)))
    return build(broker.paths, broker.config_file, store=store, send=sender).broker


def test_the_metadata_found_once_serves_later_refreshes_and_runs(
    broker: Broker, server: RecordedServer, store: MemoryTokenStore, tmp_path: Path
) -> None:
    stored(store, age=4000)
    broker.token(URL)
    assert metadata_requests(server) == 1

    stored(store, age=4000)
    again = another_process(broker, server, store)
    try:
        again.token(URL)  # another process (or a restart): the metadata is on disk
    finally:
        again.close()

    assert metadata_requests(server) == 1 and len(server.forms("/oauth2/token")) == 2


def test_a_failed_refresh_looks_the_metadata_up_again(
    broker: Broker, server: RecordedServer, store: MemoryTokenStore
) -> None:
    stored(store, age=4000)
    server.token_answer = lambda: httpx2.Response(503)
    with pytest.raises(ServerUnreachable):
        broker.token(URL)

    server.token_answer = RecordedServer().token_answer
    stored(store, age=4000)
    fresh = another_process(broker, server, store)
    try:
        fresh.token(URL)
    finally:
        fresh.close()

    assert metadata_requests(server) == 2  # the endpoint may have moved: fetched again


REFRESH_IN_A_FRESH_PROCESS = """
import sys, time
import httpx2
from broker.root import build
from broker.tokens.auth_servers import AuthServerCache
from broker.config import ServerConfig
from broker.net.limited_http import LimitedSender
from broker.oauth.as_metadata import AuthServer
from broker.oauth.providers import COGNITO
from broker.paths import broker_paths
from broker.store.memory import MemoryTokenStore
from broker.tokens.tokenset import TokenKey, TokenSet

issuer, url, home = sys.argv[1:4]
answer = {"access_token": "new", "token_type": "Bearer", "expires_in": 3600}
sender = LimitedSender(httpx2.Client(transport=httpx2.MockTransport(
    lambda request: httpx2.Response(200, json=answer)
)))
paths = broker_paths({"MCP_BROKER_HOME": home})
server = AuthServer(issuer, "https://auth.example/a", "https://auth.example/oauth2/token", COGNITO)
AuthServerCache(paths.ensure_private_dirs().state_dir).put(server)  # found at sign-in, earlier
store = MemoryTokenStore()
now = time.time()
store.put(TokenSet(TokenKey(issuer, "client-1", url), "old", now - 10, refresh_token="r",
                   obtained_at=now - 3610))
broker = build(paths, paths.config_file, store=store, send=sender).broker
broker.add(ServerConfig(url, client_id="client-1", provider="cognito", issuer=issuer))
assert broker.token(url).access_token == "new"
print(sorted(m for m in sys.modules if m == "mcp" or m.startswith("mcp.")))
"""


@pytest.mark.integration
def test_refreshing_never_imports_the_mcp_sdk(tmp_path: Path) -> None:
    """The SDK takes a second and 36 MB to import: a broker that only refreshes (with metadata it
    validated before) must not pay for it. A real refresh, in a process of its own."""
    import subprocess
    import sys

    argv = [sys.executable, "-c", REFRESH_IN_A_FRESH_PROCESS, ISSUER, URL, str(tmp_path / "h")]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", done.stdout


def test_logout_with_stale_cached_metadata_finds_the_moved_revocation_endpoint(
    broker: Broker, server: RecordedServer, store: MemoryTokenStore
) -> None:
    stored(store, age=4000)
    broker.token(URL)  # a refresh: the metadata is now cached
    moved = "https://auth.example/oauth2/revoke-v2"

    def answer(request: httpx2.Request) -> httpx2.Response:
        if request.url.path == "/us-east-1_Test/.well-known/openid-configuration":
            server.requests.append(request)
            return httpx2.Response(200, json={**metadata(), "revocation_endpoint": moved})
        if request.url.path == "/oauth2/revoke-v2":
            server.requests.append(request)
            return httpx2.Response(200)
        return server(request)  # the old /oauth2/revoke now answers 404 ... via RecordedServer

    server_paths = {"/oauth2/revoke": httpx2.Response(404)}
    sender = LimitedSender(
        httpx2.Client(
            transport=httpx2.MockTransport(
                lambda r: server_paths.get(r.url.path) or answer(r)  # type: ignore[return-value]
            )
        )
    )
    again = build(broker.paths, broker.config_file, store=store, send=sender).broker
    try:
        result = again.logout(URL)
    finally:
        again.close()

    assert (result.removed, result.revoked, result.problem) == (1, 1, None)
    assert [r.url.path for r in server.requests][-1] == "/oauth2/revoke-v2"
    assert metadata_requests(server) == 2  # the cached copy, then one fresh discovery


def test_status_says_which_tokens_are_dpop_bound_never_the_key(
    broker: Broker, store: MemoryTokenStore, tmp_path: Path
) -> None:
    import dataclasses
    import io

    from broker.cli import main
    from broker.oauth import dpop as proofs

    key = proofs.new_key()
    bound = dataclasses.replace(
        stored(store, age=10), token_type="DPoP", dpop_key=proofs.key_to_text(key)
    )
    store.put(bound)
    broker.add(ServerConfig("https://other.example/mcp"))

    rows = {r.url: r for r in broker.status()}
    assert rows[URL].dpop_bound and not rows["https://other.example/mcp"].dpop_bound

    def status(*argv: str) -> str:
        out = io.StringIO()
        assert main(["status", *argv], broker_factory=lambda _args: broker, out=out) == 0
        return out.getvalue()

    table, raw = status(), status("--json")
    (line,) = [line for line in table.splitlines() if line.startswith(URL)]
    assert line.startswith(f"{URL}\tvalid\t") and line.endswith(", DPoP-bound")
    assert "DPoP" not in next(line for line in table.splitlines() if "other.example" in line)
    servers = {s["url"]: s for s in json.loads(raw)["servers"]}
    assert servers[URL]["dpop_bound"] is True
    assert servers["https://other.example/mcp"]["dpop_bound"] is False
    private_d = str(key.as_dict(private=True)["d"])
    for shown in (table, raw):
        assert private_d not in shown and proofs.thumbprint(key) not in shown
        assert CANARY not in shown and "dpop_key" not in shown


def test_the_servers_only_the_bridge_can_use(broker: Broker, store: MemoryTokenStore) -> None:
    """Bound tokens; ``dpop = true``; an authorization server whose kept metadata offers DPoP
    (unless ``dpop = false``): these get the bridge from ``configure``."""
    import dataclasses

    from broker.oauth import dpop as proofs
    from broker.oauth.as_metadata import AuthServer
    from broker.oauth.providers import GENERIC

    offering = "https://offering.example/issuer"
    broker._auth_servers.put(
        AuthServer(
            offering,
            f"{offering}/authorize",
            f"{offering}/token",
            GENERIC,
            dpop_signing_alg_values_supported=("ES256",),
        )
    )
    assert broker.dpop_servers() == frozenset()  # URL: Bearer tokens at a plain server
    tokens = dataclasses.replace(
        stored(store, age=10), token_type="DPoP", dpop_key=proofs.key_to_text(proofs.new_key())
    )
    broker.service.put(tokens)
    broker.add(ServerConfig("https://required.example/mcp", dpop=True))
    broker.add(ServerConfig("https://offered.example/mcp", client_id="c", issuer=offering))
    broker.add(
        ServerConfig("https://refused.example/mcp", client_id="c", issuer=offering, dpop=False)
    )
    broker.add(ServerConfig("https://plain.example/mcp"))

    assert broker.dpop_servers() == {
        URL,
        "https://required.example/mcp",
        "https://offered.example/mcp",
    }


def test_changing_the_client_id_signs_out_of_the_old_sign_in_first(
    broker: Broker, server: RecordedServer, store: MemoryTokenStore
) -> None:
    stored(store, age=10)

    saved = broker.add(ServerConfig(URL, client_id="client-2", provider="cognito"))

    assert (saved.client_id, saved.issuer) == ("client-2", None)
    assert store.get(KEY) is None  # no orphan of the old client left in the keyring
    (form,) = server.forms("/oauth2/revoke")
    assert form["token"] == [f"{CANARY}refresh"] and form["client_id"] == [CLIENT]


def test_a_change_that_keeps_the_sign_in_keeps_the_tokens(
    broker: Broker, server: RecordedServer, store: MemoryTokenStore
) -> None:
    tokens = stored(store, age=10)

    saved = broker.add(
        ServerConfig(URL, client_id=CLIENT, provider="cognito", issuer=ISSUER, scopes=("a",))
    )

    assert saved.scopes == ("a",)
    assert store.get(KEY) == tokens
    assert server.forms("/oauth2/revoke") == []


def test_a_change_with_the_server_down_still_deletes_the_old_sign_in(
    broker: Broker, server: RecordedServer, store: MemoryTokenStore
) -> None:
    stored(store, age=10)
    broker.token(URL)
    server.down = True
    tried = len(server.requests)

    saved = broker.add(ServerConfig(URL, client_id=CLIENT, provider="cognito"))  # issuer reset

    assert saved.issuer is None
    assert store.get(KEY) is None
    assert len(server.requests) > tried  # revocation was tried, and could not reach it
