"""The objects authlib's server works with (RFC 6749 §2 clients, §4.1 codes, §6 refresh tokens)."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass

from authlib.oauth2.rfc6749 import ClientMixin

from demo_server.idp.settings import CLIENT_CREDENTIALS, DEVICE_CODE, ClientConfig, UserConfig

PUBLIC_AUTH_METHODS = ("none",)
DEVICE_CODE_GRANT_TYPE = "urn:ietf:params:oauth:grant-type:device_code"  # RFC 8628 §3.4
FLOW_OF_GRANT_TYPE = {
    "authorization_code": "code",
    "refresh_token": "refresh_token",
    CLIENT_CREDENTIALS: CLIENT_CREDENTIALS,
    DEVICE_CODE_GRANT_TYPE: DEVICE_CODE,
}
CONFIDENTIAL_AUTH_METHODS = ("client_secret_basic", "client_secret_post")


@dataclass(frozen=True)
class User:
    """A pool user; ``sub`` is stable for a pool and username (like Cognito's UUID subs)."""

    username: str
    password_hash: str
    email: str
    groups: tuple[str, ...]
    sub: str

    @classmethod
    def from_config(cls, config: UserConfig, pool_id: str) -> User:
        sub = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{pool_id}/{config.username}"))
        return cls(config.username, config.password_hash, config.email, config.groups, sub)


@dataclass(frozen=True)
class SignedIn:
    """The resource owner of an authorization request: a user and when they authenticated."""

    user: User
    auth_time: int


class Client(ClientMixin):  # type: ignore[misc]
    """An app client: public (no secret, PKCE) or confidential (client_secret_basic/post)."""

    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        self.client_id = config.client_id

    @property
    def is_public(self) -> bool:
        return self.config.client_secret is None

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> None:
        return None  # Cognito requires redirect_uri on every authorization request

    def get_allowed_scope(self, scope: str | None) -> str | None:
        """All allowed scopes when none are asked for; None (→ invalid_scope) for a stranger."""
        allowed = self.config.allowed_scopes
        if not scope:
            return " ".join(allowed)
        requested = scope.split()
        if any(item not in allowed for item in requested):
            return None
        return " ".join(dict.fromkeys(requested))

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        """Exact match, port included (Cognito; RFC 9700 §4.1.3)."""
        return redirect_uri in self.config.callback_urls

    def check_client_secret(self, client_secret: str) -> bool:
        expected = self.config.client_secret
        if expected is None:
            return False
        return secrets.compare_digest(expected.encode(), client_secret.encode())

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        allowed = PUBLIC_AUTH_METHODS if self.is_public else CONFIDENTIAL_AUTH_METHODS
        return method in allowed

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and "code" in self.config.allowed_flows

    def check_grant_type(self, grant_type: str) -> bool:
        flow = FLOW_OF_GRANT_TYPE.get(grant_type)
        if flow == CLIENT_CREDENTIALS and self.is_public:
            return False  # RFC 6749 §4.4: confidential clients only
        return flow is not None and flow in self.config.allowed_flows


@dataclass(frozen=True)
class AuthorizationCode:
    """An issued code: single-use, five minutes (RFC 6749 §4.1.2)."""

    code: str
    client_id: str
    redirect_uri: str
    scope: str
    username: str
    auth_time: int
    expires_at: float
    code_challenge: str | None
    code_challenge_method: str | None
    nonce: str | None
    resource: str | None

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope


@dataclass
class RefreshTokenRecord:
    """What an opaque refresh token stands for; only its SHA-256 is kept as the key."""

    client_id: str
    username: str
    scope: str
    auth_time: int
    origin_jti: str
    resource: str | None
    expires_at: float
    usable_until: float | None = None  # set when rotated out: end of the grace period
    jkt: str | None = None  # DPoP key a public client's refresh token is bound to (RFC 9449 §5)

    def check_client(self, client: Client) -> bool:
        return bool(self.client_id == client.client_id)

    def get_scope(self) -> str:
        return self.scope
