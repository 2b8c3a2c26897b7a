"""The grants, on authlib's: Authorization Code with PKCE (RFC 6749 §4.1, RFC 7636), Refresh
Token (RFC 6749 §6) and Client Credentials (RFC 6749 §4.4), with Cognito's behaviour where it
differs from authlib's defaults:

- PKCE is S256 only; ``plain`` is refused. Public clients must use it.
- Codes live five minutes and are consumed by the first token request that presents them.
- ``resource`` (RFC 8707) binds the grant; the access token then carries ``aud``.
- A refresh returns no new refresh token unless rotation is on; a rotated-out refresh token stays
  usable for the grace period, and every refresh keeps the sign-in's ``origin_jti``.
- Client credentials (Cognito M2M): confidential clients allowed the ``client_credentials`` flow
  only (else ``unauthorized_client``), custom resource-server scopes only (else ``invalid_scope``;
  none asked → all the client's custom scopes), an access token only: no refresh or ID token.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from authlib.oauth2.rfc6749 import (
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    OAuth2Error,
    grants,
)
from authlib.oauth2.rfc7636 import CodeChallenge

from demo_server.idp.dpop import refresh_binding_ok
from demo_server.idp.models import AuthorizationCode, Client, RefreshTokenRecord, User
from demo_server.idp.resource_indicators import bound_resource, requested_resource
from demo_server.idp.tokens import Grant, new_origin_jti

if TYPE_CHECKING:
    from demo_server.idp.authorization_server import IdpAuthorizationServer

TOKEN_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]


class S256CodeChallenge(CodeChallenge):  # type: ignore[misc]
    """RFC 7636 with ``S256`` only, required for public clients (§4.4.1, Cognito refuses plain)."""

    SUPPORTED_CODE_CHALLENGE_METHOD: ClassVar[list[str]] = ["S256"]
    DEFAULT_CODE_CHALLENGE_METHOD = "S256"

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        super().validate_code_challenge(grant, redirect_uri)
        data = grant.request.payload.data
        if data.get("code_challenge") and data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("'code_challenge_method' must be S256.")
        if not data.get("code_challenge") and grant.request.client.is_public:
            raise InvalidRequestError("Public clients must send a PKCE 'code_challenge' (S256).")


def server_of(grant: Any) -> IdpAuthorizationServer:
    server: IdpAuthorizationServer = grant.server
    return server


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):  # type: ignore[misc]
    """Authorization Code grant (RFC 6749 §4.1) with resource binding (RFC 8707 §2.1)."""

    TOKEN_ENDPOINT_AUTH_METHODS = TOKEN_AUTH_METHODS

    def validate_authorization_request(self) -> str:
        redirect_uri: str = super().validate_authorization_request()
        try:
            self.request.resource = requested_resource(
                self.request.payload.datalist.get("resource", []), server_of(self).resources
            )
        except OAuth2Error as error:
            error.redirect_uri = redirect_uri
            raise
        return redirect_uri

    def save_authorization_code(self, code: str, request: Any) -> None:
        server = server_of(self)
        data = request.payload.data
        server.store.save_code(
            AuthorizationCode(
                code=code,
                client_id=request.client.client_id,
                redirect_uri=request.payload.redirect_uri,
                scope=request.scope,
                username=request.user.user.username,
                auth_time=request.user.auth_time,
                expires_at=server.clock() + server.settings.code_ttl,
                code_challenge=data.get("code_challenge"),
                code_challenge_method=data.get("code_challenge_method"),
                nonce=data.get("nonce"),
                resource=getattr(request, "resource", None),
            )
        )

    def query_authorization_code(self, code: str, client: Client) -> AuthorizationCode | None:
        found = server_of(self).store.pop_code(code)
        if found is None or found.client_id != client.client_id:
            return None
        return found

    def delete_authorization_code(self, authorization_code: AuthorizationCode) -> None:
        """Nothing to do: the code was consumed when it was looked up."""

    def authenticate_user(self, authorization_code: AuthorizationCode) -> User | None:
        return server_of(self).users.get(authorization_code.username)

    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        """Issue tokens for a redeemed code (RFC 6749 §4.1.4), bound per RFC 8707 §2.2."""
        server = server_of(self)
        code: AuthorizationCode = self.request.authorization_code
        user = self.authenticate_user(code)
        if user is None:
            raise InvalidGrantError("There is no user for this code.")
        resource = bound_resource(
            code.resource, self.request.payload.datalist.get("resource", []), server.resources
        )
        grant = Grant(
            client=self.request.client,
            user=user,
            scope=code.scope,
            auth_time=code.auth_time,
            origin_jti=new_origin_jti(),
            resource=resource,
            nonce=code.nonce,
        )
        include_refresh = self.request.client.check_grant_type("refresh_token")
        return 200, server.tokens.token_response(grant, include_refresh), self.TOKEN_RESPONSE_HEADER


class RefreshTokenGrant(grants.RefreshTokenGrant):  # type: ignore[misc]
    """Refresh Token grant (RFC 6749 §6) with Cognito's optional rotation and grace period."""

    TOKEN_ENDPOINT_AUTH_METHODS = TOKEN_AUTH_METHODS

    def authenticate_refresh_token(self, refresh_token: str) -> RefreshTokenRecord | None:
        record = server_of(self).store.find_refresh(refresh_token)
        if record is not None and not refresh_binding_ok(record.jkt):
            raise InvalidGrantError("The refresh token is bound to another DPoP key (RFC 9449).")
        return record

    def authenticate_user(self, refresh_token: RefreshTokenRecord) -> User | None:
        return server_of(self).users.get(refresh_token.username)

    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        """authlib's flow minus its debug log line, which would print the tokens (RFC 6749 §6)."""
        record: RefreshTokenRecord = self.request.refresh_token
        user = self.authenticate_user(record)
        if user is None:
            raise InvalidGrantError("There is no user for this token.")
        self.request.user = user
        token = self.issue_token(user, record)
        self.revoke_old_credential(record)
        return 200, token, self.TOKEN_RESPONSE_HEADER

    def issue_token(self, user: User, refresh_token: RefreshTokenRecord) -> dict[str, Any]:
        server = server_of(self)
        resource = bound_resource(
            refresh_token.resource,
            self.request.payload.datalist.get("resource", []),
            server.resources,
        )
        grant = Grant(
            client=self.request.client,
            user=user,
            scope=self.request.payload.scope or refresh_token.scope,
            auth_time=refresh_token.auth_time,
            origin_jti=refresh_token.origin_jti,
            resource=resource,
        )
        return server.tokens.token_response(grant, server.settings.refresh_token_rotation)

    def save_token(self, token: dict[str, Any]) -> None:
        """Nothing to do: the issuer stores refresh tokens as it mints them."""

    def revoke_old_credential(self, refresh_token: RefreshTokenRecord) -> None:
        server = server_of(self)
        if server.settings.refresh_token_rotation:
            server.store.retire(refresh_token, server.settings.rotation_grace_seconds)


