"""Sign-in, the one flow: every caller in the process signs in here (the tray's "Sign in" and
step-up entries, ``mcp-broker login``, the bridge's step-up when no broker runs).

For a configured server: probe it (its 401 challenge names the scope and the PRM), discover its
authorization server (:mod:`broker.signin.discovery`), refuse an issuer other than the one
pinned before, choose the scope (the user's configured scopes as they are; else the challenge's
or the PRM's, without other resource servers' scopes where scopes are named by resource; on a
step-up, the union with the scope held and the one asked for), pick or register the client,
sign in in the browser (:class:`broker.signin.login.SignIn`), keep the tokens under the server's
URL, store them (the token service tells every process), and pin the issuer and client id in
the config file with the server's PRM ``resource_name`` (display only; a registered client's
secret goes to the keyring).

One sign-in per server at a time, for the whole process: a caller asking while one runs waits
for it and shares its outcome (SECURITY #42), then signs in itself only if it asked for a scope
that sign-in did not grant. Sign-ins to different servers run side by side.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from broker.errors import AuthorizationError, BrokerError, ConfigError, InteractionRequired
from broker.safetext import safe_text
from broker.tokens.dpop import Dpop
from broker.tokens.tokenset import TokenKey, TokenSet

# Discovery and sign-in pull in pydantic and the protocol modules: loaded on the first sign-in,
# so that building the flow costs a process that only hands out tokens nothing.
if TYPE_CHECKING:
    from joserfc.jwk import ECKey

    from broker.config import Config, ServerConfig
    from broker.oauth.discovery import Discovered
    from broker.oauth.prm import ResourceInfo
    from broker.oauth.www_authenticate import BearerChallenge
    from broker.signin.discovery import Sender
    from broker.signin.login import ClientRegistry, Headless, Opener, SignInOptions
    from broker.store.base import ClientSecretStore
    from broker.tokens.auth_servers import AuthServerCache
    from broker.tokens.enterprise import AssertionGrants
    from broker.tokens.service import TokenService

logger = logging.getLogger(__name__)

ConfigChange = Callable[["Config"], "Config"]


class SignInFlow:
    """Signs in to configured servers; built once per process and shared by every caller.

    ``server`` looks a configured server up by URL (raising ``ConfigError`` when there is none),
    ``update_config`` applies a change to the config file, ``send`` sends one request within the
    broker's HTTP limits and ``head_of`` one whose body is not read (the probe: a server
    without auth may answer with a stream)."""

    def __init__(
        self,
        *,
        send: Sender,
        head_of: Sender,
        service: TokenService,
        auth_servers: AuthServerCache,
        secrets: ClientSecretStore,
        server: Callable[[str], ServerConfig],
        update_config: Callable[[ConfigChange], object],
        opener: Opener,
        timeout: float,
        dpop: Dpop | None = None,
        assertions: AssertionGrants | None = None,
    ) -> None:
        self._send = send
        self._head_of = head_of
        self._service = service
        self._auth_servers = auth_servers
        self._secrets = secrets
        self._server = server
        self._update_config = update_config
        self._opener = opener
        self._timeout = timeout
        self._dpop = dpop or Dpop()  # DPoP-bound tokens (RFC 9449) where the server uses them
        self._assertions = assertions
        self._lock = threading.Lock()
        self._flights: dict[str, Future[TokenSet]] = {}

    def sign_in(
        self, url: str, extra_scope: str | None = None, headless: Headless | None = None
    ) -> TokenSet:
        """Sign in to ``url`` in the browser; ``extra_scope`` is added to the scope the server
        asks for and to the current token's (step-up, MCP authorization "Scope Challenge
        Handling": the union of the old and the new scopes, so one step-up never drops
        another). Joins a sign-in to the same server already running. ``headless``: no browser
        here (:class:`broker.signin.login.Headless`). A machine identity gets its token with the
        client credentials grant instead (:mod:`broker.tokens.machine`)."""
        key = self._server(url).url
        return self._once(key, extra_scope, lambda: self._run(url, extra_scope, headless))

    def sign_in_idp(self, name: str, headless: Headless | None = None) -> TokenSet:
        """Sign in at the enterprise IdP ``name`` (``[[idps]]``): Authorization Code + PKCE in
        the browser like any sign-in, for an ID token (scope ``openid``) and a refresh token,
        kept under the IdP's key. The servers of that IdP then get their tokens from it
        (:mod:`broker.tokens.enterprise`) with no further browser."""
        return self._once(f"idp {name}", None, lambda: self._run_idp(name, headless))

    def without_person(self, url: str) -> TokenSet:
        """The next token of a server with an assertion grant (enterprise-managed, workload
        identity), when the token service has none: no browser, no person. Raises
        ``InteractionRequired`` when the IdP sign-in is needed first."""
        server = self._server(url)
        if not server.assertion_grant or self._assertions is None:
            raise InteractionRequired(f"not signed in to {server.url}")
        self._assertions.check_ready(server)
        return self._once(server.url, None, lambda: self._run(url, None, None, person=False))

    def _once(self, key: str, extra_scope: str | None, run: Callable[[], TokenSet]) -> TokenSet:
        """``run`` for ``key``, or the outcome of the run already going on for it."""
        while True:
            with self._lock:
                flight = self._flights.get(key)
                leading = flight is None
                if flight is None:
                    flight = self._flights[key] = Future()
            if leading:
                break
            logger.info("joining the sign-in already running for %s", key)
            tokens = flight.result()
            if not _missing(tokens.scope, extra_scope):
                return tokens
            # That sign-in did not ask for what this caller needs: its own comes next.
        try:
            tokens = run()
        except BaseException as exc:
            flight.set_exception(exc)
            raise
        else:
            flight.set_result(tokens)
            return tokens
        finally:
            with self._lock:
                self._flights.pop(key, None)

    def _run(
        self,
        url: str,
        extra_scope: str | None,
        headless: Headless | None,
        person: bool = True,
    ) -> TokenSet:
        from broker.oauth.scopes import union_scopes
        from broker.signin.discovery import discover
        from broker.signin.login import ClientRegistry, SignIn

        server = self._server(url)
        challenge = self.probe(server.url)
        found = discover(server.url, self._send, challenge, server.profile_name)
        self._auth_servers.put(found.auth_server)
        if server.issuer is not None and found.issuer != server.issuer:
            raise ConfigError(
                f"{server.url} now names the authorization server {found.issuer}, not "
                f"{server.issuer} as before. If you trust it, run "
                f"`mcp-broker add {server.url} --reset-issuer`, then sign in."
            )
        if server.assertion_grant and self._assertions is not None:
            scope = self._scope_for(server, found, challenge)
            if extra_scope:  # a step-up: the ID-JAG asks for the union, as a sign-in would
                scope = union_scopes(union_scopes(self._held_scope(server), scope), extra_scope)
            return self._assertion(server, found, scope, headless if person else None, person)
        key = self._dpop.key_for_sign_in(server, found.auth_server)
        send = self._dpop.token_sender(self._send, found.auth_server, key, server)
        if server.machine:
            return self._machine(server, found, challenge, send, key)
        preregistered = self._preregistered(server, found.issuer)
        clients = ClientRegistry(preregistered, server.client_metadata_url)
        scope = self._scope_for(server, found, challenge)
        if extra_scope:
            scope = union_scopes(union_scopes(self._held_scope(server), scope), extra_scope)
        sign_in = SignIn(send, clients, opener=self._opener)
        options = replace(self._options(server), headless=headless)
        tokens = self._dpop.kept(_keyed_for(server, sign_in.sign_in(found, scope, options)), key)
        if server.sends_id_token:
            from broker.tokens.id_token import bounded_by_id_token

            tokens = bounded_by_id_token(tokens)
        self._service.put(tokens)
        self._remember_client(server, clients, tokens.key, found.prm)
        return tokens

    def _machine(
        self,
        server: ServerConfig,
        found: Discovered,
        challenge: BearerChallenge | None,
        send: Sender,
        key: ECKey | None,
    ) -> TokenSet:
        """A machine identity's first token: the client credentials grant, no person."""
        from broker.tokens.machine import client_credentials_tokens, machine_client

        client = machine_client(server, found.issuer, self._secrets)
        scope = self._scope_for(server, found, challenge)
        tokens = client_credentials_tokens(
            send,
            found,
            client,
            scope,
            send_resource=server.send_resource,
            key_resource=server.url,
        )
        tokens = self._dpop.kept(tokens, key)
        self._service.put(tokens)
        self._pin_issuer(server, found)
        return tokens

    def _pin_issuer(self, server: ServerConfig, found: Discovered) -> None:
        def pin(config: Config) -> Config:
            current = config.get_server(server.url) or server
            return config.with_server(replace(current, issuer=found.issuer))

        self._update_config(pin)

    def _assertion(
        self,
        server: ServerConfig,
        found: Discovered,
        scope: str | None,
        headless: Headless | None,
        person: bool,
    ) -> TokenSet:
        """A token from an assertion grant (:mod:`broker.tokens.enterprise`): an ID-JAG of the
        IdP sign-in, signing in at the IdP first when a person asked and it is needed; or the
        workload's JWT."""
        assert self._assertions is not None
        try:
            tokens = self._assertions.tokens(server, found, scope)
        except InteractionRequired:
            if not person or server.enterprise is None:
                raise
            idp = self._assertions.idp(server)
            if idp.id_token_file is not None:
                raise
            self.sign_in_idp(idp.name, headless)
            tokens = self._assertions.tokens(server, found, scope)
        self._service.put(tokens)
        self._pin_issuer(server, found)
        return tokens

    def _run_idp(self, name: str, headless: Headless | None) -> TokenSet:
        from broker.oauth.discovery import Discovered, drive, find_auth_server
        from broker.oauth.providers import profile_for
        from broker.oauth.scopes import with_offline_access
        from broker.signin.login import ClientRegistry, SignIn, SignInOptions

        if self._assertions is None:
            raise ConfigError("enterprise-managed authorization is not available here")
        idp = self._assertions.idp_named(name)
        profile = profile_for(idp.issuer, idp.profile_name)
        auth_server = drive(find_auth_server(idp.issuer, profile), self._send)
        if auth_server is None:
            raise ConfigError(f"no OpenID Connect metadata found for the IdP {idp.issuer}")
        self._auth_servers.put(auth_server)
        found = Discovered(idp.issuer, idp.issuer, auth_server)
        scope = with_offline_access(" ".join(idp.scopes), auth_server.scopes_supported)
        clients = ClientRegistry([self._assertions.idp_client(idp)])
        options = SignInOptions(
            profile=idp.profile_name,
            send_resource=False,  # the sign-in is for no resource server
            callback_ports=idp.callback_ports,
            timeout=self._timeout,
            headless=headless,
        )
        tokens = SignIn(self._send, clients, opener=self._opener).sign_in(found, scope, options)
        if tokens.id_token is None:
            raise AuthorizationError(f"{idp.name} answered the sign-in without an ID token")
        self._service.put(tokens)
        return tokens

    def probe(self, url: str) -> BearerChallenge | None:
        """The server's 401 challenge (its ``scope`` and ``resource_metadata``), if it sends one.

        A POST, as an MCP client's first request is (a server need not serve GET at all), of a
        ``ping``, which changes nothing on any server, sent through the broker's one 401/403
        handler (:mod:`broker.signin.httpauth`) without a token: the challenge is what the
        handler hands to the "not signed in" policy, which keeps it. Only the status and headers
        are read, within the same total time limit as every other exchange.
        """
        import httpx2

        from broker.signin.httpauth import BrokerAuth, Unsigned, send_signed

        accept = {"Accept": "application/json, text/event-stream"}
        ping = {"jsonrpc": "2.0", "id": 0, "method": "ping"}
        request = httpx2.Request("POST", url, headers=accept, json=ping)
        seen: list[BearerChallenge | None] = []

        def keep(challenge: BearerChallenge | None, _needed: InteractionRequired) -> str | None:
            seen.append(challenge)
            return None  # no retry: the 401 is the answer

        auth = BrokerAuth(Unsigned(url), when_not_signed_in=keep)
        send_signed(auth, request, self._head_of)
        return seen[0] if seen else None

    # -- the parts ----------------------------------------------------------------------------

    def _options(self, server: ServerConfig) -> SignInOptions:
        from broker.signin.login import SignInOptions

        return SignInOptions(
            profile=server.profile_name,
            send_resource=server.send_resource,
            callback_ports=server.callback_ports,
            timeout=self._timeout,
        )

    def _preregistered(self, server: ServerConfig, issuer: str) -> list[Any]:
        from broker.tokens.grant import configured_clients

        return configured_clients(server, issuer, self._secrets)

    def _held_scope(self, server: ServerConfig) -> str | None:
        """The scope of the current sign-in to ``server``, if any."""
        if server.issuer is None or server.client_id is None:
            return None
        try:
            key = TokenKey(server.issuer, server.client_id, server.url)
            return self._service.status(key).scope
        except BrokerError:
            return None

    def _scope_for(
        self, server: ServerConfig, found: Discovered, challenge: BearerChallenge | None
    ) -> str | None:
        scope = self._chosen_scope(server, found, challenge)
        if server.sends_id_token:  # no ID token without openid (OIDC Core 3.1.2.1)
            from broker.oauth.scopes import union_scopes
            from broker.tokens.id_token import OPENID

            scope = union_scopes(scope, OPENID)
        return scope

    def _chosen_scope(
        self, server: ServerConfig, found: Discovered, challenge: BearerChallenge | None
    ) -> str | None:
        from broker.oauth.scopes import choose_scope, own_scopes, with_offline_access

        as_scopes = found.auth_server.scopes_supported
        if server.scopes:  # the user's own choice: taken as it is
            return with_offline_access(" ".join(server.scopes), as_scopes)
        prm_scopes = found.prm.scopes_supported if found.prm else None
        scope = choose_scope(challenge.scope if challenge else None, prm_scopes, as_scopes)
        if not found.auth_server.profile.scopes_named_by_resource:
            return scope
        scope, dropped = own_scopes(scope, (server.url, found.resource))
        if dropped:
            logger.warning(
                "%s asked for scopes of other servers; not requested: %s",
                server.url,
                safe_text(" ".join(dropped), 300),
            )
        return scope

    def _remember_client(
        self,
        server: ServerConfig,
        clients: ClientRegistry,
        key: TokenKey,
        prm: ResourceInfo | None = None,
    ) -> None:
        """Pin the issuer and client id in the config, with the server's ``resource_name`` as
        published now (display only); a registered client's secret goes to the keyring."""
        registered = clients.registered(key.issuer)
        if registered is not None and registered.client_secret:
            self._secrets.put_client_secret(key.issuer, key.client_id, registered.client_secret)

        pinned: dict[str, Any] = {
            "issuer": key.issuer,
            "client_id": key.client_id,
            "resource_name": prm.resource_name if prm is not None else None,
        }
        if registered is not None and registered.client_id == key.client_id:
            pinned["client_registered"] = True
        elif key.client_id != server.client_id:
            pinned["client_registered"] = None  # e.g. a metadata document URL: no registration

        def pin(config: Config) -> Config:
            current = config.get_server(server.url) or server
            return config.with_server(replace(current, **pinned))

        self._update_config(pin)


def _keyed_for(server: ServerConfig, tokens: TokenSet) -> TokenSet:
    """The tokens under the key they are kept by: (issuer, client, the server's URL)."""
    if tokens.key.resource != server.url:
        # A PRM at the origin names the origin as the resource; tokens are kept per server.
        logger.info("keeping tokens for %s under the server URL", tokens.key.resource)
        return replace(tokens, key=replace(tokens.key, resource=server.url))
    return tokens


def _missing(granted: str | None, wanted: str | None) -> set[str]:
    return set((wanted or "").split()) - set((granted or "").split())
