"""The composition root: builds the token store, the HTTP sender, the token service and sign-in
from the configuration, and offers what the commands do with them (sign in and out, hand out
tokens, report status). Nothing else constructs these long-lived objects.

A server's tokens are keyed by (issuer, client id, server URL); ``mcp-broker login`` pins the
issuer and client id in the config file, so ``token`` and ``status`` need no network at all.
Refreshes go straight to the pinned issuer's metadata, so a refresh does not depend on the MCP
server being up.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import webbrowser
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from broker.config import (
    Config,
    ServerConfig,
    add_server,
    config_path,
    load_config,
    resolve_settings,
    server_label,
    update_config,
)
from broker.errors import (
    BrokerError,
    ConfigError,
    DiscoveryError,
    InteractionRequired,
    InvalidGrant,
    ServerUnreachable,
    StorageError,
    TokenRequestFailed,
)
from broker.filelock import FileLock, lock_for
from broker.paths import BrokerPaths, broker_paths
from broker.safetext import safe_text
from broker.store.base import ClientSecretStore, TokenStore
from broker.tokens.auth_servers import AuthServerCache
from broker.tokens.service import KeyStatus, State, TokenService
from broker.tokens.stamps import FileStamps
from broker.tokens.tokenset import TokenKey, TokenSet

# The sign-in and discovery modules pull in the mcp SDK, which takes seconds to import; a
# `mcp-broker token` answered from the keyring must not pay for that, so they load on first use.
if TYPE_CHECKING:
    from broker.oauth.discovery import Discovered
    from broker.oauth.prm import ResourceInfo
    from broker.oauth.registration import ClientCredentials
    from broker.oauth.www_authenticate import BearerChallenge
    from broker.signin.discovery import Sender
    from broker.signin.login import ClientRegistry, SignInOptions

logger = logging.getLogger(__name__)

Opener = Callable[[str], object]


class Store(TokenStore, ClientSecretStore, Protocol):
    def close(self) -> None: ...


REFRESH_LOCK_TIMEOUT = 30.0


@dataclass(frozen=True)
class ServerStatus:
    """One configured server as ``status`` shows it: never a token."""

    url: str
    state: str
    issuer: str | None = None
    client_id: str | None = None
    provider: str = "auto"
    reason: str | None = None
    expires_at: float | None = None
    scope: str | None = None
    user: str | None = None
    """Who is signed in (display only; from the ID token or a Cognito access token)."""
    name: str | None = None
    """The server's own name, its PRM ``resource_name`` (sanitised), once signed in."""

    @property
    def display_name(self) -> str:
        """``name``, else host[:port] and path."""
        return server_label(self.url, self.name)


@dataclass(frozen=True)
class SignOutResult:
    removed: int
    revoked: int
    revocation_supported: bool
    problem: str | None = None


def is_needing_user(exc: TokenRequestFailed) -> bool:
    """Whether a refused refresh needs the user, or may pass (5xx, 429, a garbled answer).

    ``invalid_grant`` always needs the user; any other OAuth error code from a 4xx does too
    (``invalid_client``, ``unauthorized_client``, ``invalid_scope``): retrying cannot fix it.
    """
    if isinstance(exc, InvalidGrant):
        return True
    status = exc.status_code
    return bool(exc.error) and 400 <= status < 500 and status != 429


