"""The browser session of the hosted sign-in pages: who is signed in, since when, CSRF token.

Kept in Flask's signed session cookie (``idp_session``; HttpOnly, SameSite=Lax), keyed by a
secret generated at start. Signing in replaces the whole session (no session fixation).
"""

from __future__ import annotations

import secrets

from flask import current_app, session

from demo_server.idp.authorization_server import IdpAuthorizationServer
from demo_server.idp.models import SignedIn, User

EXTENSION = "demo_idp"


def idp() -> IdpAuthorizationServer:
    """The authorization server of the current app."""
    server: IdpAuthorizationServer = current_app.extensions[EXTENSION]
    return server


def signed_in() -> SignedIn | None:
    username, auth_time = session.get("username"), session.get("auth_time")
    if not isinstance(username, str) or not isinstance(auth_time, int):
        return None
    user = idp().users.get(username)
    return SignedIn(user, auth_time) if user is not None else None


def sign_in(user: User) -> SignedIn:
    session.clear()
    auth_time = int(idp().clock())
    session.update({"username": user.username, "auth_time": auth_time})
    return SignedIn(user, auth_time)


def sign_out() -> None:
    session.clear()


def csrf_token() -> str:
    token = session.get("csrf")
    if not isinstance(token, str):
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


def csrf_ok(submitted: object) -> bool:
    expected = session.get("csrf")
    if not isinstance(expected, str) or not isinstance(submitted, str):
        return False
    return secrets.compare_digest(expected.encode(), submitted.encode())
