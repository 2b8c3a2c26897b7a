"""The one sign-in flow (``broker.signin.flow.SignInFlow``): one browser sign-in per server at a
time for the whole process, different servers side by side.

The MCP servers, their PRM and the authorization server are scripted; the "browser" delivers
the authorization response to the broker's real loopback listener over 127.0.0.1.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx2
import pytest

from broker.config import Config, ServerConfig
from broker.errors import AuthorizationError
from broker.signin.flow import SignInFlow
from broker.store import MemoryTokenStore
from broker.tokens.auth_servers import AuthServerCache
from broker.tokens.service import TokenService
from broker.tokens.tokenset import TokenKey, TokenSet
from tests.broker.signin.test_login import deliver

# Real loopback callback listeners and an authorization server on 127.0.0.1.
pytestmark = pytest.mark.integration

ISSUER = "https://auth.example.com"
ONE = "https://mcp.example.com/one"
TWO = "https://mcp.example.com/two"
WAIT = 30.0


def prm_url(server: str) -> str:
    return f"https://mcp.example.com/.well-known/oauth-protected-resource{urlsplit(server).path}"


class World:
    """The MCP servers (their 401 and PRM) and the authorization server. The browser holds a
    sign-in to a server whose gate is set until the gate opens."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.opened: list[str] = []  # the resource of each browser sign-in
        self.token_requests = 0
        self.gates: dict[str, threading.Event] = {}
        self.browsing = threading.Condition(self.lock)
        self._codes: dict[str, tuple[str, str]] = {}  # code -> (PKCE challenge, scope)
        self._numbers = itertools.count(1)

    # the MCP servers' answer to the unsigned probe
    def head_of(self, request: httpx2.Request) -> httpx2.Response:
        server = str(request.url)
        challenge = f'Bearer resource_metadata="{prm_url(server)}", scope="mcp:basic"'
        return httpx2.Response(401, headers={"WWW-Authenticate": challenge}, request=request)

    def send(self, request: httpx2.Request) -> httpx2.Response:
        url = str(request.url)
        for server in (ONE, TWO):
            if url == prm_url(server):
                body = {"resource": server, "authorization_servers": [ISSUER]}
                return httpx2.Response(200, json=body, request=request)
        if url == f"{ISSUER}/.well-known/oauth-authorization-server":
            body = {
                "issuer": ISSUER,
                "authorization_endpoint": f"{ISSUER}/authorize",
                "token_endpoint": f"{ISSUER}/token",
                "registration_endpoint": f"{ISSUER}/register",
                "code_challenge_methods_supported": ["S256"],
                "authorization_response_iss_parameter_supported": True,
            }
            return httpx2.Response(200, json=body, request=request)
        if url == f"{ISSUER}/register":
            sent = json.loads(request.content)
            reply = {"client_id": "dcr-client", "redirect_uris": sent["redirect_uris"]}
            return httpx2.Response(201, json=reply, request=request)
        assert url == f"{ISSUER}/token", url
        form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
        with self.lock:
            self.token_requests += 1
            challenge, scope = self._codes.pop(form["code"])
            number = next(self._numbers)
        digest = hashlib.sha256(form["code_verifier"].encode()).digest()
        assert base64.urlsafe_b64encode(digest).rstrip(b"=").decode() == challenge
        body = {
            "access_token": f"access-{number}",
            "token_type": "Bearer",
            "expires_in": 3600,
            "scope": scope,
        }
        return httpx2.Response(200, json=body, request=request)

    def open(self, url: str) -> bool:
        """The browser: approve, and deliver the redirect to the loopback listener."""
        params = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
        resource = params["resource"]
        with self.lock:
            self.opened.append(resource)
            code = f"code-{next(self._numbers)}"
            self._codes[code] = (params["code_challenge"], params.get("scope", ""))
            self.browsing.notify_all()
            gate = self.gates.get(resource)
        if gate is not None:
            assert gate.wait(WAIT)
        answer = {"code": code, "state": params["state"], "iss": ISSUER}
        deliver(f"{params['redirect_uri']}?{urlencode(answer)}")
        return True

    def wait_until_browsing(self, resource: str) -> None:
        with self.lock:
            assert self.browsing.wait_for(lambda: resource in self.opened, WAIT)


def refresh_not_expected(tokens: TokenSet) -> TokenSet:
    raise AssertionError("no refresh in these tests")


@pytest.fixture
def world() -> World:
    return World()


def make_flow(world: World, tmp_path: Path, store: MemoryTokenStore, opener: Any) -> SignInFlow:
    service = TokenService(store, refresh_not_expected)
    config = [Config(tmp_path / "config.toml", servers=(ServerConfig(ONE), ServerConfig(TWO)))]

    def server(url: str) -> ServerConfig:
        found = config[0].get_server(url)
        assert found is not None
        return found

    def update(change: Any) -> None:
        with world.lock:
            config[0] = change(config[0])

    return SignInFlow(
        send=world.send,
        head_of=world.head_of,
        service=service,
        auth_servers=AuthServerCache(tmp_path),
        secrets=store,
        server=server,
        update_config=update,
        opener=opener,
        timeout=WAIT,
    )


