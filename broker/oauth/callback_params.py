"""Judge the authorization response delivered to the redirect URI.

Order of checks: ``state`` (RFC 6749 §10.12; a mismatch means the request is not ours and is
ignored by the listener), then ``iss`` (RFC 9207 §2.4: required when the metadata says
``authorization_response_iss_parameter_supported``; when present it must equal the recorded
issuer by simple string comparison), then ``error`` (RFC 6749 §4.1.2.1), then ``code``.
An ``iss`` failure is reported without the response's ``error`` parameters (they may come from an
attacker's authorization server in a mix-up).
"""

from __future__ import annotations

from collections.abc import Mapping

from broker.errors import AuthorizationDenied, CallbackRejected
from broker.oauth.authorize import AuthorizationRequest
from broker.oauth.pkce import states_equal


def is_our_callback(params: Mapping[str, str], request: AuthorizationRequest) -> bool:
    return states_equal(params.get("state"), request.state)


def check_iss(params: Mapping[str, str], issuer: str, required: bool) -> None:
    iss = params.get("iss")
    if iss is None:
        if required:
            raise CallbackRejected(
                "the sign-in response lacks the issuer (iss) its authorization server promised"
            )
        return
    if iss != issuer:
        raise CallbackRejected(
            "the sign-in response came from another authorization server than expected"
        )


def authorization_code(params: Mapping[str, str], request: AuthorizationRequest) -> str:
    """The code of a response that passed every check, or an error safe to show."""
    if not is_our_callback(params, request):
        raise CallbackRejected("the sign-in response does not belong to this sign-in (state)")
    check_iss(params, request.issuer, request.iss_required)
    if "error" in params:
        error = params["error"][:100]
        description = params.get("error_description", "")[:500]
        raise AuthorizationDenied(
            f"the authorization server refused the sign-in: {error}"
            + (f" ({description})" if description else ""),
            error=error,
        )
    code = params.get("code")
    if not code:
        raise CallbackRejected("the sign-in response carries no authorization code")
    return code
