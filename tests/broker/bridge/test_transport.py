"""The bridge's HTTP layer: a token on every request, one renewal after a 401, one step-up after
a 403 insufficient_scope, and refusals and failures answered as JSON-RPC errors instead of
exceptions."""

from __future__ import annotations

import json
import logging
from typing import Any

import anyio
import httpx2
import pytest

from broker.bridge.transport import (
    BRIDGE_FAILED,
    BROKER_UNAVAILABLE,
    SIGN_IN_REQUIRED,
    BrokerTokenTransport,
)
from broker.errors import InteractionRequired, StorageLocked
from tests.broker.bridge.fakes import FakeTokens

URL = FakeTokens.resource
BODY = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "whoami"}}


class Server:
    """A scripted MCP server: answers in order, records the token and body of each request."""

    def __init__(self, *answers: httpx2.Response | Exception) -> None:
        self.answers = list(answers)
        self.seen: list[tuple[str, Any]] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.seen.append((request.headers.get("authorization", ""), json.loads(request.content)))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def ok() -> httpx2.Response:
    return httpx2.Response(200, json={"jsonrpc": "2.0", "id": 1, "result": {}})


def challenge(status: int, params: str) -> httpx2.Response:
    return httpx2.Response(status, headers={"www-authenticate": f"Bearer {params}"})


def post(tokens: FakeTokens, server: Server) -> httpx2.Response:
    async def send() -> httpx2.Response:
        transport = BrokerTokenTransport(tokens, httpx2.MockTransport(server))
        async with httpx2.AsyncClient(transport=transport) as http:
            response = await http.post(URL, json=BODY)
            await response.aread()
            return response

    result: httpx2.Response = anyio.run(send)
    return result


def rpc_error(response: httpx2.Response) -> dict[str, Any]:
    assert response.headers["content-type"] == "application/json"
    doc = response.json()
    assert doc["jsonrpc"] == "2.0" and "result" not in doc
    error: dict[str, Any] = doc["error"]
    return error


def test_each_request_carries_the_current_token() -> None:
    server = Server(ok())

    response = post(FakeTokens(["abc"]), server)

    assert response.status_code == 200
    assert server.seen == [("Bearer abc", BODY)]


def test_a_401_gets_one_renewed_token_and_the_same_body_again() -> None:
    tokens = FakeTokens(["old"])
    tokens.renew_to = "new"
    server = Server(challenge(401, 'error="invalid_token"'), ok())

    response = post(tokens, server)

    assert response.status_code == 200
    assert server.seen == [("Bearer old", BODY), ("Bearer new", BODY)]
    assert ("renewed", "old") in tokens.calls


def test_a_second_401_is_answered_with_a_sign_in_error_not_a_third_try() -> None:
    tokens = FakeTokens(["old"])
    tokens.renew_to = "new"
    server = Server(challenge(401, ""), challenge(401, ""))

    response = post(tokens, server)

    assert len(server.seen) == 2
    error = rpc_error(response)
    assert error["code"] == SIGN_IN_REQUIRED
    assert f"mcp-broker login {URL}" in error["message"]


def test_insufficient_scope_steps_up_with_the_challenged_scope_once() -> None:
    tokens = FakeTokens(["narrow"])
    tokens.step_up_to = "wide"
    refused = challenge(403, 'error="insufficient_scope", scope="mcp/tools mcp/admin"')
    server = Server(refused, ok())

    response = post(tokens, server)

    assert response.status_code == 200
    assert ("stepped_up", "narrow", "mcp/tools mcp/admin") in tokens.calls
    assert [token for token, _ in server.seen] == ["Bearer narrow", "Bearer wide"]


def test_still_forbidden_after_a_step_up_is_answered_without_another_sign_in() -> None:
    tokens = FakeTokens(["narrow"])
    tokens.step_up_to = "wide"
    refused = 'error="insufficient_scope", scope="mcp/admin"'
    server = Server(challenge(403, refused), challenge(403, refused))

    error = rpc_error(post(tokens, server))

    assert [c[0] for c in tokens.calls].count("stepped_up") == 1
    assert error["code"] == SIGN_IN_REQUIRED and "mcp/admin" in error["message"]


def test_a_403_for_another_reason_passes_through_untouched() -> None:
    tokens = FakeTokens()
    server = Server(httpx2.Response(403, text="forbidden by policy"))

    response = post(tokens, server)

    assert (response.status_code, response.text) == (403, "forbidden by policy")
    assert [c[0] for c in tokens.calls] == ["token"]


