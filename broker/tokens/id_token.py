"""Servers set to receive the ID token (``send = "id-token"``, ``mcp-broker add URL --send
id-token``): a workaround for gateways that accept only OpenID Connect ID tokens (AWS Bedrock
AgentCore Gateway with the Cognito app client as its audience). The default never changes.

For such a server the sign-in asks for ``openid`` (:data:`OPENID`), and a token set is kept with
``expires_at`` the earlier of the access token's and the ID token's expiry
(:func:`bounded_by_id_token`), at the sign-in and at every refresh. So the token service keeps
the ID token fresh with the same machinery as the access token: renewed with the refresh token
before it expires, served down to the skew while the authorization server is away, and "sign-in
required" when it can no longer be renewed (no refresh token, or a refresh that brings no new
ID token). What is handed out (token API, ``token``, ``headers``, ``call``, the bridge) is then
:func:`as_sent`: the ID token in the place of the access token.

The ID token's ``exp`` is read without verification (:mod:`broker.oauth.jwt_peek`): the broker
only schedules with it; the server verifies the token.
"""

from __future__ import annotations

import dataclasses

from broker.errors import InteractionRequired
from broker.oauth.jwt_peek import jwt_exp
from broker.tokens.tokenset import TokenSet

OPENID = "openid"
"""The scope without which an authorization server issues no ID token (OIDC Core §3.1.2.1)."""


def bounded_by_id_token(tokens: TokenSet, renewal: bool = False) -> TokenSet:
    """``tokens`` expiring when its ID token does, if that is earlier than the access token.

    Raises ``InteractionRequired`` when there is no readable ID token: after a sign-in, the
    authorization server issued none (the ``openid`` scope was refused); after a refresh
    (``renewal``), it renewed the access token without one, so the ID token can no longer be
    renewed and the user must sign in again."""
    resource = tokens.key.resource
    if tokens.id_token is None:
        if renewal:
            raise InteractionRequired(
                f"sign-in required: the authorization server renewed the access token for "
                f"{resource} without an ID token, and this server is set to receive the ID token"
            )
        raise InteractionRequired(
            f"the authorization server issued no ID token for {resource} (is the openid scope "
            "allowed to this client?), and this server is set to receive the ID token"
        )
    expires = jwt_exp(tokens.id_token)
    if expires is None:
        raise InteractionRequired(f"the ID token for {resource} has no readable expiry (exp)")
    return dataclasses.replace(tokens, expires_at=min(tokens.expires_at, expires))


def as_sent(tokens: TokenSet, now: float) -> TokenSet:
    """``tokens`` as handed out to a server set to receive the ID token: the ID token in the
    place of the access token, with its own expiry. Its expiry bounds the set's already
    (:func:`bounded_by_id_token`), unless the setting was made by hand after the sign-in: then
    an ID token that has expired means a new sign-in, as the service cannot renew it."""
    resource = tokens.key.resource
    sent = tokens.id_token
    expires = jwt_exp(sent) if sent is not None else None
    if sent is None or expires is None or expires <= now:
        why = "no ID token" if sent is None else "no valid ID token"
        raise InteractionRequired(
            f"sign-in required: there is {why} for {resource}, which is set to receive one; "
            f"sign in again with: mcp-broker login {resource}"
        )
    return dataclasses.replace(
        tokens, access_token=sent, expires_at=min(tokens.expires_at, expires)
    )
