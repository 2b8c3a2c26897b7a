"""The refresh-token grant (RFC 6749 §6) as the token service runs it, and which of its failures
need the user: one object, built once by the composition root.

A refresh needs only the token endpoint of the issuer the tokens came from: the configuration
pins that issuer (``mcp-broker login`` wrote it), and its validated metadata is kept in
:class:`~broker.tokens.auth_servers.AuthServerCache`, so a refresh neither asks the MCP server
nor depends on it being up. A refresh token is only ever shown to the authorization server that
issued it.

What a failure means for the token service (:data:`broker.tokens.service.RefreshGrant`):

- a refusal that retrying cannot fix (``invalid_grant``, or any other OAuth error code in a 4xx
  but 429: ``invalid_client``, ``unauthorized_client``, ``invalid_scope``) needs the user: it is
  raised as it is (an ``AuthorizationError``) and the service asks for a sign-in;
- any other refusal (5xx, 429, a garbled answer) may pass: ``ServerUnreachable``, and the service
  backs off and keeps serving the still-valid token.

Either way the cached metadata of the issuer is dropped, so a moved endpoint is found again at
the next attempt.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from broker.errors import (
    AuthorizationError,
    BrokerError,
    DiscoveryError,
    InteractionRequired,
    InvalidGrant,
    ServerUnreachable,
    TokenRequestFailed,
)
from broker.tokens.auth_servers import AuthServerCache
from broker.tokens.dpop import Dpop
from broker.tokens.tokenset import CLIENT_CREDENTIALS, TokenKey, TokenSet

# The protocol modules (pydantic, httpx2) load on the first refresh: a `mcp-broker token`
# answered from the keyring must not pay for them.
if TYPE_CHECKING:
    from broker.config import ServerConfig
    from broker.idps import IdpConfig
    from broker.oauth.discovery import Discovered
    from broker.oauth.registration import ClientCredentials
    from broker.signin.discovery import Sender
    from broker.store.base import ClientSecretStore
    from broker.tokens.enterprise import AssertionGrants

logger = logging.getLogger(__name__)


def needs_user(exc: TokenRequestFailed) -> bool:
    """Whether a refused grant needs the user, or may pass (5xx, 429, a garbled answer).

    ``invalid_grant`` always needs the user; any other OAuth error code from a 4xx does too
    (``invalid_client``, ``unauthorized_client``, ``invalid_scope``): retrying cannot fix it.
    """
    if isinstance(exc, InvalidGrant):
        return True
    status = exc.status_code
    return bool(exc.error) and 400 <= status < 500 and status != 429


def configured_client(
    server: ServerConfig, issuer: str, client_id: str, secrets: ClientSecretStore
) -> ClientCredentials:
    """The client ``client_id`` at ``issuer`` with its secret: the config file's, else the one
    the broker keeps in the keyring for a client it registered."""
    from broker.oauth.registration import ClientCredentials

    secret = server.client_secret or secrets.get_client_secret(issuer, client_id)
    return ClientCredentials(client_id=client_id, issuer=issuer, client_secret=secret)


def configured_clients(
    server: ServerConfig, issuer: str, secrets: ClientSecretStore
) -> list[ClientCredentials]:
    """The server's configured (or earlier registered) client, if it is bound to ``issuer``."""
    if server.client_id is None:
        return []
    if server.issuer is not None and server.issuer != issuer:
        return []  # credentials are bound to the issuer that issued them
    return [configured_client(server, issuer, server.client_id, secrets)]


def refresh_tokens(
    send: Sender,
    found: Discovered,
    tokens: TokenSet,
    client: ClientCredentials,
    send_resource: bool = True,
) -> TokenSet:
    """One refresh-token grant request (RFC 6749 §6); raises :class:`InvalidGrant` when the
    user must sign in again. The new set keeps the key, and the old refresh token and scope
    when the answer names none."""
    from broker.oauth.token_request import build_refresh_request, handle_token_response

    if tokens.refresh_token is None:
        raise AuthorizationError("no refresh token: sign in again")
    key = tokens.key
    if key.issuer != found.issuer:
        # A refresh token is only ever shown to the authorization server that issued it.
        raise AuthorizationError("the server now uses another authorization server: sign in")
    request = build_refresh_request(
        found.auth_server,
        client,
        tokens.refresh_token,
        key.resource if send_resource else None,
    )
    sent = time.time()
    response = send(request)
    return handle_token_response(
        response,
        key,
        tokens.scope,
        tokens.refresh_token,
        sent,
        exp_claim=found.auth_server.profile.jwt_access_tokens,
        received=time.time(),
    )


