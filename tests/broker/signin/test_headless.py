"""Signing in without a browser here: the paste reader on a real loopback listener, and the
device flow loop with a scripted authorization server and a fake clock."""

from __future__ import annotations

import io
import json
import os
import threading
import urllib.request
from typing import Any
from urllib.parse import parse_qs, urlencode

import httpx2
import pytest

from broker.errors import AuthorizationDenied, CallbackRejected, SignInCancelled, SignInTimeout
from broker.oauth.as_metadata import AuthServer
from broker.oauth.authorize import AuthorizationRequest, build_authorization_request
from broker.oauth.callback_params import authorization_code, is_our_callback
from broker.oauth.device import DEVICE_CODE_GRANT, DeviceAuthorization
from broker.oauth.discovery import Discovered
from broker.oauth.providers import GENERIC
from broker.oauth.registration import ClientCredentials
from broker.signin.callback import CallbackListener
from broker.signin.headless import PasteReader, device_sign_in

ISSUER = "https://as.example.com"
SERVER = AuthServer(
    ISSUER,
    f"{ISSUER}/authorize",
    f"{ISSUER}/token",
    GENERIC,
    iss_parameter_supported=True,
    device_authorization_endpoint=f"{ISSUER}/device",
)
CLIENT = ClientCredentials("public", ISSUER)
CODE = "CANARY-code-4411"


def listening() -> tuple[CallbackListener[str], AuthorizationRequest]:
    listener: CallbackListener[str] = CallbackListener.bind(())
    request = build_authorization_request(SERVER, CLIENT, listener.redirect_uri, None, None)
    listener.expect(lambda p: is_our_callback(p, request), lambda p: authorization_code(p, request))
    return listener, request


def address(redirect_uri: str, state: str, iss: str = ISSUER) -> str:
    return f"{redirect_uri}?{urlencode({'code': CODE, 'state': state, 'iss': iss})}"


def read_pastes(text: str) -> tuple[str | BaseException, list[str]]:
    listener, request = listening()
    told: list[str] = []
    try:
        lines = text.format(ours=address(listener.redirect_uri, request.state))
        PasteReader(io.StringIO(lines), request, listener, told.append).start()
        try:
            return listener.wait(10), told
        except Exception as exc:
            return exc, told
    finally:
        listener.close()


@pytest.mark.integration  # the real loopback callback listener
def test_the_pasted_address_completes_the_sign_in() -> None:
    result, told = read_pastes('  "{ours}"  \n')
    assert result == CODE
    assert told == []


@pytest.mark.integration  # the real loopback callback listener
def test_another_sign_ins_address_is_refused_and_the_user_pastes_again() -> None:
    other = address("http://127.0.0.1:1/callback", "someone-elses-state")
    result, told = read_pastes(f"{other}\nnonsense\n{{ours}}\n")
    assert result == CODE
    assert len(told) == 2
    assert "another sign-in" in told[0]
    assert "not a sign-in address" in told[1]
    assert all(CODE not in line for line in told)


@pytest.mark.integration  # the real loopback callback listener
def test_a_paste_failing_the_iss_check_fails_the_sign_in_like_a_callback() -> None:
    listener, request = listening()
    try:
        pasted = address(listener.redirect_uri, request.state, iss="https://evil.example.com")
        PasteReader(io.StringIO(pasted + "\n"), request, listener, print).start()
        with pytest.raises(CallbackRejected, match="another authorization server"):
            listener.wait(10)
    finally:
        listener.close()


@pytest.mark.integration  # the real loopback callback listener
def test_end_of_input_without_our_address_cancels() -> None:
    result, _ = read_pastes("garbage\n")
    assert isinstance(result, SignInCancelled)


@pytest.mark.integration  # the real loopback callback listener
def test_the_loopback_callback_arriving_first_completes_it_too() -> None:
    listener, request = listening()
    read_end, write_end = os.pipe()
    stream = os.fdopen(read_end, "r")
    reader = PasteReader(stream, request, listener, print)

    def browser(url: str) -> None:
        with urllib.request.urlopen(url) as answer:
            answer.read()

    try:
        reader.start()
        url = address(listener.redirect_uri, request.state)
        threading.Thread(target=browser, args=(url,), daemon=True).start()
        assert listener.wait(10) == CODE
    finally:
        os.close(write_end)  # end of input: the reader stops
        reader.join(10)
        stream.close()
        listener.close()


