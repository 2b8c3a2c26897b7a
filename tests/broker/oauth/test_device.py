"""RFC 8628 device authorization: requests, the response, and the polling policy (fake clock)."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qs

import httpx2
import pytest

from broker.errors import (
    AuthorizationDenied,
    DiscoveryError,
    SignInTimeout,
    TokenRequestFailed,
    UnsafeEndpoint,
)
from broker.oauth.as_metadata import AuthServer
from broker.oauth.device import (
    DEFAULT_INTERVAL,
    DEVICE_CODE_GRANT,
    MAX_EXPIRES_IN,
    DeviceAuthorization,
    DevicePolling,
    build_device_authorization_request,
    build_device_token_request,
    handle_device_authorization_response,
)
from broker.oauth.providers import GENERIC
from broker.oauth.registration import ClientCredentials

ISSUER = "https://as.example.com"
SERVER = AuthServer(
    ISSUER,
    f"{ISSUER}/authorize",
    f"{ISSUER}/token",
    GENERIC,
    device_authorization_endpoint=f"{ISSUER}/device",
)
PUBLIC = ClientCredentials("public-client", ISSUER)
RESOURCE = "https://mcp.example.com/mcp"
DEVICE_CODE = "canary-device-code-77"


def form(request: httpx2.Request) -> dict[str, list[str]]:
    return parse_qs(request.content.decode())


def answer(status: int, body: Any) -> httpx2.Response:
    return httpx2.Response(status, content=json.dumps(body).encode())


def test_device_authorization_request_carries_client_scope_and_resource() -> None:
    request = build_device_authorization_request(SERVER, PUBLIC, "mcp:tools openid", RESOURCE)
    assert request.method == "POST"
    assert str(request.url) == f"{ISSUER}/device"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert form(request) == {
        "client_id": ["public-client"],
        "scope": ["mcp:tools openid"],
        "resource": [RESOURCE],
    }


def test_confidential_client_authenticates_instead_of_sending_client_id_alone() -> None:
    client = ClientCredentials("conf", ISSUER, client_secret="s")
    request = build_device_authorization_request(SERVER, client, None, None)
    assert request.headers["authorization"].startswith("Basic ")
    assert form(request) == {}


def test_no_device_endpoint_is_refused() -> None:
    with pytest.raises(DiscoveryError, match="device"):
        build_device_authorization_request(
            replace(SERVER, device_authorization_endpoint=None), PUBLIC, None, None
        )


def good_response(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "device_code": DEVICE_CODE,
        "user_code": "WDJB-MJHT",
        "verification_uri": "https://as.example.com/device",
        "verification_uri_complete": "https://as.example.com/device?user_code=WDJB-MJHT",
        "expires_in": 1800,
        "interval": 7,
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


def test_response_is_parsed_and_the_device_code_stays_out_of_repr() -> None:
    found = handle_device_authorization_response(answer(200, good_response()))
    assert found == DeviceAuthorization(
        DEVICE_CODE,
        "WDJB-MJHT",
        "https://as.example.com/device",
        "https://as.example.com/device?user_code=WDJB-MJHT",
        1800,
        7,
    )
    assert DEVICE_CODE not in repr(found)


def test_interval_defaults_to_five_and_nonsense_is_bounded() -> None:
    found = handle_device_authorization_response(
        answer(200, good_response(interval=None, verification_uri_complete=None))
    )
    assert found.interval == DEFAULT_INTERVAL == 5
    assert found.verification_uri_complete is None
    assert (
        handle_device_authorization_response(answer(200, good_response(interval="x"))).interval == 5
    )
    huge = handle_device_authorization_response(answer(200, good_response(expires_in=10**9)))
    assert huge.expires_in == MAX_EXPIRES_IN
    assert (
        handle_device_authorization_response(answer(200, good_response(interval=0))).interval == 1
    )


@pytest.mark.parametrize(
    "changes",
    [
        {"device_code": None},
        {"user_code": None},
        {"user_code": "AB\x1b[2JCD"},
        {"verification_uri": None},
    ],
)
def test_incomplete_or_unprintable_response_is_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(TokenRequestFailed) as caught:
        handle_device_authorization_response(answer(200, good_response(**changes)))
    assert DEVICE_CODE not in str(caught.value)


def test_unsafe_verification_uri_is_refused_and_an_unsafe_complete_one_dropped() -> None:
    with pytest.raises(UnsafeEndpoint):
        handle_device_authorization_response(
            answer(200, good_response(verification_uri="http://evil.example.com/device"))
        )
    found = handle_device_authorization_response(
        answer(200, good_response(verification_uri_complete="javascript:alert(1)"))
    )
    assert found.verification_uri_complete is None


def test_error_answer_of_the_device_endpoint() -> None:
    with pytest.raises(TokenRequestFailed, match="invalid_client"):
        handle_device_authorization_response(answer(401, {"error": "invalid_client"}))


def test_token_polling_request() -> None:
    request = build_device_token_request(SERVER, PUBLIC, DEVICE_CODE, RESOURCE)
    assert str(request.url) == f"{ISSUER}/token"
    assert form(request) == {
        "grant_type": [DEVICE_CODE_GRANT],
        "device_code": [DEVICE_CODE],
        "resource": [RESOURCE],
        "client_id": ["public-client"],
    }


AUTH = DeviceAuthorization(DEVICE_CODE, "ABCD", "https://as.example.com/d", None, 60, 5)
TOKENS = answer(200, {"access_token": "a", "token_type": "Bearer", "expires_in": 60})


def error(code: str) -> httpx2.Response:
    return answer(400, {"error": code})


def test_polling_waits_the_interval_and_keeps_polling_while_pending() -> None:
    polling = DevicePolling(AUTH, started=1000.0)
    assert polling.before_poll(1000.0) == 5.0
    assert polling.before_poll(1003.0) == 2.0
    assert polling.judge(error("authorization_pending"), sent=1005.0) is False
    assert polling.before_poll(1005.2) == pytest.approx(4.8)
    assert polling.judge(TOKENS, sent=1010.0) is True


def test_slow_down_adds_five_seconds_for_good() -> None:
    polling = DevicePolling(AUTH, started=0.0)
    polling.judge(error("slow_down"), sent=5.0)
    assert polling.interval == 10
    assert polling.before_poll(5.0) == 10.0
    polling.judge(error("authorization_pending"), sent=15.0)
    assert polling.before_poll(15.0) == 10.0
    polling.judge(error("slow_down"), sent=25.0)
    assert polling.interval == 15


def test_access_denied_ends_the_sign_in() -> None:
    polling = DevicePolling(AUTH, started=0.0)
    with pytest.raises(AuthorizationDenied) as caught:
        polling.judge(error("access_denied"), sent=5.0)
    assert caught.value.error == "access_denied"


def test_expired_token_ends_the_sign_in() -> None:
    polling = DevicePolling(AUTH, started=0.0)
    with pytest.raises(SignInTimeout, match="expired"):
        polling.judge(error("expired_token"), sent=5.0)


def test_deadline_from_expires_in_ends_polling_without_a_request() -> None:
    polling = DevicePolling(AUTH, started=0.0)  # expires_in 60, interval 5
    assert polling.before_poll(50.0) == 0.0
    polling.judge(error("authorization_pending"), sent=56.0)
    with pytest.raises(SignInTimeout):
        polling.before_poll(56.5)  # the next poll (61) would be after the deadline (60)


@pytest.mark.parametrize("code", ["invalid_grant", "invalid_client", "unsupported_grant_type"])
def test_other_errors_end_the_sign_in(code: str) -> None:
    polling = DevicePolling(AUTH, started=0.0)
    with pytest.raises(TokenRequestFailed) as caught:
        polling.judge(error(code), sent=5.0)
    assert caught.value.error == code
    assert DEVICE_CODE not in str(caught.value)


def test_no_answer_backs_off_exponentially() -> None:
    polling = DevicePolling(replace(AUTH, expires_in=600), started=0.0)
    polling.unreachable(sent=5.0)
    assert polling.interval == 10
    assert polling.before_poll(5.0) == 10.0
    polling.unreachable(sent=15.0)
    assert polling.interval == 20
