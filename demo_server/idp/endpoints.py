"""The OAuth endpoints on the pool's domain: ``/oauth2/authorize`` (RFC 6749 §3.1),
``/oauth2/token`` (§3.2), ``/oauth2/revoke`` (RFC 7009) and ``/oauth2/userInfo`` (OpenID Connect
Core §5.3).

Authorization errors are redirected to the client (RFC 6749 §4.1.2.1) only once the client and its
``redirect_uri`` are known to be valid; otherwise an error page is shown and nothing redirects.
"""

from __future__ import annotations

import logging
from typing import Any

from authlib.oauth2.rfc6749 import OAuth2Error
from flask import Blueprint, Response, jsonify, redirect, request

from demo_server.idp.dpop import presented_claims
from demo_server.idp.pages import message_page
from demo_server.idp.sessions import idp, sign_in, signed_in

logger = logging.getLogger(__name__)

bp = Blueprint("oauth2", __name__, url_prefix="/oauth2")


@bp.get("/authorize")
def authorize() -> Any:
    server = idp()
    session_user = signed_in()
    try:
        grant = server.get_consent_grant(end_user=session_user)
    except OAuth2Error as error:
        return authorization_error(error)
    if session_user is None:
        auto_user = server.users.get(server.settings.auto_login or "")
        if auto_user is None:
            return redirect("/login?" + request.query_string.decode("ascii", "replace"), 302)
        logger.warning("auto-login: signing in %s without a password", auto_user.username)
        session_user = sign_in(auto_user)
    return server.create_authorization_response(grant_user=session_user, grant=grant)


def authorization_error(error: OAuth2Error) -> Response:
    """Redirect the error once the redirect URI is validated, else show it (RFC 6749 §4.1.2.1)."""
    logger.info("authorization request refused: %s", error.error)
    if error.redirect_uri:
        return idp().handle_error_response(None, error)  # type: ignore[no-any-return]
    description = error.description or error.error
    return message_page("Sign-in request refused", f"{error.error}: {description}")


@bp.post("/token")
def token() -> Response:
    response: Response = idp().create_token_response()
    return response


@bp.post("/device_authorization")
def device_authorization() -> Response:
    """RFC 8628 §3.1, only with --device-flow (not Cognito behaviour: 404 otherwise)."""
    server = idp()
    if not server.settings.device_flow:
        return json_not_found()
    response: Response = server.create_endpoint_response("device_authorization")
    return response


def json_not_found() -> Response:
    response = jsonify({"error": "invalid_request", "error_description": "Not found."})
    response.status_code = 404
    return no_store(response)


@bp.post("/revoke")
def revoke() -> Response:
    response: Response = idp().create_endpoint_response("revocation")
    return response


@bp.route("/userInfo", methods=["GET", "POST"])
def userinfo() -> Response:
    """Claims about the signed-in user for an access token with ``openid`` (OIDC Core §5.3)."""
    claims = presented_claims(idp().tokens.verify_access_token, idp().dpop)
    if claims is None:
        return bearer_error(401, "invalid_token", "The access token is invalid or expired.")
    if "openid" not in str(claims.get("scope", "")).split():
        return bearer_error(403, "insufficient_scope", "The access token lacks the openid scope.")
    user = idp().users.get(str(claims.get("username")))
    if user is None:
        return bearer_error(401, "invalid_token", "The user no longer exists.")
    body = {"sub": user.sub, "username": user.username}
    if user.email:
        body.update({"email": user.email, "email_verified": "true"})
    return no_store(jsonify(body))


def bearer_error(status: int, error: str, description: str) -> Response:
    response = jsonify({"error": error, "error_description": description})
    response.status_code = status
    response.headers["WWW-Authenticate"] = (
        f'Bearer error="{error}", error_description="{description}"'
    )
    return no_store(response)


def no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return response
