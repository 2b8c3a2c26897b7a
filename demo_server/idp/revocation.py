"""Token revocation (RFC 7009) as Cognito's ``/oauth2/revoke`` does it.

Only refresh tokens can be revoked: an access or ID token gets ``unsupported_token_type``.
Success, and an unknown token, answer 200 with an empty body (RFC 7009 §2.2). Revoking a refresh
token revokes the whole sign-in: later refreshes get ``invalid_grant`` and its access tokens are
refused by ``/oauth2/userInfo``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from authlib.oauth2.rfc6749 import InvalidRequestError
from authlib.oauth2.rfc7009 import RevocationEndpoint

from demo_server.idp.errors import UnsupportedTokenTypeError
from demo_server.idp.grants import TOKEN_AUTH_METHODS
from demo_server.idp.models import RefreshTokenRecord

if TYPE_CHECKING:
    from demo_server.idp.authorization_server import IdpAuthorizationServer


class CognitoRevocationEndpoint(RevocationEndpoint):  # type: ignore[misc]
    """``POST /oauth2/revoke``: refresh tokens only, empty 200 body."""

    CLIENT_AUTH_METHODS = TOKEN_AUTH_METHODS
    SUPPORTED_TOKEN_TYPES = ("refresh_token",)

    @property
    def idp(self) -> IdpAuthorizationServer:
        server: IdpAuthorizationServer = self.server
        return server

    def check_params(self, request: Any, client: Any) -> None:
        if not request.form.get("token"):
            raise InvalidRequestError("Missing 'token'.")
        if request.form.get("token_type_hint") not in (None, "", "refresh_token"):
            raise UnsupportedTokenTypeError("Only refresh tokens can be revoked.")

    def query_token(
        self, token_string: str, token_type_hint: str | None
    ) -> RefreshTokenRecord | None:
        if self.idp.tokens.is_own_jwt(token_string):
            raise UnsupportedTokenTypeError("Only refresh tokens can be revoked.")
        return self.idp.store.known_refresh(token_string)

    def revoke_token(self, token: RefreshTokenRecord, request: Any) -> None:
        self.idp.store.revoke_origin(token.origin_jti)

    def create_endpoint_response(self, request: Any) -> tuple[int, str, list[tuple[str, str]]]:
        super().create_endpoint_response(request)
        return 200, "", [("Cache-Control", "no-store"), ("Pragma", "no-cache")]
