"""The control page's views: Servers and Add a server (:mod:`.servers`), Clients
(:mod:`.clients`), Connect an MCP client and Settings (:mod:`.other`), with what they share here:
the two blueprints (the launch link at ``/ui/launch``; the pages under their session's path,
``/ui/s/KEY/…``) and how a page is answered.

Each action is a POST form that redirects back to its page with a note saying what happened
(an error in the same words as the CLI's, :mod:`broker.errors`), except creating a named client:
its secret is shown once, on the page that answers that POST, and kept nowhere.
"""

from __future__ import annotations

from typing import Any, cast

from flask import Blueprint, Response, g, make_response, redirect, render_template, request

from broker.errors import BrokerError
from broker.safetext import safe_text
from broker.ui.app import LANDING, current_session, page_context

launcher = Blueprint("launcher", __name__, url_prefix="/ui")
pages = Blueprint("pages", __name__, url_prefix="/ui/s/<key>")


@pages.url_value_preprocessor
def _pull_key(endpoint: str | None, values: dict[str, Any] | None) -> None:
    """The session key from the path, for the session check (:mod:`broker.ui.app`)."""
    g.page_key = (values or {}).pop("key", None)


def base_path() -> str:
    return f"/ui/s/{current_session().key}"


NAV = (
    ("servers", "Servers"),
    ("clients", "Clients"),
    ("connect", "Connect an MCP client"),
    ("settings", "Settings"),
)


def page(template: str, active: str, status: int = 200, **values: Any) -> Response:
    """A page of the current session, with its notes (each shown once)."""
    session = current_session()
    body = render_template(
        template,
        nav=NAV,
        active=active,
        base=base_path(),
        csrf=session.csrf,
        notes=session.take_notes(),
        **values,
    )
    return make_response(body, status)


def back(where: str) -> Response:
    return cast(Response, redirect(f"{base_path()}/{where}", code=303))


def note(kind: str, text: str) -> None:
    current_session().note(kind, safe_text(text, 600))


def failed(exc: BrokerError) -> None:
    note("error", str(exc))


# -- launch -------------------------------------------------------------------------------------


@launcher.get("/launch")
def launch() -> Response:
    """Redeem a launch link: a session cookie, then on to the page it names. Answered with a
    page that moves on by itself (not a redirect): the link is opened from a local file, and a
    ``SameSite=Strict`` cookie is sent only on a navigation the page itself starts."""
    ctx = page_context()
    landing = ctx.launches.redeem(request.args.get("t", ""))
    if landing is None or not LANDING.fullmatch(landing):
        return make_response(render_template("closed.html", reason="used"), 403)
    cookie, session = ctx.sessions.open()
    landing = f"/ui/s/{session.key}/{landing.removeprefix('/ui/')}"
    response = make_response(render_template("launch.html", landing=landing))
    response.set_cookie(
        ctx.cookie_name, cookie, httponly=True, samesite="Strict", path="/ui/", secure=False
    )
    return response


@pages.post("/end")
def end() -> Response:
    ctx = page_context()
    ctx.sessions.end(request.cookies.get(ctx.cookie_name))
    response = make_response(render_template("closed.html", reason="ended"))
    response.delete_cookie(ctx.cookie_name, path="/ui/")
    return response


@pages.get("/")
def home() -> Response:
    return back("servers")


# Their routes register on the blueprints above when they are imported.
from broker.ui.views import clients, other, servers  # noqa: E402

__all__ = ["clients", "launcher", "other", "pages", "servers"]
