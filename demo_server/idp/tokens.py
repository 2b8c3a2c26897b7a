"""Cognito-shaped tokens: RS256 JWT access and ID tokens (RFC 7519), opaque refresh tokens.

Access token claims: ``sub, iss, client_id, origin_jti, token_use="access", scope, auth_time, exp,
iat, jti, username, cognito:groups, version`` and ``aud`` only when the grant is bound to a
resource (RFC 8707). ID token (only with ``openid``): ``aud`` = client id, ``token_use="id"``,
``cognito:username``, ``email``, ``at_hash`` (OpenID Connect Core §3.1.3.6) and ``nonce``.
A machine's token (Cognito M2M, ``client_credentials``) has no user: ``sub`` is the client id,
and there is no ``username``, ``cognito:groups`` or ``origin_jti``, and no ID token. A workload's
token (workload identity federation, not Cognito) is a machine's token whose ``sub`` names the
workload and which carries a ``workload`` claim (:mod:`demo_server.idp.workload_grant`).

``iat`` and ``exp`` are whole seconds, rounded down as Cognito does: a token dies up to a second
before the ``expires_in`` it is announced with. With ``round_expiry_up`` (``--round-expiry-up``)
``exp`` is rounded up instead, so a token lives at least ``expires_in``: the refresh soak
benchmark uses it, because with 5 s tokens the lost second is a fifth of every lifetime.
"""

from __future__ import annotations

import base64
import hashlib
import math
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import RSAKey

from demo_server.idp.keys import SigningKeys
from demo_server.idp.models import Client, RefreshTokenRecord, User
from demo_server.idp.store import Store

ALGORITHMS = ["RS256"]
COGNITO_TOKEN_VERSION = 2


@dataclass(frozen=True)
class Grant:
    """What a token response is issued for: one sign-in of one user to one client, or (``user``
    None) one client on its own behalf (``client_credentials``)."""

    client: Client
    user: User | None
    scope: str
    auth_time: int
    origin_jti: str
    resource: str | None = None
    nonce: str | None = None
    subject: str | None = None
    """A machine grant's ``sub`` when it is not the client (a workload's)."""
    extra_claims: dict[str, Any] = field(default_factory=dict)
    """More access-token claims (a workload's ``workload``)."""

    @property
    def scopes(self) -> list[str]:
        return self.scope.split()