class Broker:
    def __init__(
        self,
        paths: BrokerPaths,
        config_file: Path,
        *,
        store: Store | None = None,
        send: Sender | None = None,
        opener: Opener = webbrowser.open,
        sign_in_timeout: float = 300.0,
    ) -> None:
        self.paths = paths.ensure_private_dirs()
        self.config_file = config_file
        settings = resolve_settings(load_config(config_file))
        if store is None:
            from broker.store.keyring_store import KeyringTokenStore

            store = KeyringTokenStore(timeout=settings.keyring_timeout)
        self.store: Store = store
        self._send = send
        self._opener = opener
        self._sign_in_timeout = sign_in_timeout
        self._sender_lock = threading.Lock()
        self._auth_servers = AuthServerCache(self.paths.state_dir)
        self.service = TokenService(
            self.store,
            self._refresh_grant,
            lock_factory=self._lock_for,
            stamps=FileStamps(self.paths.lock_dir),
        )

    @classmethod
    def from_environment(cls, config: str | None = None, **kwargs: object) -> Broker:
        """Paths from ``MCP_BROKER_HOME`` (or the platform dirs), config from ``--config``."""
        paths = broker_paths()
        return cls(paths, config_path(paths, config), **kwargs)  # type: ignore[arg-type]

    def close(self) -> None:
        close = getattr(self._send, "close", None)
        if close is not None:
            close()
        self.store.close()

    @property
    def _sender(self) -> Sender:
        with self._sender_lock:
            if self._send is None:
                from broker.signin.discovery import LimitedSender

                self._send = LimitedSender()
            return self._send

    def prepare_refresh(self) -> None:
        """Load what a refresh needs (its modules, the HTTP client and its TLS context) ahead
        of time. A long-running broker calls it once it serves: done on the first refresh
        instead, under load, it kept callers waiting for seconds."""

        self._sender  # noqa: B018 - created for its side effect

    # -- configuration ------------------------------------------------------------------------

    def servers(self) -> tuple[ServerConfig, ...]:
        return load_config(self.config_file).servers

    def server(self, url: str) -> ServerConfig:
        found = load_config(self.config_file).get_server(url)
        if found is None:
            raise ConfigError(f"{url} is not configured; add it with: mcp-broker add {url}")
        return found

    def add(self, server: ServerConfig) -> ServerConfig:
        """Add or replace a server. Replacing forgets the pinned issuer: the next sign-in
        trusts whatever authorization server the MCP server names then."""
        add_server(self.config_file, self.paths.lock_dir, server)
        return self.server(server.url)

    def key_for(self, server: ServerConfig) -> TokenKey:
        if server.issuer is None or server.client_id is None:
            raise InteractionRequired(
                f"not signed in to {server.url}; sign in with: mcp-broker login {server.url}"
            )
        return TokenKey(server.issuer, server.client_id, server.url)

    # -- tokens -------------------------------------------------------------------------------

    def token(self, url: str, min_valid: float | None = None) -> TokenSet:
        return self.service.get_token(self.key_for(self.server(url)), min_valid)

    def status(self) -> list[ServerStatus]:
        return [self._status_of(server) for server in self.servers()]

    def _status_of(self, server: ServerConfig) -> ServerStatus:
        base = ServerStatus(
            server.url, State.SIGNED_OUT.value, provider=server.provider, name=server.resource_name
        )
        if server.issuer is None or server.client_id is None:
            return replace(base, reason="never signed in")
        base = replace(base, issuer=server.issuer, client_id=server.client_id)
        try:
            status: KeyStatus = self.service.status(self.key_for(server))
        except StorageError as exc:
            return replace(base, state="storage_error", reason=str(exc))
        return replace(
            base,
            state=status.state.value,
            reason=status.reason,
            expires_at=status.expires_at,
            scope=status.scope,
            user=status.user,
        )

    # -- sign-in and sign-out -----------------------------------------------------------------

    def login(self, url: str, extra_scope: str | None = None) -> TokenSet:
        """Sign in to ``url`` in the browser; ``extra_scope`` is added to the scope the server
        asks for and to the current token's (step-up, MCP authorization "Scope Challenge
        Handling": the union of the old and the new scopes, so one step-up never drops
        another)."""
        from broker.oauth.scopes import union_scopes
        from broker.signin.discovery import discover
        from broker.signin.login import ClientRegistry, SignIn

        server = self.server(url)
        challenge = self._probe(server.url)
        found = discover(server.url, self._sender, challenge, server.profile_name)
        self._auth_servers.put(found.auth_server)
        if server.issuer is not None and found.issuer != server.issuer:
            raise ConfigError(
                f"{server.url} now names the authorization server {found.issuer}, not "
                f"{server.issuer} as before. If you trust it, run "
                f"`mcp-broker add {server.url} --reset-issuer`, then sign in."
            )
        clients = ClientRegistry(
            self._preregistered(server, found.issuer), server.client_metadata_url
        )
        scope = self._scope_for(server, found, challenge)
        if extra_scope:
            scope = union_scopes(union_scopes(self._held_scope(server), scope), extra_scope)
        sign_in = SignIn(self._sender, clients, opener=self._opener, store=None)
        tokens = sign_in.sign_in(found, scope, self._options(server))
        tokens = self._rekeyed(server, tokens)
        self.service.put(tokens)
        self._remember_client(server, clients, tokens.key, found.prm)
        return tokens

    def logout(self, url: str) -> SignOutResult:
        from broker.oauth.revocation import build_revocation_request, handle_revocation_response

        server = self.server(url)
        try:
            key = self.key_for(server)
        except InteractionRequired:
            return SignOutResult(0, 0, False)
        removed = self.service.sign_out(key)
        refresh_tokens = {t.refresh_token for t in removed if t.refresh_token}
        if not refresh_tokens:
            return SignOutResult(len(removed), 0, False)
        pending, problem = sorted(refresh_tokens), None
        for attempt in range(2):
            # With the cached metadata first; if that fails (or has no revocation endpoint), the
            # metadata may be stale: once more with a fresh discovery.
            try:
                found = self._discovered(server, key)
            except (DiscoveryError, ServerUnreachable) as exc:
                revoked = len(refresh_tokens) - len(pending)
                return SignOutResult(len(removed), revoked, False, f"could not revoke: {exc}")
            self._auth_servers.forget(found.issuer, found.auth_server.profile.name)
            if found.auth_server.revocation_endpoint is None:
                if attempt == 0:
                    continue
                return SignOutResult(len(removed), 0, False)
            client = self._client(server, key.issuer, key.client_id)
            failed = []
            for refresh_token in pending:
                try:
                    request = build_revocation_request(found.auth_server, client, refresh_token)
                    handle_revocation_response(self._sender(request))
                except (ServerUnreachable, TokenRequestFailed) as exc:
                    problem = f"could not revoke the refresh token: {exc}"
                    failed.append(refresh_token)
            if not failed:
                self._auth_servers.put(found.auth_server)
                return SignOutResult(len(removed), len(refresh_tokens), True, None)
            pending = failed
        return SignOutResult(len(removed), len(refresh_tokens) - len(pending), True, problem)

    # -- the refresh grant (called by the token service under its locks) ----------------------

    def _refresh_grant(self, tokens: TokenSet) -> TokenSet:
        from broker.signin.login import ClientRegistry, SignIn

        server = self._server_for_key(tokens.key)
        found = self._discovered(server, tokens.key)
        sign_in = SignIn(self._sender, ClientRegistry(self._preregistered(server, found.issuer)))
        try:
            return sign_in.refresh(found, tokens, self._options(server))
        except TokenRequestFailed as exc:
            self._auth_servers.forget(found.issuer, found.auth_server.profile.name)
            if is_needing_user(exc):
                raise
            raise ServerUnreachable(f"refresh failed for now: {exc}") from exc
        except BrokerError:
            # The endpoint may have moved: look the metadata up again at the next attempt.
            self._auth_servers.forget(found.issuer, found.auth_server.profile.name)
            raise

    def _server_for_key(self, key: TokenKey) -> ServerConfig:
        for server in self.servers():
            if (server.url, server.issuer, server.client_id) == (
                key.resource,
                key.issuer,
                key.client_id,
            ):
                return server
        raise InteractionRequired(f"{key.resource} is no longer configured for {key.issuer}")

    def _discovered(self, server: ServerConfig, key: TokenKey) -> Discovered:
        """The pinned issuer's metadata (no PRM round trip: the issuer is known), cached."""
        from broker.oauth.discovery import Discovered, drive, find_auth_server
        from broker.oauth.providers import profile_for

        profile = profile_for(key.issuer, server.profile_name)
        auth_server = self._auth_servers.get(key.issuer, profile.name)
        if auth_server is None:
            auth_server = drive(find_auth_server(key.issuer, profile), self._sender)
            if auth_server is None:
                raise DiscoveryError(f"no authorization server metadata found for {key.issuer}")
            self._auth_servers.put(auth_server)
        return Discovered(server.url, key.resource, auth_server)

    # -- helpers ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _lock_for(self, key: TokenKey) -> Iterator[FileLock]:
        name = f"refresh\n{key.issuer}\n{key.client_id}\n{key.resource}"
        with lock_for(name, self.paths.lock_dir, timeout=REFRESH_LOCK_TIMEOUT) as lock:
            yield lock

    def _options(self, server: ServerConfig) -> SignInOptions:
        from broker.signin.login import SignInOptions

        return SignInOptions(
            profile=server.profile_name,
            send_resource=server.send_resource,
            callback_ports=server.callback_ports,
            timeout=self._sign_in_timeout,
        )

    def _client(self, server: ServerConfig, issuer: str, client_id: str) -> ClientCredentials:
        from broker.oauth.registration import ClientCredentials

        secret = server.client_secret or self.store.get_client_secret(issuer, client_id)
        return ClientCredentials(client_id=client_id, issuer=issuer, client_secret=secret)

    def _preregistered(self, server: ServerConfig, issuer: str) -> list[ClientCredentials]:
        if server.client_id is None:
            return []
        if server.issuer is not None and server.issuer != issuer:
            return []  # credentials are bound to the issuer that issued them
        return [self._client(server, issuer, server.client_id)]

    def _held_scope(self, server: ServerConfig) -> str | None:
        """The scope of the current sign-in to ``server``, if any."""
        if server.issuer is None or server.client_id is None:
            return None
        try:
            return self.service.status(self.key_for(server)).scope
        except BrokerError:
            return None

    def _scope_for(
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

    def _rekeyed(self, server: ServerConfig, tokens: TokenSet) -> TokenSet:
        if tokens.key.resource != server.url:
            # A PRM at the origin names the origin as the resource; tokens are kept per server.
            logger.info("keeping tokens for %s under the server URL", tokens.key.resource)
            return replace(tokens, key=replace(tokens.key, resource=server.url))
        return tokens

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
            self.store.put_client_secret(key.issuer, key.client_id, registered.client_secret)

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

        update_config(self.config_file, self.paths.lock_dir, pin)

    def _probe(self, url: str) -> BearerChallenge | None:
        """The server's 401 challenge (its ``scope`` and ``resource_metadata``), if it sends one.

        A POST, as an MCP client's first request is (a server need not serve GET at all), of a
        ``ping``, which changes nothing on any server. Only the status and headers are read (a
        server without auth might open a stream), within the same total time limit as every other
        exchange.
        """
        import httpx2

        from broker.oauth.www_authenticate import parse_bearer_challenge
        from broker.signin.discovery import LimitedSender

        accept = {"Accept": "application/json, text/event-stream"}
        ping = {"jsonrpc": "2.0", "id": 0, "method": "ping"}
        request = httpx2.Request("POST", url, headers=accept, json=ping)
        probe = LimitedSender(limits=getattr(self._send, "limits", None))  # the sender's limits
        try:
            response = probe.head_of(request)
        finally:
            probe.close()
        if response.status_code != 401:
            return None
        return parse_bearer_challenge(response.headers.get_list("www-authenticate"))