class ClientCredentialsGrant(grants.ClientCredentialsGrant):  # type: ignore[misc]
    """Client Credentials (RFC 6749 §4.4) as Cognito's M2M app clients have it."""

    # "none" is accepted here only so that a public client gets the clearer
    # unauthorized_client (check_grant_type refuses public clients) rather than invalid_client.
    TOKEN_ENDPOINT_AUTH_METHODS = TOKEN_AUTH_METHODS

    def validate_token_request(self) -> None:
        super().validate_token_request()
        self.request.granted_scope = self.granted_scope()
        self.request.resource = requested_resource(
            self.request.payload.datalist.get("resource", []), server_of(self).resources
        )

    def granted_scope(self) -> str:
        return machine_scope(
            server_of(self), self.request.client, self.request.payload.scope, "client_credentials"
        )

    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        """An access token only (RFC 6749 §4.4.3: no refresh token); authlib's debug log line,
        which would print the token, is left out."""
        server = server_of(self)
        grant = Grant(
            client=self.request.client,
            user=None,
            scope=self.request.granted_scope,
            auth_time=int(server.clock()),
            origin_jti=new_origin_jti(),
            resource=self.request.resource,
        )
        return 200, server.tokens.token_response(grant, False), self.TOKEN_RESPONSE_HEADER


def machine_scope(
    server: IdpAuthorizationServer, client: Client, scope: str | None, grant: str
) -> str:
    """A machine grant's scope: the requested custom scopes, or all the client's custom scopes
    when none are asked (Cognito M2M); ``invalid_scope`` for anything else."""
    custom = {s for rs in server.settings.resource_servers for s in rs.full_scopes()}
    allowed = [s for s in client.config.allowed_scopes if s in custom]
    requested = (scope or "").split()
    if not requested:
        if not allowed:
            raise InvalidScopeError("This client has no custom scopes.")
        return " ".join(allowed)
    if any(item not in allowed for item in requested):
        raise InvalidScopeError(f"{grant} grants only the client's custom resource-server scopes.")
    return " ".join(dict.fromkeys(requested))
