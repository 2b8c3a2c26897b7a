"""The Flask application factory of the local authorization server."""

from __future__ import annotations

import logging
import secrets

from authlib.oauth2.rfc6749 import OAuth2Error
from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from demo_server.idp import device_pages, discovery, endpoints, login
from demo_server.idp.authorization_server import IdpAuthorizationServer
from demo_server.idp.sessions import EXTENSION
from demo_server.idp.settings import IdpSettings

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
MAX_QUERY_BYTES = 16 * 1024
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


def create_app(settings: IdpSettings) -> Flask:
    """A fresh app for one user pool (resolves seeds and keys if the settings do not have them)."""
    settings = settings.resolved()
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=secrets.token_bytes(32),
        SESSION_COOKIE_NAME="idp_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        MAX_CONTENT_LENGTH=MAX_BODY_BYTES,
        MAX_FORM_MEMORY_SIZE=MAX_BODY_BYTES,
    )
    app.extensions[EXTENSION] = IdpAuthorizationServer(settings)
    app.register_blueprint(discovery.create_blueprint(settings.pool_id))
    app.register_blueprint(endpoints.bp)
    app.register_blueprint(login.bp)
    app.register_blueprint(device_pages.bp)
    app.before_request(lambda: refuse_foreign_requests(settings.port))
    app.register_error_handler(OAuth2Error, oauth_error)
    app.register_error_handler(HTTPException, http_error)
    return app


def refuse_foreign_requests(port: int) -> Response | None:
    """Answer only loopback Host names (DNS rebinding) and refuse oversized query strings."""
    host, host_port = split_host(request.host)
    if host not in LOOPBACK_NAMES or host_port not in ("", str(port)):
        return json_error(421, "invalid_request", "Unexpected Host header.")
    if len(request.query_string) > MAX_QUERY_BYTES:
        return json_error(414, "invalid_request", "The query string is too long.")
    return None


def split_host(host: str) -> tuple[str, str]:
    """``("127.0.0.1", "9000")`` from ``127.0.0.1:9000``; IPv6 literals keep their brackets."""
    if host.startswith("["):
        name, _, rest = host.partition("]")
        return name + "]", rest.removeprefix(":")
    name, _, port = host.partition(":")
    return name, port


def oauth_error(error: OAuth2Error) -> Response:
    return json_error(error.status_code or 400, error.error, error.description or "")


def http_error(error: HTTPException) -> Response:
    return json_error(error.code or 400, "invalid_request", error.description or error.name)


def json_error(status: int, error: str, description: str) -> Response:
    response = jsonify({"error": error, "error_description": description})
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    return response
