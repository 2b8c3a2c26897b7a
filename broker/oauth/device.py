"""The device authorization grant (RFC 8628), for a broker with no browser at hand.

1. The device authorization request (§3.1) to the AS's ``device_authorization_endpoint``
   (RFC 8628 §4): ``client_id`` (or the client's authentication when it is confidential),
   ``scope``, and ``resource`` (RFC 8707 §2.1, as in the authorization request).
2. Its response (§3.2): ``device_code`` (secret, never shown), ``user_code``,
   ``verification_uri``, optional ``verification_uri_complete``, ``expires_in``, ``interval``
   (default 5 seconds). The two URIs are shown to the user, so they must be https (or loopback
   http, SECURITY #38) and the user code printable text.
3. Token polling (§3.4) with ``grant_type=urn:ietf:params:oauth:grant-type:device_code``,
   judged by :class:`DevicePolling` (§3.5): ``authorization_pending`` polls again after the
   interval, ``slow_down`` adds 5 seconds to it for good, ``access_denied`` and
   ``expired_token`` end the sign-in, and so does the deadline ``expires_in`` after the device
   authorization response. A request that did not reach the AS doubles the interval
   (exponential back-off, §3.5).

Pure: time is passed in, requests are built and responses judged, the caller sends and sleeps.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import httpx2

from broker.errors import (
    AuthorizationDenied,
    DiscoveryError,
    SignInTimeout,
    TokenRequestFailed,
)
from broker.oauth.as_metadata import AuthServer
from broker.oauth.endpoints import check_endpoint
from broker.oauth.registration import ClientCredentials, client_authentication
from broker.oauth.token_request import token_endpoint_request, token_error
from broker.safetext import safe_text

DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
DEFAULT_INTERVAL = 5
SLOW_DOWN_STEP = 5
#: The interval never grows beyond this, whatever the AS or the back-off says.
MAX_INTERVAL = 300
#: A device code is polled for at most this long, whatever ``expires_in`` says.
MAX_EXPIRES_IN = 3600
#: Used when ``expires_in`` is missing or unreadable (it is REQUIRED).
DEFAULT_EXPIRES_IN = 600
MAX_USER_CODE = 64


@dataclass(frozen=True)
class DeviceAuthorization:
    """The device authorization response; ``device_code`` stays out of ``repr``."""

    device_code: str = field(repr=False)
    user_code: str
    verification_uri: str
    verification_uri_complete: str | None
    expires_in: int
    interval: int


def supports_device_flow(server: AuthServer) -> bool:
    return server.device_authorization_endpoint is not None


def build_device_authorization_request(
    server: AuthServer, client: ClientCredentials, scope: str | None, resource: str | None
) -> httpx2.Request:
    """RFC 8628 §3.1: form-encoded POST to the device authorization endpoint."""
    if server.device_authorization_endpoint is None:
        raise DiscoveryError(
            f"{server.issuer} offers no device authorization "
            "(no device_authorization_endpoint in its metadata)"
        )
    endpoint = check_endpoint(server.device_authorization_endpoint, "device_authorization_endpoint")
    # client_id (§3.1) comes with the client's authentication, or alone for a public client.
    headers, fields = client_authentication(server, client)
    if scope:
        fields["scope"] = scope
    if resource:
        fields["resource"] = resource
    return httpx2.Request(
        "POST", endpoint, data=fields, headers={"Accept": "application/json", **headers}
    )


def _seconds(value: Any, default: int, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        return default
    return int(min(max(value, low), high))


def handle_device_authorization_response(response: httpx2.Response) -> DeviceAuthorization:
    """The validated response, or :class:`TokenRequestFailed` (§3.2; errors per RFC 6749 §5.2)."""
    if response.status_code != 200:
        raise token_error(response)
    try:
        body = json.loads(response.content)
    except (ValueError, RecursionError):
        body = None
    if not isinstance(body, dict):
        raise TokenRequestFailed("the device authorization response is not a JSON object")
    device_code = body.get("device_code")
    user_code = body.get("user_code")
    if not isinstance(device_code, str) or not device_code:
        raise TokenRequestFailed("the device authorization response has no device_code")
    if not isinstance(user_code, str) or not user_code:
        raise TokenRequestFailed("the device authorization response has no user_code")
    shown_code = safe_text(user_code, MAX_USER_CODE)
    if shown_code != user_code:
        raise TokenRequestFailed("the device authorization response has an unprintable user_code")
    uri = body.get("verification_uri")
    if not isinstance(uri, str):
        raise TokenRequestFailed("the device authorization response has no verification_uri")
    verification_uri = check_endpoint(uri, "verification_uri")
    complete = body.get("verification_uri_complete")
    verification_uri_complete = None
    if isinstance(complete, str):
        # Optional: an unusable one is left out rather than failing the sign-in.
        try:
            verification_uri_complete = check_endpoint(complete, "verification_uri_complete")
        except DiscoveryError:
            verification_uri_complete = None
    return DeviceAuthorization(
        device_code=device_code,
        user_code=user_code,
        verification_uri=verification_uri,
        verification_uri_complete=verification_uri_complete,
        expires_in=_seconds(body.get("expires_in"), DEFAULT_EXPIRES_IN, 1, MAX_EXPIRES_IN),
        interval=_seconds(body.get("interval"), DEFAULT_INTERVAL, 1, MAX_INTERVAL),
    )


def build_device_token_request(
    server: AuthServer, client: ClientCredentials, device_code: str, resource: str | None
) -> httpx2.Request:
    """RFC 8628 §3.4 (``resource`` again per RFC 8707 §2.2)."""
    fields = {"grant_type": DEVICE_CODE_GRANT, "device_code": device_code}
    if resource:
        fields["resource"] = resource
    return token_endpoint_request(server, client, fields)


class DevicePolling:
    """When to poll and what each answer means (RFC 8628 §3.5). Time is passed in.

    Use: ``wait = polling.before_poll(now)``; sleep ``wait``; send the token request at
    ``sent``; ``polling.judge(response, sent)`` is True when the response holds the tokens
    (parse it with :func:`broker.oauth.token_request.handle_token_response`), False to poll
    again; terminal answers raise. ``unreachable(sent)`` after a request that got no answer.
    """

    def __init__(self, authorization: DeviceAuthorization, started: float) -> None:
        self.interval = authorization.interval
        self.deadline = started + authorization.expires_in
        self._next = started + self.interval

    def before_poll(self, now: float) -> float:
        """Seconds to wait before the next token request; raises once the code has expired."""
        if max(now, self._next) >= self.deadline:
            raise SignInTimeout(
                "the code expired before the sign-in was approved: run the sign-in again"
            )
        return max(0.0, self._next - now)

    def unreachable(self, sent: float) -> None:
        self.interval = min(self.interval * 2, MAX_INTERVAL)
        self._next = sent + self.interval

    def judge(self, response: httpx2.Response, sent: float) -> bool:
        self._next = sent + self.interval
        if response.status_code == 200:
            return True
        error = token_error(response)
        if error.error == "authorization_pending":
            return False
        if error.error == "slow_down":
            self.interval = min(self.interval + SLOW_DOWN_STEP, MAX_INTERVAL)
            self._next = sent + self.interval
            return False
        if error.error == "access_denied":
            raise AuthorizationDenied(
                "the sign-in was refused at the verification page", error="access_denied"
            )
        if error.error == "expired_token":
            raise SignInTimeout(
                "the code expired before the sign-in was approved: run the sign-in again"
            )
        raise error
