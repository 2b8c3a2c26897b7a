"""Authorization server metadata the broker has validated, kept between refreshes and runs.

A refresh only needs the token endpoint of the issuer its tokens came from. Discovering it again
for every refresh cost up to three metadata requests and, in a process that had not signed in,
the mcp SDK's models (a second to import, more under load, and 36 MB kept for the rest of the
run). So the metadata found at sign-in (or at the first refresh) is kept here, in
``auth-servers.json`` in the state dir (0600), for :data:`MAX_AGE`; the broker drops an entry when
a refresh with it fails, so a moved endpoint is found again at the next attempt. The small file
is read on each use (once per refresh), so every broker process sees the others' entries.

An entry is checked again when read: the issuer and the provider profile must be the ones asked
for and every endpoint passes the checks of discovery (SECURITY #38). A damaged file is ignored
(and rewritten at the next discovery): it only ever costs a discovery.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from broker.errors import UnsafeEndpoint
from broker.oauth.endpoints import check_endpoint
from broker.oauth.providers import PROFILES
from broker.paths import write_private_file

if TYPE_CHECKING:
    from broker.oauth.as_metadata import AuthServer  # pydantic and httpx2: not at start-up

logger = logging.getLogger(__name__)

MAX_AGE = 24 * 3600.0
"""Seconds a validated metadata document is used before it is fetched again."""
FILE_NAME = "auth-servers.json"

_ENDPOINTS = ("token_endpoint",)
_OPTIONAL_ENDPOINTS = (
    "authorization_endpoint",
    "registration_endpoint",
    "revocation_endpoint",
    "device_authorization_endpoint",
)


class AuthServerCache:
    def __init__(self, state_dir: Path, clock: Any = time.time) -> None:
        self._path = state_dir / FILE_NAME
        self._clock = clock
        self._lock = threading.Lock()

    def get(self, issuer: str, profile: str) -> AuthServer | None:
        """The cached metadata of ``issuer`` under ``profile`` if fresh and still valid."""
        with self._lock:
            entry = self._load().get(_entry_name(issuer, profile))
        if not isinstance(entry, dict):
            return None
        stored = entry.get("stored_at")
        now = self._clock()
        if not isinstance(stored, int | float) or not now - MAX_AGE < stored <= now + 60:
            return None
        try:
            return _decode(entry.get("server"), issuer, profile)
        except (TypeError, ValueError, KeyError, UnsafeEndpoint):
            logger.info("ignoring a damaged cached metadata entry for %s", issuer)
            return None

    def put(self, server: AuthServer) -> None:
        if server.fallback:
            return  # no document was found: nothing worth keeping
        doc = {"stored_at": self._clock(), "server": _encode(server)}
        self._update(_entry_name(server.issuer, server.profile.name), doc)

    def forget(self, issuer: str, profile: str) -> None:
        self._update(_entry_name(issuer, profile), None)

    def _update(self, name: str, doc: dict[str, Any] | None) -> None:
        with self._lock:
            entries = self._load()
            if doc is None and name not in entries:
                return
            if doc is None:
                del entries[name]
            else:
                entries[name] = doc
            try:
                write_private_file(self._path, json.dumps(entries, sort_keys=True))
            except OSError as exc:
                logger.warning("could not keep authorization server metadata: %s", exc)

    def _load(self) -> dict[str, Any]:
        try:
            loaded = json.loads(self._path.read_bytes())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, RecursionError):  # RecursionError: absurdly deep JSON
            logger.info("ignoring an unreadable %s", self._path.name)
            return {}
        return loaded if isinstance(loaded, dict) else {}


def _entry_name(issuer: str, profile: str) -> str:
    return json.dumps([issuer, profile])


def _encode(server: AuthServer) -> dict[str, Any]:
    doc = dataclasses.asdict(server)
    doc["profile"] = server.profile.name
    return doc


def _decode(doc: Any, issuer: str, profile: str) -> AuthServer:
    from broker.oauth.as_metadata import AuthServer

    if not isinstance(doc, dict) or doc.get("issuer") != issuer or doc.get("profile") != profile:
        raise ValueError("entry for another issuer or profile")
    fields = {f.name for f in dataclasses.fields(AuthServer)}
    values = {k: v for k, v in doc.items() if k in fields}
    for name in _ENDPOINTS:
        check_endpoint(values[name], name)
    for name in _OPTIONAL_ENDPOINTS:
        if values.get(name) is not None:
            check_endpoint(values[name], name)
    for name in (
        "scopes_supported",
        "token_endpoint_auth_methods_supported",
        "token_endpoint_auth_signing_alg_values_supported",
        "dpop_signing_alg_values_supported",
        "code_challenge_methods_supported",  # absent from older entries: the default (S256)
    ):
        value = values.get(name)
        if value is not None:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValueError(f"{name} is not a list of strings")
            values[name] = tuple(value)
    for name in ("iss_parameter_supported", "client_id_metadata_document_supported"):
        if not isinstance(values.get(name, False), bool):
            raise ValueError(f"{name} is not a boolean")
    values["profile"] = PROFILES[profile]
    values["fallback"] = False
    return AuthServer(**values)