class RefreshGrant:
    """The token service's refresh grant (call it with the stored set) for the configured
    servers. ``servers`` lists them as configured now; ``send`` sends one request within the
    broker's HTTP limits."""

    def __init__(
        self,
        send: Sender,
        auth_servers: AuthServerCache,
        servers: Callable[[], Iterable[ServerConfig]],
        secrets: ClientSecretStore,
        dpop: Dpop | None = None,
        assertions: AssertionGrants | None = None,
    ) -> None:
        self._send = send
        self._auth_servers = auth_servers
        self._servers = servers
        self._secrets = secrets
        #: DPoP (RFC 9449): a bound set is refreshed with a proof of its key, which it keeps.
        self.dpop = dpop or Dpop()
        self._assertions = assertions

    def __call__(self, tokens: TokenSet) -> TokenSet:
        assertions = self._assertions
        idp = assertions.idp_for_key(tokens.key) if assertions is not None else None
        if assertions is not None and idp is not None:  # an IdP sign-in (enterprise-managed)
            found = self.pinned_idp(idp)
            return self._judged(found, lambda: assertions.refresh_idp(idp, tokens, found))
        server = self._server_for(tokens.key)
        found = self.pinned(server, tokens.key)
        return self._judged(found, lambda: self._renewed(server, found, tokens))

    def _renewed(self, server: ServerConfig, found: Discovered, tokens: TokenSet) -> TokenSet:
        if self._assertions is not None and server.assertion_grant:
            return self._assertions.renew(server, found, tokens)
        key = self.dpop.key_for_refresh(server, tokens)
        send = self.dpop.token_sender(self._send, found.auth_server, key, server)
        if tokens.grant == CLIENT_CREDENTIALS and server.machine:
            return self.dpop.kept(self._machine_token(send, server, found, tokens), key)
        client = configured_client(server, tokens.key.issuer, tokens.key.client_id, self._secrets)
        fresh = self.dpop.kept(
            refresh_tokens(send, found, tokens, client, server.send_resource), key
        )
        if server.sends_id_token:
            from broker.tokens.id_token import bounded_by_id_token

            # The ID token is renewed with the access token, or the user must sign in again.
            return bounded_by_id_token(fresh, renewal=True)
        return fresh

    def _judged(self, found: Discovered, grant: Callable[[], TokenSet]) -> TokenSet:
        """Run ``grant``; a refusal needs the user or may pass (see the module docstring)."""
        try:
            return grant()
        except TokenRequestFailed as exc:
            self.forget(found)
            if needs_user(exc):
                raise
            raise ServerUnreachable(f"refresh failed for now: {exc}") from exc
        except BrokerError:
            # The endpoint may have moved: look the metadata up again at the next attempt.
            self.forget(found)
            raise

    def _machine_token(
        self, send: Sender, server: ServerConfig, found: Discovered, tokens: TokenSet
    ) -> TokenSet:
        """A machine identity's next token: the client credentials grant again (there is no
        refresh token), with the scope it had."""
        from broker.tokens.machine import client_credentials_tokens, machine_client

        client = machine_client(server, tokens.key.issuer, self._secrets)
        return client_credentials_tokens(
            send,
            found,
            client,
            tokens.scope,
            send_resource=server.send_resource,
            key_resource=tokens.key.resource,
        )

    @property
    def assertions(self) -> AssertionGrants | None:
        return self._assertions

    def pinned_idp(self, idp: IdpConfig) -> Discovered:
        """The enterprise IdP's metadata, cached like a pinned issuer's."""
        return self._pinned_at(idp.key, idp.profile_name, idp.issuer)

    def pinned(self, server: ServerConfig, key: TokenKey) -> Discovered:
        """The pinned issuer's metadata (no PRM round trip: the issuer is known), cached."""
        return self._pinned_at(key, server.profile_name, server.url)

    def _pinned_at(self, key: TokenKey, profile_name: str | None, url: str) -> Discovered:
        from broker.oauth.discovery import Discovered, drive, find_auth_server
        from broker.oauth.providers import profile_for

        profile = profile_for(key.issuer, profile_name)
        auth_server = self._auth_servers.get(key.issuer, profile.name)
        if auth_server is None:
            auth_server = drive(find_auth_server(key.issuer, profile), self._send)
            if auth_server is None:
                raise DiscoveryError(f"no authorization server metadata found for {key.issuer}")
            self._auth_servers.put(auth_server)
        return Discovered(url, key.resource, auth_server)

    def forget(self, found: Discovered) -> None:
        """Drop the cached metadata of ``found``'s issuer: it is looked up again next time."""
        self._auth_servers.forget(found.issuer, found.auth_server.profile.name)

    def _server_for(self, key: TokenKey) -> ServerConfig:
        for server in self._servers():
            if (server.url, server.issuer, server.client_id) == (
                key.resource,
                key.issuer,
                key.client_id,
            ):
                return server
        raise InteractionRequired(f"{key.resource} is no longer configured for {key.issuer}")