@pytest.fixture
def store() -> Iterator[MemoryTokenStore]:
    store = MemoryTokenStore()
    yield store
    store.close()


@pytest.fixture
def flow(world: World, tmp_path: Path, store: MemoryTokenStore) -> SignInFlow:
    return make_flow(world, tmp_path, store, world.open)


class Joined(logging.Handler):
    """Set once a caller joins a running sign-in (the flow logs it)."""

    def __init__(self) -> None:
        super().__init__()
        self.event = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if "joining" in record.getMessage():
            self.event.set()


@pytest.fixture
def joined() -> Iterator[threading.Event]:
    handler = Joined()
    logger = logging.getLogger("broker.signin.flow")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    try:
        yield handler.event
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


def in_thread(fn: Any, *args: Any) -> tuple[threading.Thread, list[Any]]:
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(fn(*args))
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def test_two_callers_signing_in_to_one_server_share_one_browser_sign_in(
    world: World, flow: SignInFlow, joined: threading.Event
) -> None:
    world.gates[ONE] = threading.Event()
    first, first_outcome = in_thread(flow.sign_in, ONE)
    world.wait_until_browsing(ONE)
    second, second_outcome = in_thread(flow.sign_in, ONE)
    assert joined.wait(WAIT), "the second caller did not join the running sign-in"
    world.gates[ONE].set()
    first.join(WAIT)
    second.join(WAIT)

    assert world.opened == [ONE] and world.token_requests == 1
    (tokens,) = first_outcome
    assert isinstance(tokens, TokenSet) and second_outcome == [tokens]
    assert tokens.key.resource == ONE


def test_sign_ins_to_two_servers_do_not_wait_for_each_other(world: World, flow: SignInFlow) -> None:
    world.gates[ONE] = threading.Event()  # the user has not finished in the browser for ONE
    slow, slow_outcome = in_thread(flow.sign_in, ONE)
    world.wait_until_browsing(ONE)

    fast, fast_outcome = in_thread(flow.sign_in, TWO)
    fast.join(WAIT)
    still_waiting = slow.is_alive()
    world.gates[ONE].set()
    slow.join(WAIT)

    assert still_waiting, "the first sign-in should still wait in the browser"
    assert [type(o) for o in fast_outcome] == [TokenSet] and fast_outcome[0].key.resource == TWO
    assert [type(o) for o in slow_outcome] == [TokenSet] and slow_outcome[0].key.resource == ONE
    assert sorted(world.opened) == [ONE, TWO]


def test_a_caller_needing_a_scope_the_running_sign_in_does_not_ask_for_signs_in_after_it(
    world: World, flow: SignInFlow, joined: threading.Event
) -> None:
    world.gates[ONE] = threading.Event()
    plain, plain_outcome = in_thread(flow.sign_in, ONE)
    world.wait_until_browsing(ONE)
    wider, wider_outcome = in_thread(flow.sign_in, ONE, "mcp:admin")
    assert joined.wait(WAIT)
    world.gates[ONE].set()
    plain.join(WAIT)
    wider.join(WAIT)

    assert world.opened == [ONE, ONE]  # one after the other, never two at once
    assert "mcp:admin" not in (plain_outcome[0].scope or "").split()
    assert set((wider_outcome[0].scope or "").split()) == {"mcp:basic", "mcp:admin"}


def test_a_failed_sign_in_is_the_outcome_of_every_caller_that_joined_it(
    world: World, tmp_path: Path, store: MemoryTokenStore, joined: threading.Event
) -> None:
    browser_closed = threading.Event()
    tried: list[str] = []

    def no_browser(url: str) -> bool:
        tried.append(url)
        assert browser_closed.wait(WAIT)
        return False  # no browser could be opened

    flow = make_flow(world, tmp_path, store, no_browser)
    first, first_outcome = in_thread(flow.sign_in, ONE)
    assert _wait_for(lambda: bool(tried))
    second, second_outcome = in_thread(flow.sign_in, ONE)
    assert joined.wait(WAIT)
    browser_closed.set()
    first.join(WAIT)
    second.join(WAIT)

    assert len(tried) == 1
    (error,) = first_outcome
    assert isinstance(error, AuthorizationError) and "browser" in str(error)
    assert second_outcome == [error]
    assert store.get(TokenKey(ISSUER, "dcr-client", ONE)) is None


def _wait_for(condition: Any) -> bool:
    pause = threading.Event()
    for _ in range(int(WAIT / 0.01)):
        if condition():
            return True
        pause.wait(0.01)
    return False
