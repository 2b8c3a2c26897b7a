"""The local token API as a Flask app: ``create_app(...)`` builds a fresh one (no module-level
app). Routes live in :mod:`broker.api.routes`, request guards in :mod:`broker.api.guards`.

Every response is JSON with ``Cache-Control: no-store``; errors are
``{"error", "error_description"}``. Nothing here logs a header value, a body or the query string.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from flask import Flask, Response, current_app, request
from werkzeug.exceptions import HTTPException
from werkzeug.http import HTTP_STATUS_CODES

from broker.api import errors
from broker.api.clients import ApiClients, Client
from broker.api.guards import MAX_BODY_BYTES, allowed_hosts, bearer_secret, check_request
from broker.api.provider import BoundedCalls, RecentTokens, TokenProvider
from broker.hints import login_command

logger = logging.getLogger(__name__)

InteractionHook = Callable[[str, str, str | None], None]
"""Called with (resource, client name, scope) when a client was told ``interaction_required``
(scope None) or ``insufficient_scope`` (scope: what it lacks): the tray asks the user. Must
return at once; called at most once a minute per server and client, whatever the scope."""

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
Parts = tuple[str, list[tuple[str, str]], bytes]
"""A response as WSGI takes it: status line, header list, body."""

EXTENSION = "mcp_broker_api"
NOTIFY_INTERVAL = 60.0
_SECURE_HEADERS = (("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff"))
_ENCODER = json.JSONEncoder(separators=(",", ":"))  # what json.dumps builds on every call


def log_interaction_required(resource: str, client: str, scope: str | None = None) -> None:
    logger.warning(
        "API client %r needs a sign-in to %s: %s",
        client,
        resource,
        login_command(resource, scope.split() if scope else []),
    )


@dataclass
class ApiContext:
    """What the views need, kept on ``app.extensions``."""

    provider: TokenProvider
    clients: ApiClients
    port: int
    calls: BoundedCalls
    call_timeout: float
    on_interaction_required: InteractionHook
    hosts: frozenset[str] = frozenset()
    recent: RecentTokens = field(default_factory=RecentTokens)
    _notified: dict[tuple[str, str], float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def authenticate(self, environ: dict[str, Any]) -> Client:
        presented = bearer_secret(environ)
        if presented is None:
            raise errors.InvalidClient(
                "send the client secret as Authorization: Bearer", presented=False
            )
        client = self.clients.authenticate(presented) if presented else None
        if client is None:
            raise errors.InvalidClient("unknown client secret", presented=True)
        return client

    def interaction_required(self, resource: str, client: str, scope: str | None = None) -> None:
        now = time.monotonic()
        what = (resource, client)  # not the scope: a client varying it must not flood the user
        with self._lock:
            if now - self._notified.get(what, -NOTIFY_INTERVAL) < NOTIFY_INTERVAL:
                return
            for key, when in list(self._notified.items()):  # bounded: only the last minute's
                if now - when >= NOTIFY_INTERVAL:
                    del self._notified[key]
            self._notified[what] = now
        try:
            self.on_interaction_required(resource, client, scope)
        except Exception:
            logger.exception("the interaction-required hook failed")


def api_context() -> ApiContext:
    return cast(ApiContext, current_app.extensions[EXTENSION])


def json_parts(
    status: int, body: dict[str, Any], headers: Mapping[str, str] | None = None
) -> Parts:
    """Status line, header list and body of every response of the API: JSON, never cached,
    never with CORS headers. The Flask views wrap them in a :class:`Response`
    (:func:`json_response`); the guards and the token fast path hand them to WSGI directly."""
    data = _ENCODER.encode(body).encode()
    out = [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
    out.extend(_SECURE_HEADERS)
    if headers:
        out.extend(headers.items())  # appended: never replaces a secure header
    # What werkzeug sends for Response(status=status): the phrase in capitals.
    return f"{status} {HTTP_STATUS_CODES[status].upper()}", out, data


def json_response(
    status: int, body: dict[str, Any], headers: Mapping[str, str] | None = None
) -> Response:
    """A Flask view's response: :func:`json_parts` in a :class:`Response`."""
    return _response(json_parts(status, body, headers))


