"""`login --no-browser`: what the user pastes is judged exactly like a delivered callback."""

from __future__ import annotations

from dataclasses import replace
from urllib.parse import urlencode

import pytest

from broker.errors import AuthorizationDenied, CallbackRejected
from broker.oauth.as_metadata import AuthServer
from broker.oauth.authorize import AuthorizationRequest, build_authorization_request
from broker.oauth.paste import MAX_PASTE, parse_pasted_callback, pasted_authorization_code
from broker.oauth.providers import GENERIC
from broker.oauth.registration import ClientCredentials

ISSUER = "https://as.example.com"
SERVER = AuthServer(ISSUER, f"{ISSUER}/authorize", f"{ISSUER}/token", GENERIC)
REDIRECT = "http://127.0.0.1:49152/callback"
CODE = "canary-code-8f3a1"


def pending(iss_supported: bool = True) -> AuthorizationRequest:
    return build_authorization_request(
        replace(SERVER, iss_parameter_supported=iss_supported),
        ClientCredentials("c", ISSUER),
        REDIRECT,
        None,
        None,
    )


def address(request: AuthorizationRequest, **extra: str) -> str:
    params = {"code": CODE, "state": request.state, "iss": ISSUER, **extra}
    return f"{REDIRECT}?{urlencode(params)}"


@pytest.mark.parametrize(
    "wrap",
    [
        "{}",
        "  {}\n",
        '"{}"',
        "'{}'",
        "<{}>",
        "\t{}  \r\n",
    ],
)
def test_full_address_with_surrounding_noise(wrap: str) -> None:
    request = pending()
    assert pasted_authorization_code(wrap.format(address(request)), request) == CODE


def test_query_alone_and_pairs_separated_by_spaces() -> None:
    request = pending(iss_supported=False)
    query = urlencode({"code": CODE, "state": request.state})
    assert pasted_authorization_code(query, request) == CODE
    assert pasted_authorization_code("?" + query, request) == CODE
    pairs = f"  code={CODE}   state={request.state}\n"
    assert pasted_authorization_code(pairs, request) == CODE
    assert pasted_authorization_code(f"code='{CODE}' state=\"{request.state}\"", request) == CODE


def test_localhost_address_is_read_too() -> None:
    # The browser may show the redirect URI with another loopback spelling; state decides.
    request = pending()
    pasted = address(request).replace("127.0.0.1", "localhost")
    assert pasted_authorization_code(pasted, request) == CODE


def test_another_sign_ins_address_is_refused_clearly() -> None:
    ours, theirs = pending(), pending()
    with pytest.raises(CallbackRejected, match="another sign-in") as caught:
        pasted_authorization_code(address(theirs), ours)
    assert CODE not in str(caught.value)
    assert theirs.state not in str(caught.value)


def test_iss_is_checked_as_for_a_delivered_callback() -> None:
    request = pending(iss_supported=True)
    without_iss = f"{REDIRECT}?{urlencode({'code': CODE, 'state': request.state})}"
    with pytest.raises(CallbackRejected, match="iss"):
        pasted_authorization_code(without_iss, request)
    with pytest.raises(CallbackRejected, match="another authorization server"):
        pasted_authorization_code(address(request, iss="https://evil.example.com"), request)


def test_error_response_is_reported() -> None:
    request = pending(iss_supported=False)
    pasted = f"{REDIRECT}?{urlencode({'error': 'access_denied', 'state': request.state})}"
    with pytest.raises(AuthorizationDenied, match="access_denied"):
        pasted_authorization_code(pasted, request)


def test_first_of_repeated_parameters_counts_as_on_the_listener() -> None:
    request = pending(iss_supported=False)
    pasted = f"{REDIRECT}?code={CODE}&state={request.state}&state=other&code=second"
    assert pasted_authorization_code(pasted, request) == CODE
    pasted = f"{REDIRECT}?code={CODE}&state=other&state={request.state}"
    with pytest.raises(CallbackRejected, match="another sign-in"):
        pasted_authorization_code(pasted, request)


def test_pasting_the_sign_in_link_itself_says_so() -> None:
    request = pending()
    with pytest.raises(CallbackRejected, match="sign-in link itself"):
        parse_pasted_callback(request.url)


@pytest.mark.parametrize(
    "text", ["", "   ", "hello", CODE, f"code={CODE}", "https://example.com/", "state=x"]
)
def test_text_without_a_callback_is_refused_without_repeating_it(text: str) -> None:
    with pytest.raises(CallbackRejected, match="not a sign-in address") as caught:
        parse_pasted_callback(text)
    assert CODE not in str(caught.value)


def test_overlong_paste_is_refused() -> None:
    request = pending()
    with pytest.raises(CallbackRejected, match="too long"):
        pasted_authorization_code(address(request) + "&x=" + "a" * MAX_PASTE, request)