def at_hash(access_token: str) -> str:
    """Left half of SHA-256 of the access token, base64url (OpenID Connect Core §3.1.3.6)."""
    digest = hashlib.sha256(access_token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode("ascii")


def new_origin_jti() -> str:
    return str(uuid.uuid4())


class TokenIssuer:
    """Mints and checks the tokens of one pool."""

    def __init__(
        self,
        issuer: str,
        keys: SigningKeys,
        store: Store,
        ttls: tuple[int, int, int],
        clock: Callable[[], float],
        round_expiry_up: bool = False,
        binding: Callable[[], str | None] = lambda: None,
    ) -> None:
        self.issuer = issuer
        self.binding = binding
        """The DPoP key thumbprint the current request proved (RFC 9449), or None."""
        self.round_expiry_up = round_expiry_up
        self.keys = keys
        self.store = store
        self.access_ttl, self.id_ttl, self.refresh_ttl = ttls
        self.clock = clock

    def token_response(self, grant: Grant, include_refresh_token: bool) -> dict[str, Any]:
        """The token endpoint's JSON body (RFC 6749 §5.1), as Cognito shapes it."""
        jkt = self.binding()
        claims = self.access_claims(grant)
        if jkt is not None:
            claims["cnf"] = {"jkt": jkt}  # RFC 9449 §6.1
        access_token = self._sign(claims, self.keys.access)
        body: dict[str, Any] = {"access_token": access_token}
        if "openid" in grant.scopes and grant.user is not None:
            body["id_token"] = self._sign(self.id_claims(grant, access_token), self.keys.id)
        if include_refresh_token:
            # RFC 9449 §5: a public client's refresh token is bound to the key too
            bound = jkt if grant.client.is_public else None
            body["refresh_token"] = self.new_refresh_token(grant, bound)
        token_type = "DPoP" if jkt is not None else "Bearer"
        body.update({"token_type": token_type, "expires_in": self.access_ttl})
        return body

    def _whole(self, now: float) -> int:
        return math.ceil(now) if self.round_expiry_up else math.floor(now)

    def access_claims(self, grant: Grant) -> dict[str, Any]:
        now = self.clock()
        user = grant.user
        claims: dict[str, Any] = {
            "sub": user.sub if user is not None else grant.subject or grant.client.client_id,
            "iss": self.issuer,
            "client_id": grant.client.client_id,
            "token_use": "access",
            "scope": grant.scope,
            "auth_time": grant.auth_time,
            "exp": self._whole(now) + self.access_ttl,
            "iat": math.floor(now),
            "jti": str(uuid.uuid4()),
            "version": COGNITO_TOKEN_VERSION,
        }
        if user is not None:
            claims.update({"origin_jti": grant.origin_jti, "username": user.username})
            if user.groups:
                claims["cognito:groups"] = list(user.groups)
        if grant.resource is not None:
            claims["aud"] = grant.resource
        claims.update(grant.extra_claims)
        return claims

    def id_claims(self, grant: Grant, access_token: str) -> dict[str, Any]:
        assert grant.user is not None, "an ID token is about a user"
        now = self.clock()
        claims: dict[str, Any] = {
            "at_hash": at_hash(access_token),
            "sub": grant.user.sub,
            "iss": self.issuer,
            "cognito:username": grant.user.username,
            "origin_jti": grant.origin_jti,
            "aud": grant.client.client_id,
            "token_use": "id",
            "auth_time": grant.auth_time,
            "exp": self._whole(now) + self.id_ttl,
            "iat": math.floor(now),
            "jti": str(uuid.uuid4()),
        }
        if grant.user.groups:
            claims["cognito:groups"] = list(grant.user.groups)
        if grant.user.email:
            claims.update({"email": grant.user.email, "email_verified": True})
        if grant.nonce:
            claims["nonce"] = grant.nonce
        return claims

    def new_refresh_token(self, grant: Grant, jkt: str | None = None) -> str:
        assert grant.user is not None, "a machine's grant has no refresh token"
        token = secrets.token_urlsafe(64)
        record = RefreshTokenRecord(
            client_id=grant.client.client_id,
            username=grant.user.username,
            scope=grant.scope,
            auth_time=grant.auth_time,
            origin_jti=grant.origin_jti,
            resource=grant.resource,
            expires_at=self.clock() + self.refresh_ttl,
            jkt=jkt,
        )
        self.store.save_refresh(token, record)
        return token

    def verify_access_token(self, token: str) -> dict[str, Any] | None:
        """Claims of a current, unrevoked access token of this pool, else None."""
        claims = self._verified_claims(token, self.keys.access)
        if claims is None or claims.get("token_use") != "access":
            return None
        if claims.get("iss") != self.issuer or not isinstance(claims.get("exp"), int):
            return None
        if claims["exp"] <= self.clock():
            return None
        if self.store.is_origin_revoked(str(claims.get("origin_jti"))):
            return None
        return claims

    def is_own_jwt(self, token: str) -> bool:
        """Whether the token is an access or ID token signed by this pool (expired or not)."""
        return any(
            self._verified_claims(token, key) is not None
            for key in (self.keys.access, self.keys.id)
        )

    def _sign(self, claims: dict[str, Any], key: RSAKey) -> str:
        header = {"alg": "RS256", "kid": key.kid}
        return jwt.encode(header, claims, key, algorithms=ALGORITHMS, default_type=None)

    @staticmethod
    def _verified_claims(token: str, key: RSAKey) -> dict[str, Any] | None:
        try:
            return dict(jwt.decode(token, key, algorithms=ALGORITHMS).claims)
        except (JoseError, ValueError, TypeError, UnicodeError):
            return None
