"""The one 401/403 handler (``BrokerAuth``) set on an httpx2 client, as ``mcp-broker call``
uses it: attach, one renewal after a 401, one step-up after a 403 insufficient_scope, and the
"not signed in" policy. (The bridge drives the same handler from its transport:
tests/broker/bridge/test_transport.py.)"""

from __future__ import annotations

import threading

import anyio
import httpx2
import pytest

from broker.errors import InsufficientScope, InteractionRequired
from broker.oauth.www_authenticate import BearerChallenge
from broker.signin.httpauth import BrokerAuth, HandedToken, Unsigned, send_signed
from tests.broker.bridge.fakes import FakeTokens

URL = FakeTokens.resource


class Server:
    """Answers in order; records the Authorization header and body of each request."""

    def __init__(self, *answers: httpx2.Response) -> None:
        self.answers = list(answers)
        self.seen: list[tuple[str | None, bytes]] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.seen.append((request.headers.get("authorization"), request.content))
        return self.answers.pop(0)


def ok() -> httpx2.Response:
    return httpx2.Response(200, json={"ok": True})


def challenge(status: int, params: str) -> httpx2.Response:
    return httpx2.Response(status, headers={"www-authenticate": f"Bearer {params}"})


def client(auth: BrokerAuth, server: Server) -> httpx2.Client:
    return httpx2.Client(transport=httpx2.MockTransport(server), auth=auth)


def test_every_request_carries_the_current_token() -> None:
    tokens = FakeTokens(["a", "b"])
    server = Server(ok(), ok())
    with client(BrokerAuth(tokens), server) as http:
        http.post(URL, content=b"1")
        tokens.rotate()
        http.post(URL, content=b"2")
    assert server.seen == [("Bearer a", b"1"), ("Bearer b", b"2")]


def test_a_401_gets_one_renewed_token_and_the_same_body_again() -> None:
    tokens = FakeTokens(["old"])
    tokens.renew_to = "new"
    server = Server(challenge(401, 'error="invalid_token"'), ok())
    with client(BrokerAuth(tokens), server) as http:
        assert http.post(URL, content=b"body").status_code == 200
    assert server.seen == [("Bearer old", b"body"), ("Bearer new", b"body")]
    assert ("renewed", "old") in tokens.calls


def test_a_second_401_means_sign_in_not_a_third_try() -> None:
    tokens = FakeTokens(["old"])
    tokens.renew_to = "new"
    server = Server(challenge(401, ""), challenge(401, ""))
    with client(BrokerAuth(tokens), server) as http, pytest.raises(InteractionRequired):
        http.post(URL, content=b"x")
    assert len(server.seen) == 2


def test_insufficient_scope_steps_up_once_with_the_challenged_scope() -> None:
    tokens = FakeTokens(["narrow"])
    tokens.step_up_to = "wide"
    server = Server(challenge(403, 'error="insufficient_scope", scope="mcp:write"'), ok())
    with client(BrokerAuth(tokens), server) as http:
        assert http.post(URL, content=b"x").status_code == 200
    assert ("stepped_up", "narrow", "mcp:write") in tokens.calls
    assert [auth for auth, _ in server.seen] == ["Bearer narrow", "Bearer wide"]


def test_still_forbidden_after_one_step_up_is_an_error_without_another() -> None:
    tokens = FakeTokens(["narrow"])
    tokens.step_up_to = "wide"
    refused = 'error="insufficient_scope", scope="mcp:write"'
    server = Server(challenge(403, refused), challenge(403, refused))
    with client(BrokerAuth(tokens), server) as http, pytest.raises(InsufficientScope):
        http.post(URL, content=b"x")
    assert [c[0] for c in tokens.calls].count("stepped_up") == 1


def test_a_403_for_another_reason_is_the_answer() -> None:
    tokens = FakeTokens(["t"])
    server = Server(httpx2.Response(403))
    with client(BrokerAuth(tokens), server) as http:
        assert http.post(URL, content=b"x").status_code == 403
    assert [c[0] for c in tokens.calls] == ["token"]


def test_not_signed_in_the_request_goes_out_without_a_token_and_a_401_says_how() -> None:
    tokens = FakeTokens()
    tokens.fail = InteractionRequired("not signed in")
    server = Server(challenge(401, 'scope="mcp:basic mcp:write"'))
    with client(BrokerAuth(tokens), server) as http, pytest.raises(InteractionRequired) as err:
        http.post(URL, content=b"x")
    assert server.seen == [(None, b"x")]
    assert f"mcp-broker login {URL} --scope mcp:basic --scope mcp:write" in str(err.value)


def test_not_signed_in_a_server_without_auth_is_answered() -> None:
    tokens = FakeTokens()
    tokens.fail = InteractionRequired("not signed in")
    server = Server(ok())
    with client(BrokerAuth(tokens), server) as http:
        assert http.post(URL, content=b"x").status_code == 200


def test_the_not_signed_in_policy_gets_the_challenge_and_may_take_the_401_as_answer() -> None:
    seen: list[BearerChallenge | None] = []

    def keep(found: BearerChallenge | None, _needed: InteractionRequired) -> str | None:
        seen.append(found)
        return None

    server = Server(challenge(401, 'resource_metadata="https://x/prm", scope="a"'))
    request = httpx2.Request("POST", URL, content=b"ping")
    sender = httpx2.Client(transport=httpx2.MockTransport(server))
    with sender:
        response = send_signed(BrokerAuth(Unsigned(URL), keep), request, sender.send)
    assert response.status_code == 401
    assert [(c.scope, c.resource_metadata) for c in seen if c] == [("a", "https://x/prm")]
    assert server.seen == [(None, b"ping")]


def test_the_not_signed_in_policy_may_sign_in_and_retry() -> None:
    server = Server(challenge(401, 'scope="a"'), ok())
    auth = BrokerAuth(Unsigned(URL), lambda found, needed: "signed-in")
    with client(auth, server) as http:
        assert http.post(URL, content=b"x").status_code == 200
    assert [a for a, _ in server.seen] == [None, "Bearer signed-in"]


def test_a_handed_over_token_is_not_renewed() -> None:
    server = Server(challenge(401, ""))
    auth = BrokerAuth(HandedToken(URL, "t"))
    with client(auth, server) as http, pytest.raises(InteractionRequired):
        http.post(URL, content=b"x")
    assert server.seen == [("Bearer t", b"x")]


class ThreadRecordingTokens(FakeTokens):
    def __init__(self) -> None:
        super().__init__(["old"])
        self.threads: list[threading.Thread] = []
        self.renew_to = "new"

    def token(self) -> str:
        self.threads.append(threading.current_thread())
        return super().token()

    def renewed(self, refused: str) -> str:
        self.threads.append(threading.current_thread())
        return super().renewed(refused)


def test_an_async_client_asks_the_token_source_off_the_event_loop() -> None:
    tokens = ThreadRecordingTokens()
    server = Server(challenge(401, ""), ok())

    async def run() -> tuple[int, threading.Thread]:
        transport = httpx2.MockTransport(server)
        async with httpx2.AsyncClient(transport=transport, auth=BrokerAuth(tokens)) as http:
            status = (await http.post(URL, content=b"x")).status_code
            return status, threading.current_thread()

    status, loop_thread = anyio.run(run)
    assert status == 200
    assert len(tokens.threads) == 2 and loop_thread not in tokens.threads
    assert [a for a, _ in server.seen] == ["Bearer old", "Bearer new"]
