"""The authorization response checks (RFC 6749 §4.1.2, RFC 9207)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from broker.errors import AuthorizationDenied, CallbackRejected
from broker.oauth.as_metadata import AuthServer
from broker.oauth.authorize import AuthorizationRequest, build_authorization_request
from broker.oauth.callback_params import authorization_code, is_our_callback
from broker.oauth.providers import GENERIC
from broker.oauth.registration import ClientCredentials

ISSUER = "http://localhost:3001"
SERVER = AuthServer(ISSUER, f"{ISSUER}/authorize", f"{ISSUER}/token", GENERIC)


def pending(iss_supported: bool) -> AuthorizationRequest:
    server = replace(SERVER, iss_parameter_supported=iss_supported)
    return build_authorization_request(
        server, ClientCredentials("c", ISSUER), "http://127.0.0.1:1/callback", None, None
    )


@pytest.mark.parametrize("supported", [True, False])
def test_matching_iss_is_accepted(supported: bool) -> None:
    request = pending(supported)
    params = {"code": "the-code", "state": request.state, "iss": ISSUER}
    assert authorization_code(params, request) == "the-code"


def test_missing_iss_is_fine_when_not_advertised() -> None:
    request = pending(False)
    assert authorization_code({"code": "c", "state": request.state}, request) == "c"


def test_missing_iss_is_rejected_when_advertised() -> None:
    request = pending(True)
    with pytest.raises(CallbackRejected, match="iss"):
        authorization_code({"code": "c", "state": request.state}, request)


@pytest.mark.parametrize("supported", [True, False])
@pytest.mark.parametrize(
    "iss",
    ["https://evil.example.com", ISSUER + "/", "HTTP://localhost:3001", "http://localhost:3001:80"],
)
def test_wrong_or_merely_equivalent_iss_is_rejected(supported: bool, iss: str) -> None:
    request = pending(supported)
    with pytest.raises(CallbackRejected):
        authorization_code({"code": "c", "state": request.state, "iss": iss}, request)


def test_iss_mismatch_hides_the_error_parameters() -> None:
    request = pending(True)
    params = {
        "state": request.state,
        "iss": "https://evil.example.com",
        "error": "access_denied",
        "error_description": "<script>alert('call +1-555-SCAM')</script>",
    }
    with pytest.raises(CallbackRejected) as caught:
        authorization_code(params, request)
    assert "SCAM" not in str(caught.value) and "access_denied" not in str(caught.value)


def test_error_from_the_right_issuer_is_reported() -> None:
    request = pending(True)
    params = {
        "state": request.state,
        "iss": ISSUER,
        "error": "access_denied",
        "error_description": "user said no",
    }
    with pytest.raises(AuthorizationDenied) as caught:
        authorization_code(params, request)
    assert caught.value.error == "access_denied" and "user said no" in str(caught.value)


@pytest.mark.parametrize("state", [None, "", "forged"])
def test_wrong_or_missing_state_is_not_ours(state: str | None) -> None:
    request = pending(False)
    params = {"code": "c"} if state is None else {"code": "c", "state": state}
    assert not is_our_callback(params, request)
    with pytest.raises(CallbackRejected):
        authorization_code(params, request)


def test_missing_code_is_rejected() -> None:
    request = pending(False)
    with pytest.raises(CallbackRejected, match="code"):
        authorization_code({"state": request.state}, request)
