"""JWT access-token validation for the demo MCP server (the mcp SDK's ``TokenVerifier``).

Two profiles:

- ``cognito`` (AWS Cognito access tokens, see DESIGN.md §5): ``iss`` exact, ``token_use`` is
  ``access``, ``client_id`` in the allowlist, ``scope`` present, and ``aud`` — present only when the
  client sent ``resource`` (RFC 8707) — must name this resource.
- ``oidc`` (RFC 9068 style): ``iss`` exact and ``aud`` must contain this resource (RFC 7519 §4.1.3);
  ``client_id``/``azp``, when present, must be in the allowlist.

With ``require_id_token`` (either profile): only ID tokens — ``token_use`` is ``id`` and ``aud`` is
an allowlisted client id (the app client), as AWS Bedrock AgentCore Gateway checks them; an access
token is refused. An ID token has no scopes: it is granted ``<resource>/tools`` only.

All: RS256 only (RFC 8725 §3.1: the algorithm is fixed here, never taken from the token), the
key chosen by ``kid`` from the issuer's JWKS, signature (RFC 7515 §5.2), ``exp`` required,
``exp``/``nbf``/``iat`` with a bounded clock skew (RFC 7519 §4.1.4–4.1.6). A rejected token is
logged by reason only, never the token.

Validated tokens are remembered (``ValidationCache``), because a client sends the same access
token on every request and a full validation (two base64+JSON header decodes, RS256, the claim
registry) was most of what authentication cost per request. An entry is keyed by the exact token
string and used only while: the clock is before the token's ``exp`` (no leeway: at ``exp`` the
token is validated in full again), the clock has not gone back before the validation, it is at
most ``CACHE_MAX_AGE`` seconds old, and the JWKS still holds the very key that verified the
signature (a rotated-out key ends its tokens' entries). Rejections are never cached: every
failing token is validated in full, and logged, each time. The cache is bounded (LRU).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import RSAKey
from joserfc.jwt import ClaimsOption, JWTClaimsRegistry
from mcp.server.auth.provider import AccessToken

from demo_server.resource.jwks import JwksCache
from demo_server.resource.settings import ResourceSettings

logger = logging.getLogger(__name__)

ALGORITHM = "RS256"
MAX_TOKEN_LENGTH = 16 * 1024
CACHE_SIZE = 1024  # validated tokens remembered (least recently used dropped first)
CACHE_MAX_AGE = 300  # seconds an entry is trusted at most, even when exp is later


class InvalidToken(Exception):
    """The bearer token is unacceptable (RFC 6750 §3.1 ``invalid_token``); the message says why."""


@dataclass(frozen=True)
class CachedValidation:
    """One successful validation: its result, when it happened, the key that verified it."""

    access: AccessToken
    kid: str
    key: RSAKey
    validated_at: int
    expires_at: int


class ValidationCache:
    """Successful validations by exact token string, bounded, never used at or after ``exp``."""

    def __init__(self, size: int = CACHE_SIZE, max_age: int = CACHE_MAX_AGE) -> None:
        self.size = size
        self.max_age = max_age
        self._entries: OrderedDict[str, CachedValidation] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, token: str, now: int) -> CachedValidation | None:
        """The entry for ``token`` if it is still usable at ``now``; a stale one is dropped."""
        entry = self._entries.get(token)
        if entry is None:
            return None
        if not entry.validated_at <= now < entry.expires_at:
            del self._entries[token]
            return None
        self._entries.move_to_end(token)
        return entry

    def put(self, token: str, entry: CachedValidation) -> None:
        if self.size <= 0 or entry.expires_at <= entry.validated_at:
            return
        self._entries[token] = entry
        self._entries.move_to_end(token)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def discard(self, token: str) -> None:
        self._entries.pop(token, None)

    def clear(self) -> None:
        self._entries.clear()


class JwtTokenVerifier:
    """Validates RS256 JWT access tokens against one issuer; implements ``TokenVerifier``."""

    def __init__(
        self,
        settings: ResourceSettings,
        keys: JwksCache,
        clock: Callable[[], int] = lambda: int(time.time()),
        cache: ValidationCache | None = None,
    ) -> None:
        self.settings = settings
        self.keys = keys
        self._clock = clock
        self.cache = ValidationCache() if cache is None else cache

    async def verify_token(self, token: str) -> AccessToken | None:
        """The validated token, or ``None`` (the caller answers 401 ``invalid_token``)."""
        now = self._clock()
        entry = self.cache.get(token, now)
        if entry is not None:
            # Same key lookup as a full validation (an unknown kid may refetch, rate-limited):
            # the entry holds only while the JWKS still has the key that verified it.
            if await self.keys.get_key(entry.kid) is entry.key:
                return entry.access
            self.cache.discard(token)
        try:
            claims, kid, key = await self._validate(token)
        except InvalidToken as exc:
            logger.info("rejected a bearer token: %s", exc)
            return None
        access = to_access_token(token, claims, self.settings)
        expires_at = min(int(claims["exp"]), now + self.cache.max_age)
        self.cache.put(token, CachedValidation(access, kid, key, now, expires_at))
        return access

    async def validate(self, token: str) -> dict[str, Any]:
        """The token's claims after every check of the profile; else ``InvalidToken``."""
        claims, _, _ = await self._validate(token)
        return claims

    async def _validate(self, token: str) -> tuple[dict[str, Any], str, RSAKey]:
        """The claims and the ``kid`` and key that verified the signature, else ``InvalidToken``."""
        if len(token) > MAX_TOKEN_LENGTH:
            raise InvalidToken("token too long")
        kid = read_kid(token)
        key = await self.keys.get_key(kid)
        if key is None:
            raise InvalidToken(f"no signing key with kid {kid!r}")
        try:
            claims = jwt.decode(token, key, algorithms=[ALGORITHM]).claims
            claims_registry(self.settings, self._clock).validate(claims)
        except JoseError as exc:
            raise InvalidToken(f"{type(exc).__name__}: {exc}") from exc
        check_client(claims, self.settings)
        return claims, kid, key


