"""OAuth errors the local authorization server adds to authlib's (RFC 6749 §5.2 JSON form).

OAuth2Error (authlib)
├── InvalidTargetError        RFC 8707 §2: unknown or mismatched ``resource``
├── UnsupportedTokenTypeError RFC 7009 §2.2.1: Cognito revokes refresh tokens only (400)
└── DeviceFlowError           RFC 8628 §3.5 (--device-flow only; Cognito has no device flow)
    ├── AuthorizationPendingError  authorization_pending
    ├── SlowDownError              slow_down
    ├── DeviceAccessDeniedError    access_denied
    └── ExpiredTokenError          expired_token
"""

from __future__ import annotations

from authlib.oauth2.rfc6749 import OAuth2Error


class InvalidTargetError(OAuth2Error):  # type: ignore[misc]
    """The requested resource is invalid, unknown or does not match the grant (RFC 8707 §2)."""

    error = "invalid_target"
    status_code = 400


class UnsupportedTokenTypeError(OAuth2Error):  # type: ignore[misc]
    """The token cannot be revoked here: Cognito revokes refresh tokens only (RFC 7009 §2.2.1)."""

    error = "unsupported_token_type"
    status_code = 400


class DeviceFlowError(OAuth2Error):  # type: ignore[misc]
    """The token endpoint's answers to a device-code poll (RFC 8628 §3.5): all 400."""

    status_code = 400


class AuthorizationPendingError(DeviceFlowError):
    """The user has not approved or denied yet: poll again after ``interval``."""

    error = "authorization_pending"


class SlowDownError(DeviceFlowError):
    """Still pending, and polled too fast: the interval grows by 5 seconds from now on."""

    error = "slow_down"


class DeviceAccessDeniedError(DeviceFlowError):
    """The user denied the request."""

    error = "access_denied"


class ExpiredTokenError(DeviceFlowError):
    """The ``device_code`` expired: the client may start a new device authorization."""

    error = "expired_token"