def test_when_the_user_must_sign_in_the_answer_says_how_after_the_servers_401() -> None:
    tokens = FakeTokens()
    tokens.fail = InteractionRequired(
        f"not signed in to {URL}; sign in with: mcp-broker login {URL}"
    )
    server = Server(challenge(401, 'resource_metadata="https://mcp.example/.well-known/x"'))

    error = rpc_error(post(tokens, server))

    assert server.seen == [("", BODY)]  # asked once, with no credentials of any kind
    assert [c[0] for c in tokens.calls] == ["token"]
    assert error["code"] == SIGN_IN_REQUIRED
    assert error["message"].count("mcp-broker login") == 1
    assert "tray" in error["message"]
    assert error["data"] == {"resource": URL, "reason": "interaction_required"}


def test_the_sign_in_command_asks_for_the_scope_the_servers_401_names() -> None:
    tokens = FakeTokens()
    tokens.fail = InteractionRequired(f"not signed in to {URL}")
    server = Server(challenge(401, 'scope="mcp:basic files:read", resource_metadata="x"'))

    error = rpc_error(post(tokens, server))

    assert error["code"] == SIGN_IN_REQUIRED
    assert f"`mcp-broker login {URL} --scope mcp:basic --scope files:read`" in error["message"]


def test_a_server_that_needs_no_sign_in_is_served_without_a_token() -> None:
    tokens = FakeTokens()
    tokens.fail = InteractionRequired(f"not signed in to {URL}")
    server = Server(ok())

    response = post(tokens, server)

    assert response.status_code == 200 and response.json()["result"] == {}
    assert server.seen == [("", BODY)]


def test_other_broker_trouble_is_an_error_answer_too() -> None:
    tokens = FakeTokens()
    tokens.fail = StorageLocked("the keyring is locked")

    error = rpc_error(post(tokens, Server()))

    assert error["code"] == BROKER_UNAVAILABLE and "keyring is locked" in error["message"]


def test_an_unreachable_server_is_an_error_answer_not_an_exception() -> None:
    server = Server(httpx2.ConnectError("refused"))

    response = post(FakeTokens(), server)

    assert response.status_code == 503
    assert "could not reach" in rpc_error(response)["message"]


class BrokenTokens(FakeTokens):
    """A token source with a bug: its renewal raises something no one expected."""

    def renewed(self, refused: str) -> str:
        self.calls.append(("renewed", refused))
        raise RuntimeError(f"renewal crashed for {refused}")


def test_a_token_source_that_raises_a_bug_is_an_error_answer_without_the_token(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tokens = BrokenTokens(["secret-canary-token"])
    server = Server(challenge(401, 'error="invalid_token"'))

    with caplog.at_level(logging.ERROR, logger="broker.bridge"):
        response = post(tokens, server)

    error = rpc_error(response)
    assert response.status_code == 500
    assert error["code"] == BRIDGE_FAILED and "RuntimeError" in error["message"]
    assert "secret-canary-token" not in response.text
    logged = caplog.text
    assert "Traceback" in logged and "renewal crashed" in logged  # the traceback, scrubbed
    assert "secret-canary-token" not in logged


@pytest.mark.parametrize(
    ("raised", "code"),
    [
        (httpx2.DecodingError("bad gzip"), BROKER_UNAVAILABLE),
        (httpx2.TooManyRedirects("loop"), BROKER_UNAVAILABLE),
        (ValueError("malformed answer"), BRIDGE_FAILED),
        (KeyError("bug"), BRIDGE_FAILED),
    ],
)
def test_whatever_the_inner_transport_raises_is_an_error_answer(
    raised: Exception, code: int
) -> None:
    error = rpc_error(post(FakeTokens(), Server(raised)))

    assert error["code"] == code and type(raised).__name__ in error["message"]


def test_the_transport_serves_the_next_request_after_a_failure() -> None:
    server = Server(ValueError("malformed answer"), ok())

    async def send_two() -> list[int]:
        transport = BrokerTokenTransport(FakeTokens(), httpx2.MockTransport(server))
        async with httpx2.AsyncClient(transport=transport) as http:
            return [(await http.post(URL, json=BODY)).status_code for _ in range(2)]

    assert anyio.run(send_two) == [500, 200]
