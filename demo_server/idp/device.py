"""The OAuth 2.0 Device Authorization Grant (RFC 8628), with ``--device-flow`` only.

NOT Cognito behaviour: Cognito has no device flow. It is here so that a client's device-flow
sign-in can be tested end to end against a local server, with a real browser approving the code.

- ``POST /oauth2/device_authorization`` (§3.1, §3.2): the client (public: ``client_id``;
  confidential: its secret) asks with ``scope`` and optionally one ``resource`` (RFC 8707); the
  answer has ``device_code``, ``user_code`` (``BCDF-GHJK``: 8 letters without vowels, §6.1),
  ``verification_uri`` (``/device``), ``verification_uri_complete`` (with the user code),
  ``expires_in`` and ``interval``. The client must be allowed the ``device_code`` flow.
- ``/device`` (§3.3): the signed-in user enters or confirms the user code, sees the client and
  scopes, and approves or denies. A code is decided once.
- The token endpoint (§3.4, §3.5) answers a poll with ``authorization_pending``; ``slow_down`` when
  polled before ``interval`` has passed since the last poll (the interval then grows by 5 s, for
  this and every later poll); ``access_denied`` once denied; ``expired_token`` after
  ``expires_in``; tokens once approved (the device code is then spent: ``invalid_grant``).
  ``resource`` on the token request must be the one authorized, if any (RFC 8707 §2.2).

Only SHA-256 hashes of device codes are kept as keys, like refresh tokens.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from authlib.oauth2.rfc6749 import (
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    UnauthorizedClientError,
)
from authlib.oauth2.rfc6749.grants import BaseGrant, TokenEndpointMixin

from demo_server.idp.errors import (
    AuthorizationPendingError,
    DeviceAccessDeniedError,
    ExpiredTokenError,
    SlowDownError,
)
from demo_server.idp.models import DEVICE_CODE_GRANT_TYPE, Client, User
from demo_server.idp.resource_indicators import bound_resource, requested_resource
from demo_server.idp.tokens import Grant, new_origin_jti

if TYPE_CHECKING:
    from demo_server.idp.authorization_server import IdpAuthorizationServer

logger = logging.getLogger(__name__)

ENDPOINT_NAME = "device_authorization"
DEVICE_AUTHORIZATION_PATH = "/oauth2/device_authorization"
VERIFICATION_PATH = "/device"
USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"  # RFC 8628 §6.1: no vowels, no look-alike digits
USER_CODE_LENGTH = 8
SLOW_DOWN_STEP = 5  # seconds (RFC 8628 §3.5)
EXPIRED_KEPT = 3600  # an expired request is remembered this long, to answer expired_token
AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]

Status = Literal["pending", "approved", "denied"]


def new_user_code() -> str:
    letters = "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(USER_CODE_LENGTH))
    return f"{letters[:4]}-{letters[4:]}"


def normalise_user_code(text: str) -> str:
    """What the user typed, compared case-insensitively and without dashes or spaces (§6.1)."""
    letters = re.sub(r"[^A-Za-z]", "", text[:64]).upper()
    return f"{letters[:4]}-{letters[4:]}" if len(letters) == USER_CODE_LENGTH else ""


def code_key(device_code: str) -> str:
    return hashlib.sha256(device_code.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass
class DeviceAuthorization:
    """One device authorization request, from §3.1 until tokens are issued or it expires."""

    client_id: str
    scope: str
    resource: str | None
    user_code: str
    expires_at: float
    interval: int
    status: Status = "pending"
    last_poll: float | None = None
    username: str | None = None
    auth_time: int | None = None


class DeviceStore:
    """Pending device authorizations of one server, thread-safe."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._by_code: dict[str, DeviceAuthorization] = {}
        self._by_user_code: dict[str, str] = {}

    def add(self, record: DeviceAuthorization) -> str:
        """Keep ``record``; returns its new device code (the user code is already in it)."""
        device_code = secrets.token_urlsafe(32)
        with self._lock:
            self._drop_expired()
            key = code_key(device_code)
            self._by_code[key] = record
            self._by_user_code[record.user_code] = key
        return device_code

    def unused_user_code(self) -> str:
        with self._lock:
            while True:
                code = new_user_code()
                if code not in self._by_user_code:
                    return code

    def pending(self, user_code: str) -> DeviceAuthorization | None:
        """The undecided, unexpired request with this user code (as typed), else None."""
        with self._lock:
            record = self._by_code.get(self._by_user_code.get(normalise_user_code(user_code), ""))
            if record is None or record.status != "pending" or record.expires_at <= self._clock():
                return None
            return record

    def decide(self, user_code: str, user: User, auth_time: int, approve: bool) -> bool:
        """Approve or deny a pending request once; False when there is none with that code."""
        with self._lock:
            record = self._by_code.get(self._by_user_code.get(normalise_user_code(user_code), ""))
            if record is None or record.status != "pending" or record.expires_at <= self._clock():
                return False
            record.status = "approved" if approve else "denied"
            record.username, record.auth_time = user.username, auth_time
            return True

    def poll(self, device_code: str, client_id: str) -> DeviceAuthorization:
        """The approved request, removed (a device code yields tokens once); else the §3.5 error."""
        now = self._clock()
        with self._lock:
            key = code_key(device_code)
            record = self._by_code.get(key)
            if record is None or record.client_id != client_id:
                raise InvalidGrantError("Unknown or spent device_code.")
            if record.expires_at <= now:
                raise ExpiredTokenError("The device_code has expired; start again.")
            if record.status == "denied":
                raise DeviceAccessDeniedError("The user denied the request.")
            if record.status == "approved":
                del self._by_code[key]
                self._by_user_code.pop(record.user_code, None)
                return record
            too_soon = record.last_poll is not None and now - record.last_poll < record.interval
            record.last_poll = now
            if too_soon:
                record.interval += SLOW_DOWN_STEP
                raise SlowDownError(f"Poll at most every {record.interval} seconds.")
            raise AuthorizationPendingError("The user has not approved the request yet.")

    def _drop_expired(self) -> None:
        now = self._clock()
        for key, record in list(self._by_code.items()):
            if record.expires_at + EXPIRED_KEPT <= now:
                del self._by_code[key]
                self._by_user_code.pop(record.user_code, None)