FOUND = Discovered("https://mcp.example.com/mcp", "https://mcp.example.com/mcp", SERVER)


class FakeAs:
    """Answers the device authorization request, then the polls in turn."""

    def __init__(self, polls: list[tuple[int, dict[str, Any]]]) -> None:
        self.polls = polls
        self.requests: list[httpx2.Request] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        if str(request.url).endswith("/device"):
            body = {
                "device_code": "CANARY-device",
                "user_code": "BCDF-GHJK",
                "verification_uri": f"{ISSUER}/verify",
                "expires_in": 60,
                "interval": 5,
            }
            return httpx2.Response(200, content=json.dumps(body).encode())
        status, body = self.polls.pop(0)
        return httpx2.Response(status, content=json.dumps(body).encode())


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


TOKENS = {"access_token": "CANARY-at", "token_type": "Bearer", "expires_in": 3600}


def run_device(fake: FakeAs, clock: Clock) -> tuple[Any, list[DeviceAuthorization]]:
    shown: list[DeviceAuthorization] = []
    result = device_sign_in(
        fake,
        FOUND,
        CLIENT,
        "mcp:tools",
        FOUND.resource,
        shown.append,
        clock=clock.time,
        sleep=clock.sleep,
    )
    return result, shown


def test_device_flow_polls_with_interval_and_slow_down_until_approved() -> None:
    fake = FakeAs(
        [
            (400, {"error": "authorization_pending"}),
            (400, {"error": "slow_down"}),
            (400, {"error": "authorization_pending"}),
            (200, TOKENS),
        ]
    )
    clock = Clock()
    tokens, shown = run_device(fake, clock)
    assert tokens.access_token == "CANARY-at"
    assert tokens.key.resource == FOUND.resource
    assert [s.user_code for s in shown] == ["BCDF-GHJK"]
    assert clock.slept == [5.0, 5.0, 10.0, 10.0]  # slow_down at 10 s: 5 s more from then on
    first = parse_qs(fake.requests[0].content.decode())
    assert first == {"client_id": ["public"], "scope": ["mcp:tools"], "resource": [FOUND.resource]}
    poll = parse_qs(fake.requests[1].content.decode())
    assert poll["grant_type"] == [DEVICE_CODE_GRANT]
    assert poll["resource"] == [FOUND.resource]


def test_device_flow_denied() -> None:
    with pytest.raises(AuthorizationDenied):
        run_device(FakeAs([(400, {"error": "access_denied"})]), Clock())


def test_device_flow_expired_token() -> None:
    with pytest.raises(SignInTimeout):
        run_device(FakeAs([(400, {"error": "expired_token"})]), Clock())


def test_device_flow_stops_polling_at_the_deadline() -> None:
    fake = FakeAs([(400, {"error": "authorization_pending"})] * 20)
    clock = Clock()
    with pytest.raises(SignInTimeout):
        run_device(fake, clock)
    assert len(fake.requests) == 1 + 11  # polls at 5, 10, ..., 55 s; none at or after 60 s


def test_device_flow_polls_carry_dpop_proofs_and_the_device_request_none() -> None:
    from broker.config import ServerConfig
    from broker.oauth import dpop as proofs
    from broker.tokens.dpop import Dpop

    bound = {**TOKENS, "token_type": "DPoP"}
    fake = FakeAs([(400, {"error": "authorization_pending"}), (200, bound)])

    def with_requests(request: httpx2.Request) -> httpx2.Response:
        answer = fake(request)
        return httpx2.Response(answer.status_code, content=answer.content, request=request)

    dpop, key = Dpop(), proofs.new_key()
    send = dpop.token_sender(with_requests, SERVER, key, ServerConfig(FOUND.server_url))
    clock = Clock()
    tokens = device_sign_in(
        send, FOUND, CLIENT, None, None, lambda _: None, clock=clock.time, sleep=clock.sleep
    )
    assert tokens.token_type == "DPoP"
    assert "dpop" not in fake.requests[0].headers  # the device authorization request
    polls = fake.requests[1:]
    assert len(polls) == 2 and all("dpop" in poll.headers for poll in polls)
    assert len({poll.headers["dpop"] for poll in polls}) == 2  # a new proof each time
