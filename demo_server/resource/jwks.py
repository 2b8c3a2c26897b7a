"""The issuer's signing keys: a JWK Set (RFC 7517 §5) fetched over HTTP, cached, rate-limited.

The JWKS URL is configured, or read lazily from the issuer's OpenID Connect discovery document
(OpenID Connect Discovery 1.0 §4, ``<issuer>/.well-known/openid-configuration``, the only metadata
Cognito publishes), so this server can start before its authorization server.

Key rotation: a token with an unknown ``kid`` triggers a refetch, at most one per
``refetch_interval`` (single-flight), so forged ``kid`` values cannot turn this server into a
request amplifier. A JWKS endpoint that is down only means "no key": tokens get 401s and the server
keeps serving.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx2
from joserfc.errors import JoseError
from joserfc.jwk import RSAKey

from demo_server.resource.settings import is_loopback_host

logger = logging.getLogger(__name__)

MAX_DOCUMENT_BYTES = 256 * 1024
FETCH_TIMEOUT = 5.0
# Before the first successful fetch (the idp may still be starting) retry sooner than the
# rotation window, but still never more than once per this many seconds.
COLD_RETRY_INTERVAL = 5.0


class JwksError(Exception):
    """The key set or the discovery document could not be fetched or was unusable."""


def check_fetch_url(url: str) -> str:
    """Allow ``https`` URLs, and ``http`` only on loopback (the local idp)."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url
    if parts.scheme == "http" and parts.hostname and is_loopback_host(parts.hostname):
        return url
    raise JwksError(f"refusing to fetch keys from {url!r}: https or loopback http only")


async def get_json(url: str) -> dict[str, Any]:
    """GET a JSON object with a size and time limit, without following redirects."""
    async with (
        httpx2.AsyncClient(timeout=FETCH_TIMEOUT, follow_redirects=False) as client,
        client.stream("GET", check_fetch_url(url), headers={"Accept": "application/json"}) as resp,
    ):
        if resp.status_code != 200:
            raise JwksError(f"GET {url} answered HTTP {resp.status_code}")
        body = bytearray()
        async for chunk in resp.aiter_bytes():
            body.extend(chunk)
            if len(body) > MAX_DOCUMENT_BYTES:
                raise JwksError(f"GET {url}: document larger than {MAX_DOCUMENT_BYTES} bytes")
    try:
        document = json.loads(body)
    except ValueError as exc:
        raise JwksError(f"GET {url}: not JSON") from exc
    if not isinstance(document, dict):
        raise JwksError(f"GET {url}: not a JSON object")
    return document


def parse_signing_keys(document: dict[str, Any]) -> dict[str, RSAKey]:
    """RS256 signing keys by ``kid`` (RFC 7517 §4.2, §4.4, §4.5); other keys are skipped."""
    keys: dict[str, RSAKey] = {}
    for jwk in document.get("keys") or []:
        if not isinstance(jwk, dict) or jwk.get("kty") != "RSA":
            continue
        kid = jwk.get("kid")
        if not isinstance(kid, str) or jwk.get("use", "sig") != "sig":
            continue
        if jwk.get("alg", "RS256") != "RS256":
            continue
        try:
            keys[kid] = RSAKey.import_key(jwk)
        except (JoseError, ValueError, TypeError):
            logger.warning("skipping an unusable key in the JWKS (kid %s)", kid)
    return keys


class JwksCache:
    """The issuer's RS256 keys by ``kid``, refreshed on demand within a rate limit."""

    def __init__(
        self,
        issuer: str,
        jwks_url: str | None = None,
        refetch_interval: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.issuer = issuer
        self._jwks_url = jwks_url
        self.refetch_interval = refetch_interval
        self._clock = clock
        self._keys: dict[str, RSAKey] = {}
        self._last_attempt: float | None = None
        self._lock = asyncio.Lock()

    async def get_key(self, kid: str) -> RSAKey | None:
        """The key for ``kid``, refetching the set at most once per window when it is unknown."""
        if kid in self._keys:
            return self._keys[kid]
        async with self._lock:
            if kid not in self._keys and self._may_fetch():
                await self._refresh()
        return self._keys.get(kid)

    def _may_fetch(self) -> bool:
        if self._last_attempt is None:
            return True
        window = self.refetch_interval
        if not self._keys:
            window = min(window, COLD_RETRY_INTERVAL)
        return self._clock() - self._last_attempt >= window

    async def _refresh(self) -> None:
        self._last_attempt = self._clock()
        try:
            url = await self._resolve_jwks_url()
            keys = parse_signing_keys(await get_json(url))
        except (JwksError, httpx2.HTTPError) as exc:
            # Keep the keys we had: a flapping JWKS endpoint must not revoke valid tokens.
            logger.warning("could not refresh the JWKS: %s", exc)
            return
        logger.info("loaded %d signing key(s) from %s", len(keys), url)
        self._keys = keys

    async def _resolve_jwks_url(self) -> str:
        if self._jwks_url is None:
            self._jwks_url = await discover_jwks_url(self.issuer)
        return self._jwks_url


async def discover_jwks_url(issuer: str) -> str:
    """``jwks_uri`` from ``<issuer>/.well-known/openid-configuration`` (OIDC Discovery §4.3:
    the document's ``issuer`` must equal the configured issuer exactly)."""
    document = await get_json(issuer.rstrip("/") + "/.well-known/openid-configuration")
    if document.get("issuer") != issuer:
        raise JwksError(
            f"discovery document names issuer {document.get('issuer')!r}, not {issuer!r}"
        )
    jwks_uri = document.get("jwks_uri")
    if not isinstance(jwks_uri, str):
        raise JwksError("discovery document has no jwks_uri")
    return check_fetch_url(jwks_uri)