def send(start_response: Callable[..., Any], parts: Parts) -> list[bytes]:
    """Hand ``parts`` to WSGI directly, as a :class:`Response` of them would."""
    status_line, header_list, data = parts
    start_response(status_line, header_list)
    return [data]


def error_parts(exc: errors.HttpError) -> Parts:
    body = {"error": exc.error, "error_description": exc.description}
    return json_parts(exc.status, body, exc.headers)


def unexpected_parts(method: str, path: str, exc: BaseException) -> Parts:
    """Log an unexpected error and answer 500. The path, never the full URL: the query string
    could carry a secret (#3)."""
    logger.error("unexpected error on %s %s", method, path, exc_info=exc)
    return error_parts(errors.ServerError("internal error; see the broker's log"))


def create_app(
    provider: TokenProvider,
    clients: ApiClients,
    *,
    port: int,
    calls: BoundedCalls,
    call_timeout: float = 5.0,
    on_interaction_required: InteractionHook = log_interaction_required,
    fast_token_path: bool = True,
) -> Flask:
    """The API for a server listening on 127.0.0.1:``port`` (the Host allowlist needs it).

    ``fast_token_path`` False leaves ``POST /v1/token`` to its Flask view (for tests that
    compare the two; see :mod:`broker.api.token`).
    """
    from broker.api.routes import v1
    from broker.api.token import token_fast_path

    app = Flask(__name__)
    app.config.update(MAX_CONTENT_LENGTH=MAX_BODY_BYTES, PROPAGATE_EXCEPTIONS=False)
    context = ApiContext(
        provider, clients, port, calls, call_timeout, on_interaction_required, allowed_hosts(port)
    )
    app.extensions[EXTENSION] = context
    wsgi_app: WsgiApp = app.wsgi_app
    if fast_token_path:
        wsgi_app = token_fast_path(wsgi_app, context)
    app.wsgi_app = guarded(wsgi_app, context.hosts)  # type: ignore[method-assign,assignment]
    app.register_blueprint(v1)
    app.register_error_handler(errors.HttpError, _http_error)
    app.register_error_handler(HTTPException, _werkzeug_error)
    app.register_error_handler(Exception, _unexpected)
    return app


def guarded(wsgi_app: WsgiApp, hosts: frozenset[str]) -> WsgiApp:
    """``wsgi_app`` behind the request guards: every request is checked before Flask routes it
    or builds a request context (a ``before_request`` hook did the same checks at a higher cost
    per request); a refused request gets the JSON error response the error handlers give."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        try:
            check_request(environ, hosts)
        except errors.HttpError as exc:
            return send(start_response, error_parts(exc))
        return wsgi_app(environ, start_response)

    return app


def _response(parts: Parts) -> Response:
    # werkzeug sends these unchanged: it keeps the header list's order and only re-sets the
    # Content-Length it finds (tests/broker/api/test_token_fast_path.py compares the two ways).
    status_line, header_list, data = parts
    return Response(data, status_line, header_list)


def _http_error(exc: errors.HttpError) -> Response:
    return _response(error_parts(exc))


def _werkzeug_error(exc: HTTPException) -> Response:
    mapped: dict[int, type[errors.HttpError]] = {
        404: errors.NotFound,
        405: errors.MethodNotAllowed,
        413: errors.PayloadTooLarge,
    }
    status = exc.code or 400
    cls = mapped.get(status, errors.InvalidRequest)
    return _http_error(cls(exc.name if status != 404 else "no such endpoint"))


def _unexpected(exc: Exception) -> Response:
    return _response(unexpected_parts(request.method, request.path, exc))
