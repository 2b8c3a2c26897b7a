"""The browser sign-in, and the refresh grant request, against a scripted authorization server
and a real loopback listener.

The "browser" is an authorizer that approves at once and delivers the redirect to the broker's
listener over 127.0.0.1, as a browser would.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import logging
import socket
import threading
from dataclasses import dataclass, field, replace
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx2
import pytest

from broker.errors import (
    AuthorizationError,
    CallbackPortUnavailable,
    CallbackRejected,
    ClientRegistrationRequired,
    InteractionRequired,
    InvalidGrant,
    SignInTimeout,
    UnsafeEndpoint,
)
from broker.oauth.as_metadata import AuthServer
from broker.oauth.discovery import Discovered
from broker.oauth.providers import GENERIC
from broker.oauth.registration import ClientCredentials
from broker.signin.login import ClientRegistry, SignIn, SignInOptions
from broker.tokens.grant import refresh_tokens
from broker.tokens.tokenset import TokenKey, TokenSet
from tests.support.procs import fixed_port

pytestmark = pytest.mark.integration

ISSUER = "https://auth.example.com"
RESOURCE = "https://mcp.example.com/mcp"
CANARIES = {
    "code": "CANARY-CODE-7f3a",
    "access": "CANARY-ACCESS-91bd",
    "refresh": "CANARY-REFRESH-22c4",
    "secret": "CANARY-SECRET-5e61",
}
SERVER = AuthServer(
    issuer=ISSUER,
    authorization_endpoint=f"{ISSUER}/authorize",
    token_endpoint=f"{ISSUER}/token",
    registration_endpoint=f"{ISSUER}/register",
    profile=GENERIC,
    iss_parameter_supported=True,
)
FOUND = Discovered(RESOURCE, RESOURCE, SERVER)


def deliver(redirect: str) -> int:
    """GET a URL on the loopback listener like a browser (http.client logs nothing)."""
    parts = urlsplit(redirect)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        conn.request("GET", f"{parts.path}?{parts.query}")
        return conn.getresponse().status
    finally:
        conn.close()


@dataclass
class FakeAS:
    """Answers registration and token requests and approves sign-ins at once."""

    iss: str | None = ISSUER
    access_token: str = CANARIES["access"]
    refresh_token: str | None = CANARIES["refresh"]
    token_status: int = 200
    requests: list[httpx2.Request] = field(default_factory=list)
    opened: list[str] = field(default_factory=list)
    challenge: str = ""
    gate: threading.Event | None = None

    def send(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        url = str(request.url)
        if url == SERVER.registration_endpoint:
            body = json.loads(request.content)
            reply = {"client_id": "dcr-client", "redirect_uris": body["redirect_uris"]}
            return httpx2.Response(201, json=reply, request=request)
        assert url == SERVER.token_endpoint, url
        if self.token_status != 200:
            return httpx2.Response(
                self.token_status, json={"error": "invalid_grant"}, request=request
            )
        form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
        if form["grant_type"] == "authorization_code":
            digest = hashlib.sha256(form["code_verifier"].encode()).digest()
            assert base64.urlsafe_b64encode(digest).rstrip(b"=").decode() == self.challenge
            assert form["code"] == CANARIES["code"]
        tokens = {"access_token": self.access_token, "token_type": "Bearer", "expires_in": 3600}
        if self.refresh_token:
            tokens["refresh_token"] = self.refresh_token
        return httpx2.Response(200, json=tokens, request=request)

    def open(self, url: str) -> bool:
        self.opened.append(url)
        if self.gate is not None:
            self.gate.wait(30)
        params = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
        self.challenge = params["code_challenge"]
        answer = {"code": CANARIES["code"], "state": params["state"]}
        if self.iss is not None:
            answer["iss"] = self.iss
        deliver(f"{params['redirect_uri']}?{urlencode(answer)}")
        return True

    def token_requests(self) -> list[httpx2.Request]:
        return [r for r in self.requests if str(r.url) == SERVER.token_endpoint]


def port_can_be_bound(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        s.listen()
        return True


def make(fake: FakeAS, *clients: ClientCredentials) -> SignIn:
    return SignIn(fake.send, ClientRegistry(clients), opener=fake.open)


def refresh(
    fake: FakeAS, found: Discovered, tokens: TokenSet, *clients: ClientCredentials
) -> TokenSet:
    client = next(iter(clients), ClientCredentials(tokens.key.client_id, tokens.key.issuer))
    return refresh_tokens(fake.send, found, tokens, client)


def test_sign_in_registers_opens_the_browser_once_and_redeems_the_code() -> None:
    fake = FakeAS()
    tokens = make(fake).sign_in(FOUND, "files:read")
    assert len(fake.opened) == 1
    assert tokens.key == TokenKey(ISSUER, "dcr-client", RESOURCE)
    assert tokens.access_token == CANARIES["access"] and tokens.scope == "files:read"
    (exchange,) = fake.token_requests()
    form = parse_qs(exchange.content.decode())
    assert form["resource"] == [RESOURCE]
    assert form["redirect_uri"][0].startswith("http://127.0.0.1:")
    assert parse_qs(urlsplit(fake.opened[0]).query)["resource"] == [RESOURCE]


def test_resource_opt_out_sends_no_resource_anywhere() -> None:
    fake = FakeAS()
    make(fake).sign_in(FOUND, None, SignInOptions(send_resource=False))
    assert "resource" not in parse_qs(urlsplit(fake.opened[0]).query)
    assert "resource" not in parse_qs(fake.token_requests()[0].content.decode())


@pytest.mark.parametrize("iss", ["https://evil.example.com", ISSUER + "/", None])
def test_bad_iss_is_rejected_before_the_code_is_exchanged(iss: str | None) -> None:
    fake = FakeAS(iss=iss)
    with pytest.raises(CallbackRejected):
        make(fake).sign_in(FOUND, None)
    assert fake.token_requests() == []


def test_pre_registered_client_is_used_with_its_secret() -> None:
    fake = FakeAS()
    client = ClientCredentials("pre", ISSUER, CANARIES["secret"])
    tokens = make(fake, client).sign_in(FOUND, None)
    assert tokens.key.client_id == "pre"
    assert all(str(r.url) != SERVER.registration_endpoint for r in fake.requests)
    assert fake.token_requests()[0].headers["Authorization"].startswith("Basic ")


def test_pre_registered_client_of_another_issuer_is_not_used() -> None:
    fake = FakeAS()
    other = ClientCredentials("pre", "https://other.example.com", CANARIES["secret"])
    assert make(fake, other).sign_in(FOUND, None).key.client_id == "dcr-client"


def test_no_client_and_no_registration_asks_for_a_client_id() -> None:
    fake = FakeAS()
    found = replace(FOUND, auth_server=replace(SERVER, registration_endpoint=None))
    with pytest.raises(ClientRegistrationRequired):
        make(fake).sign_in(found, None)
    assert fake.opened == []


def test_nobody_completing_the_sign_in_times_out_and_frees_the_port() -> None:
    port = fixed_port()
    sign_in = SignIn(FakeAS().send, ClientRegistry(), opener=lambda url: True)
    with pytest.raises(SignInTimeout) as caught:
        sign_in.sign_in(FOUND, None, SignInOptions(callback_ports=(port,), timeout=0.05))
    assert isinstance(caught.value, InteractionRequired)
    assert port_can_be_bound(port)


def test_no_browser_is_an_error() -> None:
    sign_in = SignIn(FakeAS().send, ClientRegistry(), opener=lambda url: False)
    with pytest.raises(AuthorizationError, match="browser"):
        sign_in.sign_in(FOUND, None)


def test_busy_fixed_port_moves_the_redirect_uri_to_the_next_port() -> None:
    fake = FakeAS()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken, spare = busy.getsockname()[1], fixed_port()
        make(fake).sign_in(FOUND, None, SignInOptions(callback_ports=(taken, spare)))
    redirect = parse_qs(urlsplit(fake.opened[0]).query)["redirect_uri"][0]
    assert redirect == f"http://127.0.0.1:{spare}/callback"


def test_refresh_keeps_key_and_old_refresh_token_when_not_rotated() -> None:
    fake = FakeAS()
    sign_in = make(fake)
    first = sign_in.sign_in(FOUND, "a")
    fake.refresh_token, fake.access_token = None, "CANARY-ACCESS-2"
    second = refresh(fake, FOUND, first)
    assert second.key == first.key and second.access_token == "CANARY-ACCESS-2"
    assert second.refresh_token == CANARIES["refresh"] and second.scope == "a"
    form = parse_qs(fake.token_requests()[-1].content.decode())
    assert form["grant_type"] == ["refresh_token"] and form["resource"] == [RESOURCE]


def test_refresh_with_a_revoked_token_says_invalid_grant() -> None:
    fake = FakeAS()
    sign_in = make(fake)
    first = sign_in.sign_in(FOUND, None)
    fake.token_status = 400
    with pytest.raises(InvalidGrant):
        refresh(fake, FOUND, first)


def test_no_secret_ever_reaches_the_log(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    fake = FakeAS()
    client = ClientCredentials("pre", ISSUER, CANARIES["secret"])
    sign_in = make(fake, client)
    refresh(fake, FOUND, sign_in.sign_in(FOUND, "a"), client)
    params = parse_qs(urlsplit(fake.opened[0]).query)
    verifier = parse_qs(fake.token_requests()[0].content.decode())["code_verifier"][0]
    secrets = [*CANARIES.values(), verifier, params["state"][0]]
    assert caplog.records, "the sign-in should log its progress"
    for record in caplog.records:
        text = record.getMessage()
        assert not any(s in text for s in secrets), text


def test_all_callback_ports_busy_fails_before_anything_is_registered_or_stored() -> None:
    fake = FakeAS()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        options = SignInOptions(callback_ports=(busy.getsockname()[1],))
        with pytest.raises(CallbackPortUnavailable):
            make(fake).sign_in(FOUND, None, options)
    assert fake.requests == [] and fake.opened == []


@pytest.mark.parametrize(
    "endpoint", ["javascript:alert(1)", "file:///etc/passwd", "http://evil.example/a"]
)
def test_unsafe_authorization_endpoint_never_reaches_the_browser(endpoint: str) -> None:
    fake, port = FakeAS(), fixed_port()
    found = replace(FOUND, auth_server=replace(SERVER, authorization_endpoint=endpoint))
    with pytest.raises(UnsafeEndpoint):
        make(fake).sign_in(found, None, SignInOptions(callback_ports=(port,)))
    assert fake.opened == []
    assert port_can_be_bound(port)


def test_refresh_token_is_never_sent_to_another_authorization_server() -> None:
    fake = FakeAS()
    sign_in = make(fake)
    tokens = sign_in.sign_in(FOUND, None)
    moved = replace(FOUND, auth_server=replace(SERVER, issuer="https://new-as.example.com"))
    with pytest.raises(AuthorizationError, match="another authorization server"):
        refresh(fake, moved, tokens)
    assert len(fake.token_requests()) == 1
