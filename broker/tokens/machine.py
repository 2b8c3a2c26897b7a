"""A machine identity's tokens: the client credentials grant (RFC 6749 §4.4), no person.

The configured server (``grant = "client_credentials"``) names a confidential client; its secret
or ``private_key_jwt`` key is in the keyring under the server's URL
(:func:`broker.config.machine_credential_owner`). Each token comes from a new client credentials
request with the server's scope and ``resource`` (RFC 8707 §2.2): the grant issues no refresh
token (RFC 6749 §4.4.3), so the tokens are marked ``grant = client_credentials`` and the token
service renews them the same way before they expire.

OpenID Connect scopes (``openid``, ``profile``, ``email``, ``offline_access``...) name a user and
have no meaning without one: they are not asked for (Cognito refuses them for client
credentials clients).
"""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING

from broker.errors import InteractionRequired
from broker.tokens.tokenset import CLIENT_CREDENTIALS, TokenKey, TokenSet

if TYPE_CHECKING:
    from broker.config import ServerConfig
    from broker.oauth.discovery import Discovered
    from broker.oauth.registration import ClientCredentials
    from broker.signin.discovery import Sender
    from broker.store.base import ClientSecretStore

#: OpenID Connect scopes (OIDC Core §5.4, §11): about a user.
USER_SCOPES = frozenset({"openid", "profile", "email", "address", "phone", "offline_access"})


def machine_scope(scope: str | None) -> str | None:
    """``scope`` without the scopes that name a user."""
    kept = [s for s in (scope or "").split() if s not in USER_SCOPES]
    return " ".join(kept) or None


def machine_client(
    server: ServerConfig, issuer: str, secrets: ClientSecretStore
) -> ClientCredentials:
    """The server's machine client at ``issuer``, with its secret or key from the keyring."""
    from broker.config import PRIVATE_KEY_JWT, machine_credential_owner
    from broker.oauth.registration import ClientCredentials

    if server.client_id is None:
        raise InteractionRequired(f"{server.url} has no machine client configured")
    credential = secrets.get_client_secret(machine_credential_owner(server.url), server.client_id)
    if credential is None:
        raise InteractionRequired(
            f"the machine client {server.client_id} of {server.url} has no secret in the "
            f"keyring: add it again with mcp-broker add {server.url} --client-id "
            f"{server.client_id} --client-credentials"
        )
    if server.client_auth == PRIVATE_KEY_JWT:
        return ClientCredentials(server.client_id, issuer, private_key=credential)
    return ClientCredentials(server.client_id, issuer, client_secret=credential)


def client_credentials_tokens(
    send: Sender,
    found: Discovered,
    client: ClientCredentials,
    scope: str | None,
    *,
    send_resource: bool = True,
    key_resource: str | None = None,
) -> TokenSet:
    """One client credentials grant request; the tokens are kept under ``key_resource`` (the
    server's URL) or the discovered resource."""
    from broker.oauth.token_request import build_client_credentials_request, handle_token_response

    scope = machine_scope(scope)
    request = build_client_credentials_request(
        found.auth_server, client, scope, found.resource if send_resource else None
    )
    key = TokenKey(found.issuer, client.client_id, key_resource or found.resource)
    sent = time.time()
    tokens = handle_token_response(
        send(request), key, scope, now=sent, exp_claim=found.auth_server.profile.jwt_access_tokens
    )
    # RFC 6749 §4.4.3: a refresh token SHOULD NOT be included; one that is is not kept.
    return dataclasses.replace(tokens, refresh_token=None, grant=CLIENT_CREDENTIALS)
