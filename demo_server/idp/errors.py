"""OAuth errors the local authorization server adds to authlib's (RFC 6749 §5.2 JSON form).

OAuth2Error (authlib)
├── InvalidTargetError        RFC 8707 §2: unknown or mismatched ``resource``
└── UnsupportedTokenTypeError RFC 7009 §2.2.1: Cognito revokes refresh tokens only (400)
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
