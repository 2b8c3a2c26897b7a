"""The HTML pages of the hosted UI: escaped by Jinja's autoescape, never cached."""

from __future__ import annotations

from typing import Any

from flask import Response, make_response, render_template

from demo_server.idp.sessions import idp


def page(template: str, status: int, **context: Any) -> Response:
    html = render_template(template, pool_id=idp().settings.pool_id, **context)
    response = make_response(html, status)
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    # No form-action: browsers apply it to the redirect chain after the form is posted, and
    # that chain ends at the client's callback URL.
    response.headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'"
    return response


def message_page(title: str, message: str, status: int = 400, kind: str = "error") -> Response:
    return page("message.html", status, title=title, message=message, kind=kind)