def server_of(owner: Any) -> IdpAuthorizationServer:
    server: IdpAuthorizationServer = owner.server
    return server


class DeviceAuthorizationEndpoint:
    """``POST /oauth2/device_authorization`` (RFC 8628 §3.1–3.2), an authlib endpoint."""

    ENDPOINT_NAME = ENDPOINT_NAME

    def __init__(self, server: IdpAuthorizationServer) -> None:
        self.server = server

    def __call__(self, request: Any) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        return self.create_endpoint_response(request)

    def create_endpoint_request(self, request: Any) -> Any:
        return self.server.create_oauth2_request(request)

    def create_endpoint_response(
        self, request: Any
    ) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        server = server_of(self)
        client: Client = server.authenticate_client(request, AUTH_METHODS, ENDPOINT_NAME)
        if not client.check_grant_type(DEVICE_CODE_GRANT_TYPE):
            raise UnauthorizedClientError("This client may not use the device flow.")
        scope = client.get_allowed_scope(request.payload.scope)
        if scope is None:
            raise InvalidScopeError("A requested scope is not allowed for this client.")
        resource = requested_resource(
            request.payload.datalist.get("resource", []), server.resources
        )
        settings = server.settings
        record = DeviceAuthorization(
            client_id=client.client_id,
            scope=scope,
            resource=resource,
            user_code=server.devices.unused_user_code(),
            expires_at=server.clock() + settings.device_code_ttl,
            interval=settings.device_interval,
        )
        device_code = server.devices.add(record)
        verification_uri = settings.base_url + VERIFICATION_PATH
        body = {
            "device_code": device_code,
            "user_code": record.user_code,
            "verification_uri": verification_uri,
            "verification_uri_complete": f"{verification_uri}?user_code={record.user_code}",
            "expires_in": settings.device_code_ttl,
            "interval": settings.device_interval,
        }
        logger.info("device authorization started for client %s", client.client_id)
        headers = [("Content-Type", "application/json"), ("Cache-Control", "no-store")]
        return 200, body, headers


class DeviceCodeGrant(BaseGrant, TokenEndpointMixin):  # type: ignore[misc]
    """The token request of the device flow (RFC 8628 §3.4) and its answers (§3.5)."""

    GRANT_TYPE = DEVICE_CODE_GRANT_TYPE
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS

    def validate_token_request(self) -> None:
        device_code = self.request.payload.data.get("device_code")
        if not device_code:
            raise InvalidRequestError("Missing 'device_code'.")
        client: Client = self.authenticate_token_endpoint_client()
        if not client.check_grant_type(self.GRANT_TYPE):
            raise UnauthorizedClientError("This client may not use the device flow.")
        self.request.client = client
        self.request.device = server_of(self).devices.poll(device_code, client.client_id)

    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        server = server_of(self)
        record: DeviceAuthorization = self.request.device
        user = server.users.get(record.username or "")
        if user is None or record.auth_time is None:
            raise InvalidGrantError("There is no user for this device_code.")
        resource = bound_resource(
            record.resource, self.request.payload.datalist.get("resource", []), server.resources
        )
        client: Client = self.request.client
        grant = Grant(
            client=client,
            user=user,
            scope=record.scope,
            auth_time=record.auth_time,
            origin_jti=new_origin_jti(),
            resource=resource,
        )
        include_refresh = client.check_grant_type("refresh_token")
        return 200, server.tokens.token_response(grant, include_refresh), self.TOKEN_RESPONSE_HEADER
