"""Token requests and responses stepped with recorded exchanges."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import parse_qs

import httpx2
import pytest

from broker.errors import InvalidGrant, TokenRequestFailed
from broker.oauth.as_metadata import AuthServer
from broker.oauth.providers import GENERIC
from broker.oauth.registration import ClientCredentials
from broker.oauth.token_request import (
    DEFAULT_LIFETIME,
    MAX_LIFETIME,
    MIN_LIFETIME,
    build_refresh_request,
    build_token_request,
    handle_token_response,
    lifetime,
)
from broker.tokens.tokenset import TokenKey

ISSUER = "https://auth.example.com"
SERVER = AuthServer(ISSUER, f"{ISSUER}/authorize", f"{ISSUER}/token", GENERIC)
PUBLIC = ClientCredentials("pub", ISSUER)
KEY = TokenKey(ISSUER, "pub", "https://mcp.example.com/mcp")
NOW = 1_800_000_000.0


def form(request: httpx2.Request) -> dict[str, list[str]]:
    return parse_qs(request.content.decode())


def reply(body: Any, status: int = 200) -> httpx2.Response:
    return httpx2.Response(status, json=body, request=httpx2.Request("POST", SERVER.token_endpoint))


def test_code_exchange_sends_verifier_redirect_and_resource() -> None:
    request = build_token_request(
        SERVER, PUBLIC, "the-code", "v" * 50, "http://127.0.0.1:5/callback", KEY.resource
    )
    assert request.method == "POST" and str(request.url) == SERVER.token_endpoint
    assert form(request) == {
        "grant_type": ["authorization_code"],
        "code": ["the-code"],
        "redirect_uri": ["http://127.0.0.1:5/callback"],
        "code_verifier": ["v" * 50],
        "resource": [KEY.resource],
        "client_id": ["pub"],
    }


def test_resource_opt_out_leaves_it_out() -> None:
    request = build_token_request(SERVER, PUBLIC, "c", "v" * 50, "http://127.0.0.1:5/cb", None)
    assert "resource" not in form(request)


def test_refresh_request_sends_resource_and_refresh_token() -> None:
    request = build_refresh_request(SERVER, PUBLIC, "rt-1", KEY.resource)
    assert form(request) == {
        "grant_type": ["refresh_token"],
        "refresh_token": ["rt-1"],
        "resource": [KEY.resource],
        "client_id": ["pub"],
    }


def test_success_gives_absolute_expiry_and_scope() -> None:
    tokens = handle_token_response(
        reply(
            {
                "access_token": "at",
                "token_type": "bearer",
                "expires_in": 600,
                "refresh_token": "rt",
                "scope": "a b",
            }
        ),
        KEY,
        "a",
        now=NOW,
    )
    assert (tokens.access_token, tokens.refresh_token, tokens.scope) == ("at", "rt", "a b")
    # A second is held back: ``expires_in`` is whole seconds, the server may have rounded down.
    assert tokens.expires_at == NOW + 599 and tokens.key == KEY


def test_scope_defaults_to_the_requested_one() -> None:
    tokens = handle_token_response(reply({"access_token": "at"}), KEY, "a", now=NOW)
    assert tokens.scope == "a"


def test_refresh_without_rotation_keeps_the_old_refresh_token() -> None:
    tokens = handle_token_response(reply({"access_token": "at2"}), KEY, None, "rt-old", now=NOW)
    assert tokens.refresh_token == "rt-old"
    rotated = handle_token_response(
        reply({"access_token": "at3", "refresh_token": "rt-new"}), KEY, None, "rt-old", now=NOW
    )
    assert rotated.refresh_token == "rt-new"


@pytest.mark.parametrize(
    ("expires_in", "seconds"),
    [
        (None, DEFAULT_LIFETIME),
        ("soon", DEFAULT_LIFETIME),
        (True, DEFAULT_LIFETIME),
        ({"x": 1}, DEFAULT_LIFETIME),
        (float("nan"), DEFAULT_LIFETIME),
        (0, MIN_LIFETIME),
        (-5, MIN_LIFETIME),
        ("3600", 3600),
        (2, 2),
        (0.5, 1),
        (10**30, MAX_LIFETIME),
        (float("inf"), MAX_LIFETIME),
    ],
)
def test_odd_expires_in_gets_a_safe_lifetime(expires_in: Any, seconds: int) -> None:
    assert lifetime(expires_in) == seconds


def test_missing_expires_in_in_a_response() -> None:
    body = json.dumps({"access_token": "at", "expires_in": "1e999"})
    response = httpx2.Response(200, content=body, request=httpx2.Request("POST", "https://a/t"))
    expires_at = handle_token_response(response, KEY, None, now=NOW).expires_at
    assert expires_at == NOW + MAX_LIFETIME - 1


def test_invalid_grant_is_its_own_error() -> None:
    with pytest.raises(InvalidGrant) as caught:
        handle_token_response(reply({"error": "invalid_grant"}, 400), KEY, None)
    assert caught.value.error == "invalid_grant" and caught.value.status_code == 400


@pytest.mark.parametrize(
    "body",
    [
        {"token_type": "Bearer"},
        {"access_token": "", "token_type": "Bearer"},
        {"access_token": "at", "token_type": "DPoP"},
        ["at"],
    ],
)
def test_unusable_success_responses_are_refused(body: Any) -> None:
    with pytest.raises(TokenRequestFailed):
        handle_token_response(reply(body), KEY, None)


def test_error_message_does_not_repeat_the_response_body() -> None:
    with pytest.raises(TokenRequestFailed) as caught:
        handle_token_response(
            reply({"error": "invalid_client", "error_description": "\x1b[2J<b>x</b>"}, 401),
            KEY,
            None,
        )
    assert "\x1b" not in str(caught.value) and "<b>" not in str(caught.value)


def test_error_code_with_control_characters_is_dropped() -> None:
    with pytest.raises(TokenRequestFailed) as caught:
        handle_token_response(reply({"error": "\x1b]0;pwned\x07"}, 400), KEY, None)
    assert caught.value.error == "" and "\x1b" not in str(caught.value)


def jwt_with(claims: Any) -> str:
    def part(value: Any) -> str:
        raw = json.dumps(value).encode() if not isinstance(value, bytes) else value
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256'})}.{part(claims)}.c2ln"


@pytest.mark.parametrize(
    ("token", "exp_claim", "expected"),
    [
        # Cognito rounds exp down: the token dies 0.7 s before expires_in says; exp is exact.
        (jwt_with({"exp": NOW + 599.3}), True, NOW + 599.3),
        (jwt_with({"exp": NOW + 601}), True, NOW + 601),  # rounded up: lives a bit longer
        # The claim disagrees with expires_in by more than a second and the clock allowance:
        # the clocks differ (or the claim is nonsense), so the estimate stands.
        (jwt_with({"exp": NOW + 560}), True, NOW + 599),
        (jwt_with({"exp": NOW + 5000}), True, NOW + 599),
        (jwt_with({"exp": "tomorrow"}), True, NOW + 599),
        (jwt_with({"exp": True}), True, NOW + 599),
        (jwt_with(["exp"]), True, NOW + 599),
        (jwt_with(b"\xff not json"), True, NOW + 599),
        ("opaque-token", True, NOW + 599),
        ("a.%%%.c", True, NOW + 599),
        # Without the provider profile's word, an access token is opaque: never read.
        (jwt_with({"exp": NOW + 599.3}), False, NOW + 599),
    ],
)
def test_a_jwt_exp_claim_gives_the_exact_expiry_only_when_the_profile_says_so(
    token: str, exp_claim: bool, expected: float
) -> None:
    response = reply({"access_token": token, "expires_in": 600})
    tokens = handle_token_response(response, KEY, None, now=NOW, exp_claim=exp_claim)
    assert tokens.expires_at == pytest.approx(expected)


@pytest.mark.parametrize(
    ("token", "exp_claim", "obtained"),
    [
        (jwt_with({"exp": NOW + 5}), True, NOW + 0.25),  # exact exp: counted from the answer
        (jwt_with({"exp": NOW + 60}), True, NOW),  # the claim disagrees: the estimate's start
        (jwt_with({"exp": NOW + 5}), False, NOW),  # no profile: counted from the request
        ("opaque-token", True, NOW),
    ],
)
def test_with_an_exact_expiry_the_lifetime_is_counted_from_the_answer(
    token: str, exp_claim: bool, obtained: float
) -> None:
    """A slow answer (0.25 s) must not lengthen the lifetime the refresh margins are fractions
    of: with an exact ``exp`` the 85 % point is then 0.04 s early for a 5 s token (uptime soak).
    The estimated expiry, by contrast, is still counted from the request."""
    response = reply({"access_token": token, "expires_in": 5})
    tokens = handle_token_response(
        response, KEY, None, now=NOW, exp_claim=exp_claim, received=NOW + 0.25
    )
    assert tokens.obtained_at == obtained
    assert tokens.expires_at == pytest.approx(NOW + 5 if obtained != NOW else NOW + 4, abs=1e-6)


def test_the_lifetime_never_starts_before_the_request() -> None:
    response = reply({"access_token": jwt_with({"exp": NOW + 6}), "expires_in": 5})
    tokens = handle_token_response(response, KEY, None, now=NOW + 1, exp_claim=True, received=NOW)
    assert (tokens.obtained_at, tokens.expires_at) == (NOW + 1, NOW + 6)


def test_short_lifetimes_hold_back_a_quarter_at_most() -> None:
    tokens = handle_token_response(
        reply({"access_token": "at", "expires_in": 2}), KEY, None, now=NOW
    )
    assert tokens.expires_at == NOW + 1.5


ID = {"iss": ISSUER, "aud": "pub"}  # an ID token of the issuer signed in to, for this client
ACCESS = {"iss": ISSUER, "client_id": "pub"}  # a Cognito access token, likewise


@pytest.mark.parametrize(
    ("id_claims", "access_claims", "jwt_access_tokens", "shown"),
    [
        ({**ID, "preferred_username": "ada", "email": "ada@example.com"}, {}, False, "ada"),
        ({**ID, "email": "ada@example.com", "sub": "1234"}, {}, False, "ada@example.com"),
        ({**ID, "aud": ["other", "pub"], "name": "Ada"}, {}, False, "Ada"),
        ({**ID, "sub": "1234"}, {**ACCESS, "username": "ada"}, True, "ada"),  # Cognito's
        (None, {**ACCESS, "username": "ada"}, True, "ada"),
        (None, {**ACCESS, "username": "ada"}, False, None),  # an opaque token is never read
        (None, {**ACCESS, "sub": "only-an-id"}, True, None),  # an id is not a name
        ({**ID, "name": 42, "email": ["x"]}, {}, False, None),
        # Another issuer's or another client's token names nobody here.
        ({**ID, "iss": "https://evil.example", "name": "Mallory"}, {}, False, None),
        ({**ID, "aud": "someone-else", "name": "Mallory"}, {}, False, None),
        ({"name": "Mallory"}, {}, False, None),
        (None, {**ACCESS, "client_id": "other", "username": "mallory"}, True, None),
    ],
)
def test_the_signed_in_user_is_read_for_display(
    id_claims: dict[str, Any] | None,
    access_claims: dict[str, Any],
    jwt_access_tokens: bool,
    shown: str | None,
) -> None:
    body: dict[str, Any] = {"access_token": jwt_with(access_claims), "expires_in": 600}
    if id_claims is not None:
        body["id_token"] = jwt_with(id_claims)
    tokens = handle_token_response(reply(body), KEY, None, now=NOW, exp_claim=jwt_access_tokens)
    assert tokens.user == shown


@pytest.mark.parametrize(
    "payload",
    [
        b'{"exp": 1' + b"0" * 400 + b', "username": "x"}',  # float() overflows
        b'{"exp": 1e999}',  # infinity
        b"[" * 100_000 + b"]" * 100_000,  # nested beyond the recursion limit
    ],
)
def test_a_hostile_jwt_payload_is_ignored_not_a_crash(payload: bytes) -> None:
    token = jwt_with(payload)
    if len(token.split(".")[1]) > 16 * 1024:  # too long to be read at all: also fine
        token = "a." + base64.urlsafe_b64encode(b"[" * 5000 + b"]" * 5000).decode() + ".c"
    body = {"access_token": token, "id_token": token, "expires_in": 600}
    tokens = handle_token_response(reply(body), KEY, None, now=NOW, exp_claim=True)
    assert tokens.expires_at == NOW + 599 and tokens.user is None


def test_a_hostile_user_name_is_made_printable_and_short() -> None:
    name = "Ada\x1b]0;pwned\x07 L\u200bovelace" + "x" * 100
    body = {"access_token": "at", "id_token": jwt_with({**ID, "name": name})}
    user = handle_token_response(reply(body), KEY, None, now=NOW).user
    assert user is not None and user.startswith("Ada ]0;pwned Lovelace")
    assert len(user) == 64 and user.isprintable()
