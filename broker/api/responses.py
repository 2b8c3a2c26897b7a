"""The responses of the local token API: every one JSON with ``Cache-Control: no-store`` and
``X-Content-Type-Options: nosniff``; errors are ``{"error", "error_description"}``. Nothing here
logs a header value, a body or the query string."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from flask import Response
from werkzeug.http import HTTP_STATUS_CODES

from broker import errors

logger = logging.getLogger(__name__)

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
Parts = tuple[str, list[tuple[str, str]], bytes]
"""A response as WSGI takes it: status line, header list, body."""

_SECURE_HEADERS = (("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff"))
_ENCODER = json.JSONEncoder(separators=(",", ":"))  # what json.dumps builds on every call


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
    return response_of(json_parts(status, body, headers))


def send(start_response: Callable[..., Any], parts: Parts) -> list[bytes]:
    """Hand ``parts`` to WSGI directly, as a :class:`Response` of them would."""
    status_line, header_list, data = parts
    start_response(status_line, header_list)
    return [data]


def error_parts(exc: errors.BrokerError) -> Parts:
    """The answer with ``exc``: its class's status and wire code (:mod:`broker.errors`), its
    message as the description."""
    body = {"error": exc.wire_error, "error_description": str(exc)}
    return json_parts(exc.http_status, body, exc.headers())


def unexpected_parts(method: str, path: str, exc: BaseException) -> Parts:
    """Log an unexpected error and answer 500. The path, never the full URL: the query string
    could carry a secret (#3)."""
    logger.error("unexpected error on %s %s", method, path, exc_info=exc)
    return error_parts(errors.ApiServerError("internal error; see the broker's log"))


def response_of(parts: Parts) -> Response:
    # werkzeug sends these unchanged: it keeps the header list's order and only re-sets the
    # Content-Length it finds (tests/broker/api/test_token_fast_path.py compares the two ways).
    status_line, header_list, data = parts
    return Response(data, status_line, header_list)
