"""Workload identity federation (MCP SEP-1933): a server's tokens from a JWT the environment
provides, with the JWT bearer grant (RFC 7523 §2.1).

For agents and CI: a Kubernetes projected service-account token, a CI job's OIDC token, a cloud
instance identity token. The environment renews that JWT in its file, so the file is read on each
use (never kept: the keyring holds only the access token the grant returns). The server's entry
names the file (``workload_token_file``) and the client id the authorization server knows the
workload by; the client authenticates with nothing else (RFC 7523 §3.1: the assertion is the
credential). There is no refresh token: the next access token comes from the grant again, with
the file read anew. A refusal (``invalid_grant``: an expired or foreign JWT; ``invalid_scope``;
``unauthorized_client``) is not retried and no other grant is tried: the token service reports
it, and only a new JWT in the file can fix it. With a DPoP-enabled authorization server the grant
request carries a proof and the tokens are bound to the broker's key for the server, as every
grant's (:meth:`broker.tokens.enterprise.AssertionGrants.tokens`).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import TYPE_CHECKING

from broker.errors import ConfigError, InvalidGrant
from broker.tokens.tokenset import WORKLOAD_JWT, TokenKey, TokenSet

if TYPE_CHECKING:
    from broker.config import ServerConfig
    from broker.oauth.discovery import Discovered
    from broker.oauth.registration import ClientCredentials
    from broker.signin.discovery import Sender

#: A JWT file bigger than this is not a token (and is not read whole).
MAX_FILE_BYTES = 16 * 1024


def read_jwt_file(path: str, what: str) -> str:
    """The JWT in ``path`` (surrounding whitespace dropped). :class:`ConfigError` naming the file,
    never its content, when it is missing, unreadable, too big or not a compact JWT."""
    try:
        with Path(path).expanduser().open("rb") as file:
            raw = file.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read the {what} file {path}: {exc.strerror or exc}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise ConfigError(f"the {what} file {path} is too big to hold a JWT")
    try:
        token = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        token = ""
    parts = token.split(".")
    if len(parts) != 3 or not all(parts[:2]) or any(c.isspace() for c in token):
        raise ConfigError(f"the {what} file {path} does not hold a JWT")
    return token


def workload_client(server: ServerConfig, issuer: str) -> ClientCredentials:
    """The workload's client at ``issuer``: its id only (the JWT is its credential)."""
    from broker.oauth.registration import ClientCredentials

    if server.client_id is None:
        raise ConfigError(f"{server.url} has no client id for its workload identity")
    return ClientCredentials(server.client_id, issuer)


def redeem_assertion(
    send: Sender,
    found: Discovered,
    client: ClientCredentials,
    assertion: str,
    scope: str | None,
    *,
    send_resource: bool,
    key_resource: str,
    grant: str,
) -> TokenSet:
    """One JWT bearer grant request (RFC 7523 §2.1); the tokens, kept under ``key_resource`` (the
    server's URL), are marked ``grant`` and keep no refresh token."""
    from broker.oauth.idjag import build_jwt_bearer_request
    from broker.oauth.token_request import handle_token_response
    from broker.tokens.machine import machine_scope

    scope = machine_scope(scope)  # no person signs in here: OIDC scopes name nobody
    request = build_jwt_bearer_request(
        found.auth_server, client, assertion, scope, found.resource if send_resource else None
    )
    key = TokenKey(found.issuer, client.client_id, key_resource)
    sent = time.time()
    tokens = handle_token_response(
        send(request), key, scope, now=sent, exp_claim=found.auth_server.profile.jwt_access_tokens
    )
    # The ID-JAG profile and SEP-1933 issue no refresh token; one that comes is not kept.
    return dataclasses.replace(tokens, refresh_token=None, id_token=None, grant=grant)


def workload_tokens(
    send: Sender, server: ServerConfig, found: Discovered, scope: str | None
) -> TokenSet:
    """The server's next token from the workload's JWT, read from its file now."""
    path = server.workload_token_file
    assert path is not None
    assertion = read_jwt_file(path, "workload token")
    try:
        return redeem_assertion(
            send,
            found,
            workload_client(server, found.issuer),
            assertion,
            scope,
            send_resource=server.send_resource,
            key_resource=server.url,
            grant=WORKLOAD_JWT,
        )
    except InvalidGrant as exc:
        message = refused_jwt_message(path, assertion, str(exc), time.time())
        raise InvalidGrant(message, error=exc.error, status_code=exc.status_code) from exc


def refused_jwt_message(path: str, assertion: str, refusal: str, now: float) -> str:
    """Why the workload JWT in ``path`` may have been refused, as far as the broker can tell
    (its ``exp``, read unverified; never the JWT), and that the file is read again next time."""
    from broker.oauth.jwt_peek import jwt_exp

    exp = jwt_exp(assertion)
    if exp is not None and exp <= now:
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(exp))
        why = f"the workload JWT in {path} expired at {when}"
    else:
        why = (
            f"the workload JWT in {path} was not accepted (another audience, an issuer the "
            "authorization server does not trust, or already used)"
        )
    return f"{refusal}: {why}; the next token request reads the file again"
