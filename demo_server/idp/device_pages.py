"""The verification page of the device flow (RFC 8628 §3.3), with ``--device-flow`` only.

``GET /device`` asks a signed-in user for the code their device shows (``?user_code=`` fills it in:
``verification_uri_complete``), then shows the client and scopes with Approve and Deny; ``POST
/device`` (CSRF-protected) records the decision once. A user without a session goes through
``/login`` first and comes back here (with the dev-only ``--auto-login``, is signed in as that
user; approving still takes a click).
"""

from __future__ import annotations

import logging
from urllib.parse import urlencode

from flask import Blueprint, redirect, request
from flask.typing import ResponseReturnValue

from demo_server.idp.device import VERIFICATION_PATH, normalise_user_code
from demo_server.idp.models import SignedIn
from demo_server.idp.pages import message_page, page
from demo_server.idp.sessions import csrf_ok, csrf_token, idp, sign_in, signed_in

logger = logging.getLogger(__name__)

RETURN_TO = "return_to"
"""The ``/login`` query parameter that sends the user back here after signing in."""

bp = Blueprint("device", __name__)

UNKNOWN_CODE = "That code is unknown, expired or already used. Check your device and try again."


@bp.before_request
def only_with_device_flow() -> ResponseReturnValue | None:
    if not idp().settings.device_flow:
        return message_page("Not found", "The device flow is not enabled.", 404)
    return None


def login_redirect(user_code: str) -> ResponseReturnValue:
    query = {RETURN_TO: "device", **({"user_code": user_code} if user_code else {})}
    return redirect("/login?" + urlencode(query), 302)


def device_page(status: int, username: str, user_code: str, error: str = "") -> ResponseReturnValue:
    pending = idp().devices.pending(user_code) if user_code else None
    shown = normalise_user_code(user_code) or user_code[:64]
    return page(
        "device.html",
        status,
        title="Connect a device",
        username=username,
        user_code=shown,
        request_info=pending,
        csrf_token=csrf_token(),
        error=error,
    )


def current_user() -> SignedIn | None:
    who = signed_in()
    auto_user = idp().users.get(idp().settings.auto_login or "")
    if who is None and auto_user is not None:
        logger.warning("auto-login: signing in %s without a password", auto_user.username)
        who = sign_in(auto_user)
    return who


@bp.get(VERIFICATION_PATH)
def show() -> ResponseReturnValue:
    user_code = request.args.get("user_code", "")[:64]
    who = current_user()
    if who is None:
        return login_redirect(user_code)
    if user_code and idp().devices.pending(user_code) is None:
        return device_page(400, who.user.username, user_code, UNKNOWN_CODE)
    return device_page(200, who.user.username, user_code)


@bp.post(VERIFICATION_PATH)
def decide() -> ResponseReturnValue:
    user_code = request.form.get("user_code", "")[:64]
    who = signed_in()
    if who is None:
        return login_redirect(user_code)
    if not csrf_ok(request.form.get("csrf_token")):
        return device_page(400, who.user.username, user_code, "The form expired. Try again.")
    decision = request.form.get("decision")
    if decision not in ("approve", "deny"):
        return device_page(400, who.user.username, user_code, "Choose Approve or Deny.")
    approve = decision == "approve"
    if not idp().devices.decide(user_code, who.user, who.auth_time, approve):
        return device_page(400, who.user.username, user_code, UNKNOWN_CODE)
    logger.info("device request %s by %s", "approved" if approve else "denied", who.user.username)
    if approve:
        return message_page(
            "Device connected", "Done: you can go back to your device.", 200, "info"
        )
    return message_page("Request denied", "The device was not given access.", 200, "info")