def read_kid(token: str) -> str:
    """The ``kid`` of a compact JWS signed with RS256 (any other ``alg``, ``none`` too, fails)."""
    try:
        header = jws.extract_compact(token.encode("ascii")).headers()
    except (JoseError, ValueError, UnicodeError) as exc:
        raise InvalidToken("not a compact JWS") from exc
    if header.get("alg") != ALGORITHM:
        raise InvalidToken(f"alg {header.get('alg')!r} is not allowed")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise InvalidToken("no kid in the token header")
    return kid


def claims_registry(settings: ResourceSettings, clock: Callable[[], int]) -> JWTClaimsRegistry:
    """The claim rules of the profile; joserfc checks ``exp``/``nbf``/``iat`` with the leeway."""
    options: dict[str, ClaimsOption] = {
        "iss": {"essential": True, "value": settings.issuer},
        "exp": {"essential": True},
        "sub": {"essential": True},
        "aud": {"essential": settings.profile == "oidc", "value": settings.resource_id},
    }
    if settings.require_id_token:
        options["aud"] = {"essential": True, "values": list(settings.client_ids)}
        options["token_use"] = {"essential": True, "value": "id"}
    elif settings.profile == "cognito":
        options["token_use"] = {"essential": True, "value": "access"}
        options["scope"] = {"essential": True}
        options["client_id"] = {"essential": True}
    return JWTClaimsRegistry(now=clock, leeway=settings.clock_skew, **options)


def check_client(claims: dict[str, Any], settings: ResourceSettings) -> None:
    """``client_id`` (Cognito) or ``azp`` (OIDC) must be an allowlisted client when present."""
    for name in ("client_id", "azp"):
        value = claims.get(name)
        if value is not None and value not in settings.client_ids:
            raise InvalidToken(f"{name} is not an allowed client")


def token_scopes(claims: dict[str, Any]) -> list[str]:
    """``scope`` (RFC 9068 §2.2.3, space-separated) or a ``scp`` list, as a list."""
    value = claims.get("scope", claims.get("scp"))
    if isinstance(value, str):
        return value.split()
    if isinstance(value, list):
        return [s for s in value if isinstance(s, str)]
    return []


def to_access_token(token: str, claims: dict[str, Any], settings: ResourceSettings) -> AccessToken:
    if settings.require_id_token:
        audience = claims.get("aud")
        client = audience[0] if isinstance(audience, list) and audience else audience
        return AccessToken(
            token=token,
            client_id=client if isinstance(client, str) else "",
            scopes=[settings.tools_scope],
            expires_at=int(claims["exp"]),
            subject=claims.get("sub"),
            claims=claims,
        )
    client_id = claims.get("client_id", claims.get("azp"))
    return AccessToken(
        token=token,
        client_id=client_id if isinstance(client_id, str) else "",
        scopes=token_scopes(claims),
        expires_at=int(claims["exp"]),
        resource=settings.resource_id if "aud" in claims else None,
        subject=claims.get("sub"),
        claims=claims,
    )
