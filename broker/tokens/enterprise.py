"""Enterprise-managed authorization (MCP extension SEP-990): a server's tokens from the user's one
sign-in at the organisation's IdP, with no browser per server.

For a server added with ``--enterprise IDP``: the IdP sign-in's ID token is exchanged at the IdP
for an ID-JAG naming that server (RFC 8693 token exchange; ``audience`` = the server's
authorization server issuer, ``resource`` = the server), and the ID-JAG is redeemed at the
server's authorization server with the JWT bearer grant (RFC 7523), the client authenticated
with its secret or key from the keyring (as a machine identity's). The protocol is
:mod:`broker.oauth.idjag`.

- The IdP sign-in is a sign-in like any other (the one flow, :class:`broker.signin.flow.SignInFlow`,
  Authorization Code + PKCE in the browser), its tokens kept in the keyring under
  :attr:`broker.idps.IdpConfig.key`; an ID token that is about to expire is renewed by refreshing
  that sign-in (through the token service: single-flight, cross-process) before an exchange.
- Each access token of the server needs a new ID-JAG (they are single-use): the token service
  renews ``id-jag`` tokens through :meth:`AssertionGrants.renew`, as it refreshes others.
- When the IdP sign-in is over (no refresh token left, or refused), every server of that IdP
  needs it: one ``mcp-broker idp login NAME`` renews them all (their next token request runs the
  exchange again, :meth:`broker.app.Broker.token`).
- With ``id_token_file`` in the IdP's entry, the ID token comes from that file (the environment
  renews it) instead of a sign-in.

Workload identity federation (:mod:`broker.tokens.workload`) shares the second step.

**DPoP** (RFC 9449), by the same rule as every other grant (:class:`broker.tokens.dpop.Dpop`):
when the server's authorization server offers it (or the server is set to ``dpop = true``), the
JWT bearer grant request carries a proof (a ``use_dpop_nonce`` answer is retried once) and the
bound tokens are kept with their key, so the bridge and ``call`` send ``Authorization: DPoP``.
The first token gets a new key; a renewal proves the key of the tokens it replaces. The token
exchange at the IdP carries no proof: an ID-JAG is not an access token.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from broker.errors import ConfigError, DiscoveryError, InteractionRequired, TokenRequestFailed
from broker.tokens.dpop import Dpop
from broker.tokens.tokenset import ID_JAG, WORKLOAD_JWT, TokenKey, TokenSet

if TYPE_CHECKING:
    from joserfc.jwk import ECKey

    from broker.config import Config, ServerConfig
    from broker.idps import IdpConfig
    from broker.oauth.as_metadata import AuthServer
    from broker.oauth.discovery import Discovered
    from broker.oauth.registration import ClientCredentials
    from broker.signin.discovery import Sender
    from broker.store.base import ClientSecretStore
    from broker.tokens.auth_servers import AuthServerCache

logger = logging.getLogger(__name__)

#: The IdP sign-in's tokens: ``(key, force)`` → the current set, refreshed first when ``force``
#: (the token service's ``get_token`` / ``refresh``).
IdpSession = Callable[[TokenKey, bool], TokenSet]
#: Seconds an ID token must still live to be exchanged (the IdP checks ``exp`` on receipt).
ID_TOKEN_MARGIN = 60.0


def idp_login_hint(idp: IdpConfig) -> str:
    return f"sign in at {idp.name} with: `mcp-broker idp login {idp.name}`"


class AssertionGrants:
    """Tokens of the servers configured with an assertion grant (``enterprise`` or
    ``workload_token_file``), first and renewed, and the refresh of the IdP sign-ins. Built
    once by the composition root; ``config`` reads the config file as it is now."""

    def __init__(
        self,
        send: Sender,
        auth_servers: AuthServerCache,
        secrets: ClientSecretStore,
        config: Callable[[], Config],
        session: IdpSession,
        dpop: Dpop | None = None,
    ) -> None:
        self._send = send
        self._auth_servers = auth_servers
        self._secrets = secrets
        self._config = config
        self._session = session
        #: DPoP (RFC 9449): the process's decisions and nonces, shared with the other grants.
        self.dpop = dpop or Dpop()
        self._lock = threading.Lock()
        self._token_endpoints: dict[str, AuthServer] = {}

    # -- a server's tokens ---------------------------------------------------------------------

    def tokens(
        self,
        server: ServerConfig,
        found: Discovered,
        scope: str | None,
        held: TokenSet | None = None,
    ) -> TokenSet:
        """The server's next access token (first, or renewing ``held``), kept under its URL,
        with the DPoP key it is bound to (if it is)."""
        from broker.tokens.machine import machine_client, machine_scope
        from broker.tokens.workload import redeem_assertion, workload_tokens

        key = self._dpop_key(server, found, held)
        send = self.dpop.token_sender(self._send, found.auth_server, key, server)
        if server.workload_token_file is not None:
            return self.dpop.kept(workload_tokens(send, server, found, scope), key)
        idp = self.idp(server)
        scope = machine_scope(scope)  # the ID-JAG names the user already: no OIDC scopes
        grant = self.id_jag(idp, found, scope)  # at the IdP, without a proof
        tokens = redeem_assertion(
            send,
            found,
            machine_client(server, found.issuer, self._secrets),
            grant,
            scope,
            send_resource=server.send_resource,
            key_resource=server.url,
            grant=ID_JAG,
        )
        return self.dpop.kept(tokens, key)

    def _dpop_key(
        self, server: ServerConfig, found: Discovered, held: TokenSet | None
    ) -> ECKey | None:
        """The key the JWT bearer grant proves: that of the tokens it renews (as a machine
        identity's renewal does), else a new one when the server uses DPoP (None: Bearer)."""
        key = self.dpop.key_for_refresh(server, held) if held is not None else None
        return key if key is not None else self.dpop.key_for_sign_in(server, found.auth_server)

    def check_ready(self, server: ServerConfig) -> None:
        """Raise at once (``InteractionRequired``: the IdP sign-in is needed; ``ConfigError``: no
        readable JWT file) before anything is asked of the server or its authorization server,
        so a client asking again and again while the user has not signed in costs no traffic."""
        from broker.tokens.workload import read_jwt_file

        if server.workload_token_file is not None:
            read_jwt_file(server.workload_token_file, "workload token")
        elif server.enterprise is not None:
            self.id_token(self.idp(server))

    def renew(self, server: ServerConfig, found: Discovered, tokens: TokenSet) -> TokenSet:
        """The token service's renewal of an ``id-jag`` or ``workload-jwt`` set: the grant again,
        with the scope it had."""
        if tokens.grant not in (ID_JAG, WORKLOAD_JWT) or not server.assertion_grant:
            raise InteractionRequired(f"{server.url} is no longer configured for this grant")
        return self.tokens(server, found, tokens.scope, held=tokens)

    def idp(self, server: ServerConfig) -> IdpConfig:
        """The IdP whose sign-in gets ``server``'s tokens."""
        assert server.enterprise is not None
        return self.idp_named(server.enterprise)

    def idp_named(self, name: str) -> IdpConfig:
        idp = self._config().get_idp(name)
        if idp is None:
            raise ConfigError(
                f"the IdP {name} is not configured: add it with `mcp-broker idp add {name} "
                "--issuer URL --client-id ID`"
            )
        return idp

    def id_jag(self, idp: IdpConfig, found: Discovered, scope: str | None) -> str:
        """A new ID-JAG for ``found``'s server from the IdP's current ID token."""
        from broker.oauth.idjag import build_exchange_request, handle_exchange_response

        id_token = self.id_token(idp)
        request = build_exchange_request(
            self.idp_token_server(idp),
            self.idp_client(idp),
            id_token,
            found.issuer,
            found.resource,
            scope,
        )
        try:
            grant = handle_exchange_response(self._send(request))
        except TokenRequestFailed as exc:
            self.forget_idp(idp)
            if exc.error == "invalid_grant":
                # The IdP no longer takes the ID token (its sign-in was ended, or it expired).
                raise InteractionRequired(
                    f"{idp.name} refused the sign-in's ID token: {idp_login_hint(idp)}"
                ) from exc
            raise
        logger.info("exchanged the %s sign-in for an ID-JAG for %s", idp.name, found.resource)
        return grant.assertion

    def id_token(self, idp: IdpConfig) -> str:
        """The IdP sign-in's ID token, refreshed first when it is about to expire."""
        from broker.oauth.idjag import id_token_fresh
        from broker.tokens.workload import read_jwt_file

        if idp.id_token_file is not None:
            return read_jwt_file(idp.id_token_file, "ID token")
        try:
            tokens = self._session(idp.key, False)
            if not id_token_fresh(tokens.id_token, time.time(), ID_TOKEN_MARGIN):
                logger.info("the ID token of %s is about to expire: refreshing", idp.name)
                tokens = self._session(idp.key, True)
        except InteractionRequired as exc:
            raise InteractionRequired(
                f"not signed in at {idp.name}: {idp_login_hint(idp)}"
            ) from exc
        if tokens.id_token is None or not id_token_fresh(
            tokens.id_token, time.time(), ID_TOKEN_MARGIN
        ):
            raise InteractionRequired(
                f"the sign-in at {idp.name} has no current ID token: {idp_login_hint(idp)}"
            )
        return tokens.id_token

    def idp_token_server(self, idp: IdpConfig) -> AuthServer:
        """The IdP's metadata for the token exchange, cached in memory. Only its token endpoint
        is used: discovery refuses no IdP for lacking PKCE (the exchange does not use it); its
        browser sign-in checks PKCE as every sign-in does."""
        from broker.oauth.discovery import drive, find_auth_server
        from broker.oauth.providers import profile_for

        with self._lock:
            known = self._token_endpoints.get(idp.issuer)
        if known is not None:
            return known
        profile = profile_for(idp.issuer, idp.profile_name)
        found = drive(find_auth_server(idp.issuer, profile), self._send)
        if found is None:
            raise DiscoveryError(f"no metadata found for the IdP {idp.issuer}")
        with self._lock:
            self._token_endpoints[idp.issuer] = found
        return found

    def forget_idp(self, idp: IdpConfig) -> None:
        with self._lock:
            self._token_endpoints.pop(idp.issuer, None)

    # -- the IdP sign-ins ------------------------------------------------------------------------

    def idp_for_key(self, key: TokenKey) -> IdpConfig | None:
        """The configured IdP whose sign-in ``key`` keeps, if it is one."""
        return next((idp for idp in self._config().idps if idp.key == key), None)

    def refresh_idp(self, idp: IdpConfig, tokens: TokenSet, found: Discovered) -> TokenSet:
        """The refresh-token grant of the IdP sign-in (RFC 6749 §6; no ``resource``: the sign-in
        is for no resource server)."""
        from broker.tokens.grant import refresh_tokens

        return refresh_tokens(self._send, found, tokens, self.idp_client(idp), send_resource=False)

    def idp_client(self, idp: IdpConfig) -> ClientCredentials:
        from broker.oauth.registration import ClientCredentials

        secret = self._secrets.get_client_secret(idp.issuer, idp.client_id)
        return ClientCredentials(idp.client_id, idp.issuer, client_secret=secret)
