"""The hosted sign-in and sign-out pages, with Cognito's URLs and semantics.

``/oauth2/authorize`` sends a user without a session to ``/login?<the same query>``; a successful
sign-in returns to ``/oauth2/authorize?<query>``, so the only redirect target is the authorization
endpoint itself (or, with ``return_to=device``, the device flow's ``/device`` page). The form is
CSRF-protected. ``/logout?client_id=..&logout_uri=..`` clears the
session and returns to ``logout_uri`` when it is one of the client's sign-out URLs.
"""

from __future__ import annotations

import logging
from urllib.parse import urlencode

from flask import Blueprint, redirect, request
from flask.typing import ResponseReturnValue
from werkzeug.security import check_password_hash

from demo_server.idp.device_pages import RETURN_TO
from demo_server.idp.pages import message_page, page
from demo_server.idp.sessions import csrf_ok, csrf_token, idp, sign_in, sign_out

logger = logging.getLogger(__name__)
MAX_CREDENTIAL_LENGTH = 1024
BAD_CREDENTIALS = "Incorrect username or password."

bp = Blueprint("login", __name__)


def authorize_url(query: bytes) -> str:
    return "/oauth2/authorize?" + query.decode("ascii", "replace")


def login_form(status: int = 200, error: str = "", username: str = "") -> ResponseReturnValue:
    query = request.query_string.decode("ascii", "replace")
    action = "/login" + (f"?{query}" if query else "")
    return page(
        "login.html",
        status,
        title="Sign in",
        action=action,
        csrf_token=csrf_token(),
        error=error,
        username=username,
    )


@bp.get("/login")
def show_login() -> ResponseReturnValue:
    return login_form()


@bp.post("/login")
def submit_login() -> ResponseReturnValue:
    if not csrf_ok(request.form.get("csrf_token")):
        return login_form(400, "Your sign-in form expired. Please try again.")
    username = request.form.get("username", "")
    password = request.form.get("password", "")
    user = idp().users.get(username) if len(username) <= MAX_CREDENTIAL_LENGTH else None
    if (
        user is None
        or len(password) > MAX_CREDENTIAL_LENGTH
        or not check_password_hash(user.password_hash, password)
    ):
        logger.info("failed sign-in")
        return login_form(401, BAD_CREDENTIALS, username[:MAX_CREDENTIAL_LENGTH])
    sign_in(user)
    logger.info("user %s signed in", user.username)
    if request.args.get(RETURN_TO) == "device":  # the device flow's verification page
        user_code = request.args.get("user_code", "")
        return redirect(
            "/device" + (f"?{urlencode({'user_code': user_code})}" if user_code else "")
        )
    if request.query_string:
        return redirect(authorize_url(request.query_string), 302)
    return message_page("Signed in", f"You are signed in as {user.username}.", 200, "info")


@bp.get("/logout")
def logout() -> ResponseReturnValue:
    client = idp().query_client(request.args.get("client_id"))
    if client is None:
        return message_page("Sign-out failed", "Unknown or missing client_id.")
    logout_uri = request.args.get("logout_uri")
    if logout_uri is not None:
        if logout_uri not in client.config.logout_urls:
            return message_page(
                "Sign-out failed", "logout_uri is not a sign-out URL of this client."
            )
        sign_out()
        return redirect(logout_uri, 302)
    redirect_uri = request.args.get("redirect_uri")
    if redirect_uri is not None and client.check_redirect_uri(redirect_uri):
        sign_out()  # Cognito: sign out, then sign in again with these authorization parameters
        return redirect("/login?" + urlencode(list(request.args.items(multi=True))), 302)
    return message_page("Sign-out failed", "Missing or unregistered logout_uri.")
