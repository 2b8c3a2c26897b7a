"""The local token API as a Flask app: ``create_app(...)`` builds a fresh one (no module-level
app). Routes live in :mod:`broker.api.routes` (``POST /v1/token`` in :mod:`broker.api.token`),
request guards in :mod:`broker.api.guards`, what the views share in :mod:`broker.api.context`,
the shape of every response in :mod:`broker.api.responses`. Those import nothing from here: the
package's imports have no cycle.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from broker import errors
from broker.api.clients import ApiClients
from broker.api.context import EXTENSION, ApiContext, InteractionHook, log_interaction_required
from broker.api.guards import MAX_BODY_BYTES, allowed_hosts, check_request
from broker.api.provider import BoundedCalls, TokenProvider
from broker.api.responses import WsgiApp, error_parts, response_of, send, unexpected_parts
from broker.api.routes import v1
from broker.api.token import token_fast_path


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
    app.register_error_handler(errors.BrokerError, _broker_error)
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
        except errors.BrokerError as exc:
            return send(start_response, error_parts(exc))
        return wsgi_app(environ, start_response)

    return app


def _broker_error(exc: errors.BrokerError) -> Response:
    return response_of(error_parts(exc))


def _werkzeug_error(exc: HTTPException) -> Response:
    mapped: dict[int, type[errors.LocalApiError]] = {
        404: errors.NoSuchEndpoint,
        405: errors.MethodNotAllowed,
        413: errors.PayloadTooLarge,
    }
    status = exc.code or 400
    cls = mapped.get(status, errors.InvalidRequest)
    return _broker_error(cls(exc.name if status != 404 else "no such endpoint"))


def _unexpected(exc: Exception) -> Response:
    return response_of(unexpected_parts(request.method, request.path, exc))
