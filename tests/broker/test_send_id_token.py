"""``send = "id-token"`` (``mcp-broker add URL --send id-token``) through the real broker (the
token service, the refresh grant, a recorded authorization server): the ID token is handed out
instead of the access token, kept fresh like it, and "sign-in required" when it can no longer be
renewed; without the setting the access token is handed out, ID token or not."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx2
import pytest

from broker.app import Broker
from broker.config import ServerConfig
from broker.errors import InteractionRequired
from broker.net.limited_http import LimitedSender
from broker.paths import broker_paths
from broker.root import build
from broker.store.memory import MemoryTokenStore
from broker.tokens.service import State
from broker.tokens.tokenset import TokenSet
from tests.broker.test_app import CANARY, CLIENT, ISSUER, KEY, URL, RecordedServer


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
    """The real broker (``build``), its authorization server recorded, its keyring in memory."""
    monkeypatch.setenv("MCP_BROKER_HOME", str(tmp_path / "home"))
    paths = broker_paths()
    sender = LimitedSender(httpx2.Client(transport=httpx2.MockTransport(server)))
    built = build(paths, paths.config_file, store=store, send=sender).broker
    built.add(ServerConfig(URL, client_id=CLIENT, provider="cognito", issuer=ISSUER))
    yield built
    built.close()


def id_token(exp: float, name: str = "id") -> str:
    """An ID token as the broker sees it: a JWT it reads ``exp`` from, never verifies."""

    def part(doc: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(doc).encode()).rstrip(b"=").decode()

    claims = {"iss": KEY.issuer, "aud": KEY.client_id, "exp": int(exp), "token_use": "id"}
    return f"{part({'alg': 'RS256'})}.{part(claims)}.{CANARY}{name}"


def keep(store: MemoryTokenStore, *, id_exp: float, refresh: bool = True, age: float = 10) -> None:
    now = time.time()
    id_tok = id_token(id_exp, "old-id")
    store.put(
        TokenSet(
            KEY,
            f"{CANARY}old-access",
            expires_at=min(now - age + 3600, id_exp),
            refresh_token=f"{CANARY}refresh" if refresh else None,
            obtained_at=now - age,
            id_token=id_tok,
        )
    )


def send_id_token(broker: Broker) -> None:
    broker.add(replace(broker.server(URL), send="id-token"))


def answer_with(id_tok: str | None) -> httpx2.Response:
    body = {"access_token": f"{CANARY}new-access", "token_type": "Bearer", "expires_in": 3600}
    if id_tok is not None:
        body["id_token"] = id_tok
    return httpx2.Response(200, json=body)


def test_without_the_setting_the_access_token_is_handed_out(
    broker: Broker, store: MemoryTokenStore
) -> None:
    keep(store, id_exp=time.time() + 3000)

    assert broker.token(URL).access_token == f"{CANARY}old-access"


def test_with_the_setting_the_id_token_is_handed_out_with_its_expiry(
    broker: Broker, store: MemoryTokenStore, server: RecordedServer
) -> None:
    send_id_token(broker)
    exp = int(time.time()) + 3000
    keep(store, id_exp=exp)

    tokens = broker.token(URL)

    assert tokens.access_token == id_token(exp, "old-id")
    assert tokens.expires_at == exp
    assert server.requests == []


def test_an_id_token_due_is_renewed_with_the_refresh_token(
    broker: Broker, store: MemoryTokenStore, server: RecordedServer
) -> None:
    send_id_token(broker)
    keep(store, id_exp=time.time() + 20, age=3000)  # the ID token expires long before the access
    fresh_exp = int(time.time()) + 1800  # the new one expires before the new access token
    server.token_answer = lambda: answer_with(id_token(fresh_exp, "new-id"))

    tokens = broker.token(URL)

    assert tokens.access_token == id_token(fresh_exp, "new-id")
    (form,) = server.forms("/oauth2/token")
    assert form["grant_type"] == ["refresh_token"]
    kept = store.get(KEY)
    assert kept is not None and kept.expires_at == fresh_exp  # renewed on the ID token's clock
    assert kept.access_token == f"{CANARY}new-access"  # the access token is kept as it is


def test_a_refresh_without_an_id_token_means_sign_in_required(
    broker: Broker, store: MemoryTokenStore, server: RecordedServer
) -> None:
    send_id_token(broker)
    keep(store, id_exp=time.time() + 20, age=3000)
    server.token_answer = lambda: answer_with(None)

    with pytest.raises(InteractionRequired, match="without an ID token"):
        broker.token(URL)
    assert broker.service.status(KEY).state is State.SIGN_IN_REQUIRED


def test_an_expired_id_token_without_a_refresh_token_means_sign_in_required(
    broker: Broker, store: MemoryTokenStore, server: RecordedServer
) -> None:
    send_id_token(broker)
    keep(store, id_exp=time.time() - 5, refresh=False, age=3000)

    with pytest.raises(InteractionRequired, match="sign-in required"):
        broker.token(URL)
    assert server.requests == []


def test_a_sign_in_without_an_id_token_is_refused_for_such_a_server(
    broker: Broker, store: MemoryTokenStore
) -> None:
    send_id_token(broker)
    now = time.time()
    store.put(TokenSet(KEY, f"{CANARY}access", expires_at=now + 3000, obtained_at=now))

    with pytest.raises(InteractionRequired, match="no ID token"):
        broker.token(URL)


def test_renewal_after_a_refusal_hands_out_the_new_id_token(
    broker: Broker, store: MemoryTokenStore, server: RecordedServer
) -> None:
    send_id_token(broker)
    keep(store, id_exp=time.time() + 3000)
    fresh_exp = int(time.time()) + 3500
    server.token_answer = lambda: answer_with(id_token(fresh_exp, "new-id"))

    assert broker.renewed(URL).access_token == id_token(fresh_exp, "new-id")
