"""Token sources: what the bridge asks after a 401 or a 403, from the library or the API."""

from __future__ import annotations

from typing import Any

import pytest

from broker.api.endpoint import ApiToken
from broker.bridge import tokens as bridge_tokens
from broker.bridge.api_tokens import ApiTokens
from broker.bridge.library_tokens import LibraryTokens
from broker.bridge.sources import BrokerTokens
from broker.errors import (
    BrokerNotRunning,
    InsufficientScope,
    InteractionRequired,
    from_wire,
)
from broker.tokens.dpop import Dpop
from broker.tokens.tokenset import TokenKey, TokenSet
from tests.broker.bridge.fakes import FakeTokens

URL = "http://127.0.0.1:1/mcp"
KEY = TokenKey("http://issuer", "demo-broker", URL)


def tokens(access: str, scope: str = "mcp/tools", key: TokenKey = KEY) -> TokenSet:
    return TokenSet(key, access, expires_at=9e9, scope=scope, refresh_token="r")


class FakeService:
    def __init__(self, refreshed: TokenSet) -> None:
        self.refreshed = refreshed
        self.put_sets: list[TokenSet] = []

    def refresh(self, key: TokenKey) -> TokenSet:
        return self.refreshed

    def put(self, tokens: TokenSet) -> None:
        self.put_sets.append(tokens)


class FakeBroker:
    def __init__(
        self,
        current: TokenSet,
        refreshed: TokenSet | None = None,
        signed_in: TokenSet | None = None,
    ) -> None:
        self.current = current
        self.service = FakeService(refreshed or current)
        self.signed_in = signed_in or tokens("unused")
        self.logins: list[str | None] = []
        self.dpop = Dpop()

    def token(self, url: str, min_valid: float | None = None) -> TokenSet:
        assert url == URL
        return self.current

    def renewed(self, url: str) -> TokenSet:
        assert url == URL
        return self.service.refresh(self.current.key)

    def login(self, url: str, extra_scope: str | None = None) -> TokenSet:
        assert url == URL
        self.logins.append(extra_scope)
        return self.signed_in


def library(broker: FakeBroker) -> tuple[LibraryTokens, FakeBroker]:
    return LibraryTokens(broker, URL), broker  # type: ignore[arg-type]


def test_library_renewal_hands_out_a_token_another_request_already_renewed() -> None:
    source, _ = library(FakeBroker(tokens("newer"), refreshed=tokens("never")))

    assert source.renewed("refused") == "newer"


def test_library_renewal_forces_a_refresh_when_the_refused_token_is_the_current_one() -> None:
    source, _ = library(FakeBroker(tokens("refused"), refreshed=tokens("fresh")))

    assert source.renewed("refused") == "fresh"


def test_library_renewal_that_yields_the_refused_token_again_asks_for_sign_in() -> None:
    source, _ = library(FakeBroker(tokens("refused")))

    with pytest.raises(InteractionRequired, match="mcp-broker login"):
        source.renewed("refused")


def test_library_step_up_signs_in_through_the_one_flow_for_the_challenged_scope() -> None:
    # The flow (broker.signin.flow) adds the held scope and keys the tokens by the server.
    broker = FakeBroker(
        tokens("narrow", "mcp/tools offline_access"),
        signed_in=tokens("wide", "mcp/tools mcp/admin"),
    )
    source, _ = library(broker)

    assert source.stepped_up("narrow", "mcp/admin") == "wide"
    assert broker.logins == ["mcp/admin"]


def test_library_step_up_already_done_by_another_request_is_not_repeated() -> None:
    source, broker = library(FakeBroker(tokens("wide", "mcp/tools mcp/admin")))

    assert source.stepped_up("narrow", "mcp/admin") == "wide"
    assert broker.logins == []


def test_library_step_up_asking_for_nothing_new_does_not_sign_in_again() -> None:
    source, broker = library(FakeBroker(tokens("wide", "mcp/tools mcp/admin")))

    with pytest.raises(InsufficientScope):
        source.stepped_up("wide", "mcp/admin")
    assert broker.logins == []


class FakeApi:
    """Stands in for ``broker.api.endpoint.request_token``."""

    def __init__(self, *answers: ApiToken | Exception) -> None:
        self.answers = list(answers)
        self.asked: list[dict[str, Any]] = []

    def __call__(self, resource: str, **kwargs: Any) -> ApiToken:
        self.asked.append({"resource": resource, **kwargs})
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def api_token(access: str, scope: str = "mcp/tools") -> ApiToken:
    return ApiToken(access, "Bearer", 60, 9_999_999_999, scope, URL)


def api(monkeypatch: pytest.MonkeyPatch, *answers: ApiToken | Exception) -> FakeApi:
    fake = FakeApi(*answers)
    monkeypatch.setattr("broker.api.endpoint.request_token", fake)
    return fake


def test_api_step_up_asks_for_the_union_and_explains_a_missing_scope(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    refused = from_wire(403, "insufficient_scope", "the token lacks mcp/admin")  # as answered
    fake = api(monkeypatch, api_token("narrow"), refused)
    source = ApiTokens(URL)
    try:
        source.token()
        with pytest.raises(InsufficientScope) as error:
            source.stepped_up("narrow", "mcp/admin")
    finally:
        source.close()

    assert set(fake.asked[1]["scope"].split()) == {"mcp/tools", "mcp/admin"}
    assert "mcp/admin" in str(error.value) and f"mcp-broker login {URL}" in str(error.value)


def test_api_step_up_returns_a_token_the_broker_already_has(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    api(monkeypatch, api_token("narrow"), api_token("wide", "mcp/tools mcp/admin"))
    source = ApiTokens(URL)
    try:
        source.token()
        assert source.stepped_up("narrow", "mcp/admin") == "wide"
    finally:
        source.close()


def test_api_renewal_that_yields_the_refused_token_asks_for_sign_in(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = api(monkeypatch, api_token("same"))
    source = ApiTokens(URL)
    try:
        with pytest.raises(InteractionRequired, match="mcp-broker login"):
            source.renewed("same")
    finally:
        source.close()
    assert fake.asked[0]["min_valid"] > bridge_tokens.MIN_VALID_SECONDS


class Source(FakeTokens):
    """A token source that can be made to stop answering like a quitting broker."""

    def __init__(self, token: str) -> None:
        super().__init__([token])
        self.closed = False

    def close(self) -> None:
        self.closed = True


def test_without_a_running_broker_the_library_answers_and_the_api_is_not_tried_again() -> None:
    library = Source("from-library")
    tries: list[str] = []

    def no_broker() -> Source:
        tries.append("api")
        raise BrokerNotRunning("no broker is running")

    source = BrokerTokens(URL, no_broker, lambda: library)

    assert [source.token(), source.token()] == ["from-library", "from-library"]
    assert tries == ["api"]


def test_when_the_broker_quits_mid_session_the_same_request_is_answered_by_the_library() -> None:
    api, library = Source("from-api"), Source("from-library")
    opened: list[str] = []

    def open_library() -> Source:
        opened.append("library")
        return library

    source = BrokerTokens(URL, lambda: api, open_library)
    first = source.token()
    api.fail = BrokerNotRunning("the broker stopped answering")

    assert (first, opened) == ("from-api", [])
    assert [source.token(), source.token()] == ["from-library", "from-library"]
    assert opened == ["library"]
    source.close()
    assert api.closed and library.closed
