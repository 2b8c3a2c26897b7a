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

Requests go straight to 127.0.0.1 with :mod:`broker.net.loopback_http` (plain sockets): no proxy
setting can divert the secret, and a per-use helper (``mcp-broker headers``, run for every
connection) does not pay for importing an HTTP library.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import stat
from pathlib import Path
from typing import Any, NamedTuple

from broker import errors
from broker.paths import (
    BrokerPaths,
    broker_paths,
    ensure_private_dir,
    open_private,
    write_private_file,
)
from broker.safetext import safe_text

logger = logging.getLogger(__name__)

API_HEADER = {"X-MCP-Broker": "1"}
HELLO_CONTEXT = b"mcp-broker hello v1"


# Named tuples, not dataclasses: ``dataclasses`` imports ``inspect`` and ``ast``, a tenth of the
# start-up of ``mcp-broker headers`` (which reads these and nothing else of the broker's types).
class Endpoint(NamedTuple):
    url: str
    port: int
    pid: int
    secret: str
    started_at: float = 0.0

    def __repr__(self) -> str:  # never the secret
        return f"Endpoint(url={self.url!r}, pid={self.pid}, started_at={self.started_at})"

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


class ApiToken(NamedTuple):
    """What ``POST /v1/token`` answered. ``repr`` never shows the token."""

    access_token: str
    token_type: str
    expires_in: int
    expires_at: int
    scope: str | None
    resource: str

    def __repr__(self) -> str:
        return f"ApiToken(resource={self.resource!r}, expires_at={self.expires_at})"


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
        fd = open_private(path, os.O_RDONLY)
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
    client_name: str | None = None,
    secret: str | None = None,
) -> None:
    """Make the listener prove it knows the secret; :class:`StaleEndpoint` if it cannot."""
    nonce = _nonce()
    headers = {**API_HEADER, "X-MCP-Broker-Nonce": nonce}
    if client_name:
        headers["X-MCP-Broker-Client"] = client_name
    from broker.net.loopback_http import LoopbackHttpError, request  # a broker to ask: socket

    try:
        status, body = request(endpoint.port, "GET", "/v1/hello", headers)
    except (OSError, LoopbackHttpError) as exc:
        raise errors.BrokerNotRunning(
            f"nothing answers at {endpoint.url}; is the broker running? ({type(exc).__name__})"
        ) from None
    key = hashlib.sha256((secret or endpoint.secret).encode()).digest()
    expected = hello_proof(key, endpoint.port, nonce)
    proof = _json(body).get("proof") if status == 200 else None
    if not isinstance(proof, str) or not hmac.compare_digest(proof, expected):
        raise errors.StaleEndpoint(
            f"the listener at {endpoint.url} is not this user's broker (stale endpoint.json?); "
            "the client secret was not sent. Start the broker: mcp-broker"
        )


def discover_endpoint(paths: BrokerPaths | None = None) -> Endpoint:
    """The running broker's endpoint, read from ``endpoint.json`` and verified."""
    endpoint = read_endpoint((paths or broker_paths()).endpoint_file)
    verify_endpoint(endpoint)
    return endpoint


def request_token(
    resource: str,
    *,
    scope: str | None = None,
    min_valid: float | None = None,
    paths: BrokerPaths | None = None,
    secret: str | None = None,
    client_name: str | None = None,
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
    verify_endpoint(endpoint, client_name, secret)
    headers = {
        **API_HEADER,
        "Authorization": f"Bearer {secret or endpoint.secret}",
        "Content-Type": "application/json",
    }
    doc = _call_api(endpoint, "POST", "/v1/token", headers, json.dumps(body).encode())
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


def running_status(paths: BrokerPaths | None = None) -> list[dict[str, Any]]:
    """``GET /v1/status`` of the running broker: its view of each server (never a token).

    Only the running broker knows what its refresher has met (an authorization server that
    cannot be reached, a retry scheduled); the store alone cannot say. ``BrokerNotRunning`` when
    none answers."""
    endpoint = read_endpoint((paths or broker_paths()).endpoint_file)
    verify_endpoint(endpoint)
    headers = {**API_HEADER, "Authorization": f"Bearer {endpoint.secret}"}
    doc = _call_api(endpoint, "GET", "/v1/status", headers)
    servers = doc.get("servers")
    if not isinstance(servers, list):
        raise errors.LocalApiError("the broker's answer was malformed")
    return [row for row in servers if isinstance(row, dict)]


def control_page_file(paths: BrokerPaths | None = None, page: str | None = None) -> str:
    """``POST /v1/ui/launch`` as the default client: the running broker writes a fresh launch
    file for its control page and answers its ``file://`` URL (:mod:`broker.ui.mount`)."""
    endpoint = read_endpoint((paths or broker_paths()).endpoint_file)
    verify_endpoint(endpoint)
    headers = {
        **API_HEADER,
        "Authorization": f"Bearer {endpoint.secret}",
        "Content-Type": "application/json",
    }
    body = json.dumps({} if page is None else {"page": page}).encode()
    doc = _call_api(endpoint, "POST", "/v1/ui/launch", headers, body)
    file_url = doc.get("file")
    if not isinstance(file_url, str) or not file_url.startswith("file:"):
        raise errors.LocalApiError("the broker's answer was malformed")
    return file_url


# -- helpers ------------------------------------------------------------------------------------


def _call_api(
    endpoint: Endpoint, method: str, path: str, headers: dict[str, str], body: bytes | None = None
) -> dict[str, Any]:
    """The JSON answer of one call to the verified broker; its error answers as broker errors."""
    from broker.net.loopback_http import LoopbackHttpError, request

    try:
        status, answer = request(endpoint.port, method, path, headers, body)
    except (OSError, LoopbackHttpError) as exc:
        raise errors.BrokerNotRunning(
            f"the broker stopped answering: {type(exc).__name__}"
        ) from None
    doc = _json(answer)
    if status != 200:
        raise _error_for(status, doc)
    return doc


def _nonce() -> str:
    # What secrets.token_urlsafe(24) returns, without importing ``random`` for a helper's one call.
    return base64.urlsafe_b64encode(os.urandom(24)).rstrip(b"=").decode()


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
    except (ValueError, KeyError, TypeError, RecursionError):
        raise errors.BrokerNotRunning("endpoint.json is damaged; restart the broker") from None
    if endpoint.url != f"http://127.0.0.1:{endpoint.port}" or not 0 < endpoint.port < 65536:
        raise errors.StaleEndpoint("endpoint.json names a URL other than http://127.0.0.1:PORT")
    return endpoint


def _json(body: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(body)
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def _error_for(status: int, doc: dict[str, Any]) -> errors.BrokerError:
    """The :mod:`broker.errors` class that answers with this status and code, as the API's
    own answers are made (:func:`broker.errors.from_wire`)."""
    code = str(doc.get("error", ""))
    text = safe_text(str(doc.get("error_description", code)), 500)
    return errors.from_wire(status, code, text)
