"""``endpoint.json``: how local clients find the token API, and the client side of using it.

The broker writes ``<state dir>/endpoint.json`` (0600, in a 0700 dir, atomically; SECURITY #16)
with ``url``, ``port``, ``pid`` and the default client's ``secret``. A client:

1. reads the file and refuses it unless it is a regular file owned by this user and not readable
   or writable by others, naming ``http://127.0.0.1:PORT`` (:func:`read_endpoint`);
2. proves the listener before sending the secret (:func:`verify_endpoint`): ``GET /v1/hello``
   with a fresh nonce must answer
   ``HMAC-SHA256(SHA-256(secret), "mcp-broker hello v1|PORT|nonce")``.
   A stale file whose port another process now holds fails this and the secret is never sent
   (#17); the port inside the MAC stops a squatter relaying the nonce to a broker elsewhere;
3. asks for a token (:func:`request_token`), mapping API errors onto :mod:`broker.errors`.

The HTTP client ignores proxy settings (``trust_env=False``): the secret goes to 127.0.0.1 only.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import secrets
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2

from broker import errors
from broker.paths import BrokerPaths, broker_paths, ensure_private_dir, write_private_file

logger = logging.getLogger(__name__)

API_HEADER = {"X-MCP-Broker": "1"}
HELLO_CONTEXT = b"mcp-broker hello v1"
_TIMEOUT = 10.0


@dataclass(frozen=True)
class Endpoint:
    url: str
    port: int
    pid: int
    secret: str = field(repr=False)
    started_at: float = 0.0

    def to_json(self) -> str:
        doc = {
            "version": 1,
            "url": self.url,
            "port": self.port,
            "pid": self.pid,
            "secret": self.secret,
            "started_at": self.started_at,
        }
        return json.dumps(doc, indent=2) + "\n"


@dataclass(frozen=True)
class ApiToken:
    """What ``POST /v1/token`` answered. ``repr`` never shows the token."""

    access_token: str = field(repr=False)
    token_type: str
    expires_in: int
    expires_at: int
    scope: str | None
    resource: str


# -- the broker's side ------------------------------------------------------------------------


def write_endpoint(path: Path, endpoint: Endpoint) -> None:
    ensure_private_dir(path.parent)
    write_private_file(path, endpoint.to_json())


def remove_endpoint(path: Path, endpoint: Endpoint) -> None:
    """Remove the file if it still describes ``endpoint`` (a newer broker may have replaced it)."""
    try:
        current = _parse(path.read_bytes())
    except (OSError, errors.BrokerError):
        return
    if (current.url, current.pid) == (endpoint.url, endpoint.pid):
        path.unlink(missing_ok=True)


def hello_proof(key: bytes, port: int, nonce: str) -> str:
    """The hello proof (see the module docstring); the server's view is the same function."""
    message = b"|".join((HELLO_CONTEXT, str(port).encode(), nonce.encode()))
    mac = hmac.new(key, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


# -- the client's side ------------------------------------------------------------------------


def read_endpoint(path: Path) -> Endpoint:
    """Read and check ``endpoint.json``; :class:`BrokerNotRunning` when there is none."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        raise errors.BrokerNotRunning(
            f"no broker is running ({path} does not exist); start it with: mcp-broker"
        ) from None
    except OSError as exc:
        raise errors.BrokerNotRunning(f"cannot read {path}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as file:
        _check_private(path, os.fstat(file.fileno()))
        return _parse(file.read(64 * 1024))


def verify_endpoint(
    endpoint: Endpoint,
    http: httpx2.Client,
    client_name: str | None = None,
    secret: str | None = None,
) -> None:
    """Make the listener prove it knows the secret; :class:`StaleEndpoint` if it cannot."""
    nonce = secrets.token_urlsafe(24)
    headers = {**API_HEADER, "X-MCP-Broker-Nonce": nonce}
    if client_name:
        headers["X-MCP-Broker-Client"] = client_name
    try:
        response = http.get(f"{endpoint.url}/v1/hello", headers=headers)
    except httpx2.HTTPError as exc:
        raise errors.BrokerNotRunning(
            f"nothing answers at {endpoint.url}; is the broker running? ({type(exc).__name__})"
        ) from None
    key = hashlib.sha256((secret or endpoint.secret).encode()).digest()
    expected = hello_proof(key, endpoint.port, nonce)
    proof = _json(response).get("proof") if response.status_code == 200 else None
    if not isinstance(proof, str) or not hmac.compare_digest(proof, expected):
        raise errors.StaleEndpoint(
            f"the listener at {endpoint.url} is not this user's broker (stale endpoint.json?); "
            "the client secret was not sent. Start the broker: mcp-broker"
        )


def discover_endpoint(
    paths: BrokerPaths | None = None, http: httpx2.Client | None = None
) -> Endpoint:
    """The running broker's endpoint, read from ``endpoint.json`` and verified."""
    endpoint = read_endpoint((paths or broker_paths()).endpoint_file)
    with _client(http) as client:
        verify_endpoint(endpoint, client)
    return endpoint


def request_token(
    resource: str,
    *,
    scope: str | None = None,
    min_valid: float | None = None,
    paths: BrokerPaths | None = None,
    secret: str | None = None,
    client_name: str | None = None,
    http: httpx2.Client | None = None,
) -> ApiToken:
    """A token for ``resource`` from the running broker, as the default client or, with
    ``secret`` and ``client_name``, as a named one. Raises :mod:`broker.errors` classes:
    ``InteractionRequired`` (sign in), ``ConsentRequired``, ``ClientNotAllowed``,
    ``ConfigError`` (not configured), ``BrokerNotRunning``/``StaleEndpoint``."""
    endpoint = read_endpoint((paths or broker_paths()).endpoint_file)
    body: dict[str, Any] = {"resource": resource}
    if scope is not None:
        body["scope"] = scope
    if min_valid is not None:
        body["min_valid_seconds"] = min_valid
    with _client(http) as client:
        verify_endpoint(endpoint, client, client_name, secret)
        headers = {**API_HEADER, "Authorization": f"Bearer {secret or endpoint.secret}"}
        try:
            response = client.post(f"{endpoint.url}/v1/token", json=body, headers=headers)
        except httpx2.HTTPError as exc:
            raise errors.BrokerNotRunning(
                f"the broker stopped answering: {type(exc).__name__}"
            ) from None
    doc = _json(response)
    if response.status_code != 200:
        raise _error_for(response.status_code, doc)
    try:
        return ApiToken(
            access_token=str(doc["access_token"]),
            token_type=str(doc["token_type"]),
            expires_in=int(doc["expires_in"]),
            expires_at=int(doc["expires_at"]),
            scope=doc.get("scope"),
            resource=str(doc["resource"]),
        )
    except (KeyError, TypeError, ValueError):
        raise errors.LocalApiError("the broker's answer was malformed") from None


def running_status(
    paths: BrokerPaths | None = None, http: httpx2.Client | None = None
) -> list[dict[str, Any]]:
    """``GET /v1/status`` of the running broker: its view of each server (never a token).

    Only the running broker knows what its refresher has met (an authorization server that
    cannot be reached, a retry scheduled); the store alone cannot say. ``BrokerNotRunning`` when
    none answers."""
    endpoint = read_endpoint((paths or broker_paths()).endpoint_file)
    with _client(http) as client:
        verify_endpoint(endpoint, client)
        headers = {**API_HEADER, "Authorization": f"Bearer {endpoint.secret}"}
        try:
            response = client.get(f"{endpoint.url}/v1/status", headers=headers)
        except httpx2.HTTPError as exc:
            raise errors.BrokerNotRunning(
                f"the broker stopped answering: {type(exc).__name__}"
            ) from None
    doc = _json(response)
    if response.status_code != 200:
        raise _error_for(response.status_code, doc)
    servers = doc.get("servers")
    if not isinstance(servers, list):
        raise errors.LocalApiError("the broker's answer was malformed")
    return [row for row in servers if isinstance(row, dict)]


# -- helpers ------------------------------------------------------------------------------------


class _client:
    """Use the caller's client, or a short-lived one that never uses proxies."""

    def __init__(self, http: httpx2.Client | None) -> None:
        self._given = http
        self._own: httpx2.Client | None = None

    def __enter__(self) -> httpx2.Client:
        if self._given is not None:
            return self._given
        self._own = httpx2.Client(timeout=_TIMEOUT, trust_env=False, follow_redirects=False)
        return self._own

    def __exit__(self, *exc: object) -> None:
        if self._own is not None:
            self._own.close()


def _check_private(path: Path, info: os.stat_result) -> None:
    if not stat.S_ISREG(info.st_mode):
        raise errors.UnsafePathError(f"{path} is not a regular file; refusing it")
    if os.name == "posix":
        if info.st_uid != os.geteuid():
            raise errors.UnsafePathError(f"{path} belongs to another user; refusing it")
        if info.st_mode & 0o077:
            raise errors.UnsafePathError(
                f"{path} is readable or writable by others (mode {stat.S_IMODE(info.st_mode):o}); "
                "refusing it. Restart the broker to rewrite it."
            )


def _parse(raw: bytes) -> Endpoint:
    try:
        doc = json.loads(raw)
        endpoint = Endpoint(
            url=str(doc["url"]),
            port=int(doc["port"]),
            pid=int(doc["pid"]),
            secret=str(doc["secret"]),
            started_at=float(doc.get("started_at", 0.0)),
        )
    except (ValueError, KeyError, TypeError):
        raise errors.BrokerNotRunning("endpoint.json is damaged; restart the broker") from None
    if endpoint.url != f"http://127.0.0.1:{endpoint.port}" or not 0 < endpoint.port < 65536:
        raise errors.StaleEndpoint("endpoint.json names a URL other than http://127.0.0.1:PORT")
    return endpoint


def _json(response: httpx2.Response) -> dict[str, Any]:
    try:
        doc = response.json()
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def _error_for(status: int, doc: dict[str, Any]) -> errors.BrokerError:
    code = str(doc.get("error", ""))
    text = "".join(c for c in str(doc.get("error_description", code)) if c.isprintable())
    if code == "interaction_required":
        return errors.InteractionRequired(text)
    if code == "consent_required":
        return errors.ConsentRequired(text)
    if code == "access_denied":
        return errors.ClientNotAllowed(text)
    if code == "invalid_target":
        return errors.ConfigError(text)
    if code == "temporarily_unavailable":
        return errors.ServerUnreachable(text)
    return errors.LocalApiError(f"the broker refused: {code or status}: {text}", code, status)
