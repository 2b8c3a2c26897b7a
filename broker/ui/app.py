"""The control page as a Flask app: ``create_page_app(...)`` builds a fresh one, mounted by
:mod:`broker.ui.mount` under ``/ui/`` on the token API's listener.

Every request passes the guards (:mod:`broker.ui.guards`) before Flask routes it. Then a view
needs a session (the cookie the launch link set, :mod:`broker.ui.sessions`), and a request that
changes anything needs that session's CSRF token in its form. Presenting a token API secret
opens nothing here: only the cookie does, on the pages under its session's own path
(``/ui/s/KEY/…``). Every answer carries the guards' security headers.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, cast

from flask import Flask, Response, current_app, g, make_response, render_template, request
from werkzeug.exceptions import HTTPException

from broker.api.guards import MAX_BODY_BYTES
from broker.ui.backend import Backend
from broker.ui.guards import SAFE_METHODS, SECURITY_HEADERS, Refused, check_page_request
from broker.ui.sessions import LaunchTokens, Session, Sessions

logger = logging.getLogger(__name__)

EXTENSION = "mcp_broker_ui"
LANDING = re.compile(r"/ui/(?:[a-z-]+(?:/[a-z-]+)*)?")
"""The pages a launch link may land on (never another site, never a query)."""

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
_OPEN_ENDPOINTS = frozenset({"launcher.launch", "static"})


@dataclass
class PageContext:
    backend: Backend
    launches: LaunchTokens
    sessions: Sessions
    port: int

    @property
    def cookie_name(self) -> str:
        # Browsers send a 127.0.0.1 cookie to every port: the port in the name keeps two
        # brokers (two users) from overwriting each other's.
        return f"mcpb_ui_{self.port}"


def page_context() -> PageContext:
    return cast(PageContext, current_app.extensions[EXTENSION])


def current_session() -> Session:
    return cast(Session, g.ui_session)


def create_page_app(
    backend: Backend, launches: LaunchTokens, sessions: Sessions, *, port: int
) -> Flask:
    from broker.ui.views import launcher, pages

    app = Flask(__name__, static_url_path="/ui/static")
    app.config.update(MAX_CONTENT_LENGTH=MAX_BODY_BYTES, PROPAGATE_EXCEPTIONS=False)
    app.extensions[EXTENSION] = PageContext(backend, launches, sessions, port)
    app.wsgi_app = guarded(app.wsgi_app, port)  # type: ignore[method-assign,assignment]
    app.before_request(_require_session)
    app.after_request(_secure)
    app.register_blueprint(launcher)
    app.register_blueprint(pages)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)
    return app


def guarded(wsgi_app: WsgiApp, port: int) -> WsgiApp:
    """``wsgi_app`` behind :func:`~broker.ui.guards.check_page_request`: a refused request gets a
    short page saying why, with the security headers and no cookie, before Flask sees it."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        try:
            check_page_request(environ, port)
        except Refused as exc:
            body = refusal_page(exc.reason).encode()
            headers = [
                ("Content-Type", "text/html; charset=utf-8"),
                ("Content-Length", str(len(body))),
                *SECURITY_HEADERS,
            ]
            start_response(f"{exc.status} Forbidden", headers)
            return [body]
        return wsgi_app(environ, start_response)

    return app


def refusal_page(reason: str) -> str:
    from markupsafe import escape

    return (
        "<!doctype html><html lang=en><meta charset=utf-8><title>Refused</title>"
        f"<h1>Refused</h1><p>{escape(reason)}</p></html>"
    )


def _require_session() -> Response | None:
    if request.endpoint in _OPEN_ENDPOINTS:
        return None
    ctx = page_context()
    session = ctx.sessions.find(request.cookies.get(ctx.cookie_name))
    if session is None or not session.key_matches(g.get("page_key")):
        return make_response(render_template("closed.html", reason="no_session"), 401)
    g.ui_session = session
    if request.method not in SAFE_METHODS and not session.csrf_matches(request.form.get("csrf")):
        return make_response(render_template("closed.html", reason="csrf"), 403)
    return None


def _secure(response: Response) -> Response:
    for name, value in SECURITY_HEADERS:
        response.headers[name] = value
    return response


def _http_error(exc: HTTPException) -> Response:
    status = exc.code or 400
    return make_response(render_template("error.html", status=status, text=exc.name), status)


def _unexpected(exc: Exception) -> Response:
    logger.error("control page: %s %s failed", request.method, request.path, exc_info=exc)
    text = "Something went wrong; the broker's log says what."
    return make_response(render_template("error.html", status=500, text=text), 500)
