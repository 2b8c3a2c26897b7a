"""The signing keys of the issuers whose JWTs this authorization server trusts: IdPs' ID-JAGs
(``--trust-idp``) and workload platforms' JWTs (``--trust-workload``).

Keys are fetched lazily over HTTP: from the JWKS URL given, else from ``jwks_uri`` in the issuer's
discovery document (OpenID Connect Discovery ``<issuer>/.well-known/openid-configuration``, then
RFC 8414 ``/.well-known/oauth-authorization-server<path>``), whose ``issuer`` must be the
configured one exactly. An unknown ``kid`` refetches the set, at most once per
``REFETCH_INTERVAL`` (key rotation without letting forged kids hammer the IdP). A JWKS file
(``--trust-workload ISSUER=FILE``) is read instead, anew for each unknown ``kid`` (a local read).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx2
from authlib.oauth2.rfc6749 import InvalidGrantError
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import Key, KeySet

from demo_server.idp.extension_settings import TrustedIdp

logger = logging.getLogger(__name__)

FETCH_TIMEOUT = 5.0
REFETCH_INTERVAL = 30.0
MAX_DOCUMENT_BYTES = 256 * 1024


class KeysUnavailable(Exception):
    """The IdP's keys could not be fetched or read."""


def discovery_urls(issuer: str) -> list[str]:
    parts = urlsplit(issuer)
    base, path = f"{parts.scheme}://{parts.netloc}", parts.path.rstrip("/")
    return [
        f"{issuer.rstrip('/')}/.well-known/openid-configuration",
        f"{base}/.well-known/oauth-authorization-server{path}",
    ]


def get_json(url: str) -> dict[str, object]:
    try:
        response = httpx2.get(url, timeout=FETCH_TIMEOUT, follow_redirects=False)
    except httpx2.HTTPError as error:
        raise KeysUnavailable(f"{url}: {type(error).__name__}") from error
    if response.status_code != 200 or len(response.content) > MAX_DOCUMENT_BYTES:
        raise KeysUnavailable(f"{url}: HTTP {response.status_code}")
    try:
        body = response.json()
    except ValueError as error:
        raise KeysUnavailable(f"{url}: not JSON") from error
    if not isinstance(body, dict):
        raise KeysUnavailable(f"{url}: not a JSON object")
    return body


def read_json_file(path: str) -> dict[str, object]:
    try:
        with open(path, "rb") as file:
            raw = file.read(MAX_DOCUMENT_BYTES + 1)
    except OSError as error:
        raise KeysUnavailable(f"{path}: {error.strerror or error}") from error
    if len(raw) > MAX_DOCUMENT_BYTES:
        raise KeysUnavailable(f"{path}: too big for a JWK set")
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as error:
        raise KeysUnavailable(f"{path}: not JSON") from error
    if not isinstance(body, dict):
        raise KeysUnavailable(f"{path}: not a JSON object")
    return body


def jwks_url_of(idp: TrustedIdp) -> str:
    if idp.jwks_url:
        return idp.jwks_url
    for url in discovery_urls(idp.issuer):
        try:
            document = get_json(url)
        except KeysUnavailable:
            continue
        if document.get("issuer") == idp.issuer and isinstance(document.get("jwks_uri"), str):
            return str(document["jwks_uri"])
    raise KeysUnavailable(f"no discovery document of {idp.issuer} names its jwks_uri")


class IdpKeys:
    """The key set of one trusted IdP, fetched on first use and on an unknown ``kid``."""

    def __init__(self, idp: TrustedIdp, clock: Callable[[], float]) -> None:
        self.idp = idp
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: KeySet | None = None
        self._fetched_at: float | None = None

    def candidates(self, kid: str | None) -> list[Key]:
        """The keys that may have signed a JWT with this ``kid`` (all of them when it has none)."""
        with self._lock:
            found = self._matching(kid)
            if not found and self._may_refetch():
                self._fetch()
                found = self._matching(kid)
            return found

    def _matching(self, kid: str | None) -> list[Key]:
        keys = self._keys.keys if self._keys is not None else []
        return [key for key in keys if kid is None or key.kid == kid]

    def _may_refetch(self) -> bool:
        if self._fetched_at is None or self.idp.jwks_file is not None:
            return True
        return self._clock() - self._fetched_at >= REFETCH_INTERVAL

    def _fetch(self) -> None:
        self._fetched_at = self._clock()
        if self.idp.jwks_file is not None:
            where, document = self.idp.jwks_file, read_json_file(self.idp.jwks_file)
        else:
            where = jwks_url_of(self.idp)
            document = get_json(where)
        try:
            self._keys = KeySet.import_key_set(document)  # type: ignore[arg-type]
        except (JoseError, ValueError, TypeError, KeyError) as error:
            raise KeysUnavailable(f"{where}: not a JWK set") from error
        logger.info("read %d keys of trusted issuer %s", len(self._keys.keys), self.idp.issuer)


class TrustedIdps:
    """The configured issuers (IdPs, or workload issuers) by issuer."""

    def __init__(self, idps: tuple[TrustedIdp, ...], clock: Callable[[], float]) -> None:
        self._by_issuer = {idp.issuer: IdpKeys(idp, clock) for idp in idps}

    def keys_of(self, issuer: object) -> IdpKeys | None:
        return self._by_issuer.get(issuer) if isinstance(issuer, str) else None

    def verify(
        self, assertion: str, header: dict[str, Any], issuer: object, what: str, holder: str
    ) -> dict[str, Any]:
        """The claims of ``assertion`` (a ``what``: "ID-JAG", "workload JWT"), once a key of its
        trusted ``issuer`` (a ``holder``, for the log) verifies it with the header's ``alg``.

        Raises InvalidGrantError saying which: the issuer is not trusted, its keys are
        unavailable, or the signature does not verify.
        """
        keys = self.keys_of(issuer)
        if keys is None:
            raise InvalidGrantError(f"The {what}'s issuer is not trusted here.")
        kid = header.get("kid") if isinstance(header.get("kid"), str) else None
        try:
            candidates = keys.candidates(kid)
        except KeysUnavailable as error:
            logger.warning("keys of %s %s unavailable: %s", holder, issuer, error)
            raise InvalidGrantError("The issuer's keys are unavailable.") from error
        for key in candidates:
            try:
                return dict(jwt.decode(assertion, key, algorithms=[str(header["alg"])]).claims)
            except (JoseError, ValueError, TypeError):
                continue
        raise InvalidGrantError(f"The {what}'s signature does not verify.")

    def check_files(self) -> None:
        """Read every JWKS file now: ValueError naming the one that cannot be used."""
        for keys in self._by_issuer.values():
            if keys.idp.jwks_file is not None:
                try:
                    found = keys.candidates(None)
                except KeysUnavailable as error:
                    raise ValueError(f"the keys of {keys.idp.issuer}: {error}") from error
                if not found:
                    raise ValueError(
                        f"the keys of {keys.idp.issuer}: {keys.idp.jwks_file} is empty"
                    )
