"""BrokerAuth on an httpx2 client: attach, sign in on 401, step up on 403 (at most once)."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest

from broker.errors import ResourceMismatch
from broker.signin.httpauth import BrokerAuth, ServerAuthenticator
from broker.signin.login import ClientRegistry, SignIn
from tests.broker.signin.test_login import ISSUER, SERVER, FakeAS

pytestmark = pytest.mark.integration

MCP = "https://mcp.example.com/mcp"
PRM_URL = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"


class ScopedAS(FakeAS):
    """Issues numbered tokens and remembers which scope each was asked for."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.granted: dict[str, set[str]] = {}
        self._numbers = itertools.count(1)
        self.prm_resource = MCP

    def send(self, request: httpx2.Request) -> httpx2.Response:
        url = str(request.url)
        if url == PRM_URL:
            body = {"resource": self.prm_resource, "authorization_servers": [ISSUER]}
            return httpx2.Response(200, json=body, request=request)
        if url == f"{ISSUER}/.well-known/oauth-authorization-server":
            body = {
                "issuer": ISSUER,
                "authorization_endpoint": SERVER.authorization_endpoint,
                "token_endpoint": SERVER.token_endpoint,
                "registration_endpoint": SERVER.registration_endpoint,
                "code_challenge_methods_supported": ["S256"],
                "authorization_response_iss_parameter_supported": True,
            }
            return httpx2.Response(200, json=body, request=request)
        if url == SERVER.token_endpoint:
            # Grants exactly the scope of the latest authorization request (refreshes too).
            self.access_token = f"tok-{next(self._numbers)}"
            scope = parse_qs(urlsplit(self.opened[-1]).query).get("scope", [""])[0]
            self.granted[self.access_token] = set(scope.split())
        return super().send(request)


class FakeMCP:
    """A resource server: ``/mcp`` needs ``mcp:basic``; ``/mcp?write`` needs ``mcp:write``."""

    def __init__(self, authz: ScopedAS, always_forbid: str | None = None) -> None:
        self.authz = authz
        self.always_forbid = always_forbid
        self.revoked: set[str] = set()
        self.stubborn = False
        self.seen: list[str | None] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        auth = request.headers.get("authorization")
        self.seen.append(auth)
        token = auth.removeprefix("Bearer ") if auth else None
        if token is None or token not in self.authz.granted or token in self.revoked:
            challenge = f'Bearer resource_metadata="{PRM_URL}", scope="mcp:basic"'
            return httpx2.Response(401, headers={"WWW-Authenticate": challenge})
        need = self.always_forbid or ("mcp:write" if "write" in request.url.query.decode() else "")
        if need and (self.stubborn or need not in self.authz.granted[token]):
            challenge = f'Bearer error="insufficient_scope", scope="{need}"'
            return httpx2.Response(403, headers={"WWW-Authenticate": challenge})
        return httpx2.Response(200, json={"ok": True})


def client_for(authz: ScopedAS, mcp: FakeMCP) -> httpx2.Client:
    sign_in = SignIn(authz.send, ClientRegistry(), opener=authz.open)
    auth = BrokerAuth(ServerAuthenticator(MCP, sign_in, authz.send))
    return httpx2.Client(transport=httpx2.MockTransport(mcp), auth=auth)


def test_401_signs_in_and_retries_once_with_the_token() -> None:
    authz = ScopedAS()
    mcp = FakeMCP(authz)
    with client_for(authz, mcp) as http:
        assert http.get(MCP).status_code == 200
        assert http.get(MCP).status_code == 200
    assert len(authz.opened) == 1
    assert mcp.seen == [None, "Bearer tok-1", "Bearer tok-1"]
    assert parse_qs(urlsplit(authz.opened[0]).query)["scope"] == ["mcp:basic"]


def test_403_steps_up_once_with_the_union_of_scopes() -> None:
    authz = ScopedAS()
    mcp = FakeMCP(authz)
    with client_for(authz, mcp) as http:
        assert http.get(MCP).status_code == 200
        assert http.get(MCP + "?write").status_code == 200
    assert len(authz.opened) == 2
    assert parse_qs(urlsplit(authz.opened[1]).query)["scope"] == ["mcp:basic mcp:write"]


def test_a_403_that_never_ends_is_given_up_after_one_step_up() -> None:
    authz = ScopedAS()
    mcp = FakeMCP(authz, always_forbid="mcp:admin")
    mcp.stubborn = True  # refuses every token, whatever its scopes
    with client_for(authz, mcp) as http:
        first = http.get(MCP)
        second = http.get(MCP)
    assert (first.status_code, second.status_code) == (403, 403)
    # One sign-in for the 401 and one step-up; the second request asks for nothing new.
    assert len(authz.opened) == 2
    assert mcp.seen == [None, "Bearer tok-1", "Bearer tok-2", "Bearer tok-2"]


def test_challenge_for_scopes_already_asked_for_does_not_sign_in_again() -> None:
    authz = ScopedAS()
    mcp = FakeMCP(authz)
    with client_for(authz, mcp) as http:
        http.get(MCP)
        mcp.always_forbid = "mcp:basic"  # granted already, yet the server keeps refusing
        authz.granted["tok-1"].discard("mcp:basic")
        assert http.get(MCP).status_code == 403
    assert len(authz.opened) == 1


def test_rejected_token_is_refreshed_without_the_browser() -> None:
    authz = ScopedAS()
    mcp = FakeMCP(authz)
    with client_for(authz, mcp) as http:
        http.get(MCP)
        mcp.revoked.add("tok-1")
        assert http.get(MCP).status_code == 200
    assert len(authz.opened) == 1
    assert mcp.seen[-1] == "Bearer tok-2"
    grants = [parse_qs(r.content.decode())["grant_type"][0] for r in authz.token_requests()]
    assert grants == ["authorization_code", "refresh_token"]


def test_resource_mismatch_never_opens_the_browser() -> None:
    authz = ScopedAS()
    authz.prm_resource = "https://evil.example.com/mcp"
    with client_for(authz, FakeMCP(authz)) as http, pytest.raises(ResourceMismatch):
        http.get(MCP)
    assert authz.opened == []


def test_async_clients_sign_in_off_the_event_loop() -> None:
    authz = ScopedAS()
    mcp = FakeMCP(authz)
    sign_in = SignIn(authz.send, ClientRegistry(), opener=authz.open)
    auth = BrokerAuth(ServerAuthenticator(MCP, sign_in, authz.send))

    async def run() -> list[int]:
        transport = httpx2.MockTransport(mcp)
        async with httpx2.AsyncClient(transport=transport, auth=auth) as http:
            return [(await http.get(MCP)).status_code, (await http.get(MCP)).status_code]

    assert asyncio.run(run()) == [200, 200]
    assert len(authz.opened) == 1


def test_login_signs_in_without_a_request_using_prm_discovery() -> None:
    authz = ScopedAS()
    sign_in = SignIn(authz.send, ClientRegistry(), opener=authz.open)
    tokens = ServerAuthenticator(MCP, sign_in, authz.send).login("mcp:basic")
    assert tokens.key.resource == MCP and tokens.scope == "mcp:basic"
    assert len(authz.opened) == 1
