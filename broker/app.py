"""What the commands do with the broker's parts (made by :mod:`broker.root`, the composition
root): the configured servers, sign in and out, hand out tokens, report status.

A server's tokens are keyed by (issuer, client id, server URL); ``mcp-broker login`` pins the
issuer and client id in the config file, so ``token`` and ``status`` need no network at all.
Refreshes go straight to the pinned issuer's metadata, so a refresh does not depend on the MCP
server being up.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from broker.config import ConfigFile, ServerConfig, same_sign_in
from broker.errors import (
    ConfigError,
    DiscoveryError,
    InteractionRequired,
    ServerUnreachable,
    StorageError,
    TokenRequestFailed,
)
from broker.filelock import FileLock, lock_for
from broker.paths import BrokerPaths
from broker.signin.flow import SignInFlow
from broker.store.base import ClientSecretStore, TokenStore
from broker.tokens.auth_servers import AuthServerCache
from broker.tokens.grant import RefreshGrant, configured_client
from broker.tokens.service import KeyStatus, State, TokenService
from broker.tokens.tokenset import TokenKey, TokenSet

# The sign-in and discovery modules pull in the mcp SDK, which takes seconds to import; a
# `mcp-broker token` answered from the keyring must not pay for that, so they load on first use.
if TYPE_CHECKING:
    from broker.net.limited_http import Sender
    from broker.oauth.discovery import Discovered
    from broker.oauth.www_authenticate import BearerChallenge
    from broker.signin.login import Headless
    from broker.tokens.status import IdpStatus, ServerStatus, SignOutResult

logger = logging.getLogger(__name__)

Opener = Callable[[str], object]


class Store(TokenStore, ClientSecretStore, Protocol):
    def close(self) -> None: ...


REFRESH_LOCK_TIMEOUT = 30.0


def configured_server(config: ConfigFile, url: str) -> ServerConfig:
    """The configured server ``url``; ``ConfigError`` naming the command that adds it."""
    found = config.load().get_server(url)
    if found is None:
        raise ConfigError(f"{url} is not configured; add it with: mcp-broker add {url}")
    return found


def refresh_locks(lock_dir: Path) -> Callable[[TokenKey], AbstractContextManager[FileLock]]:
    """The token service's cross-process lock per key: one refresh of a key at a time."""

    @contextlib.contextmanager
    def lock_for_key(key: TokenKey) -> Iterator[FileLock]:
        name = f"refresh\n{key.issuer}\n{key.client_id}\n{key.resource}"
        with lock_for(name, lock_dir, timeout=REFRESH_LOCK_TIMEOUT) as lock:
            yield lock

    return lock_for_key


class Broker:
    """What the commands, the tray, the bridge and the API do with the broker's parts: the
    configured servers, tokens, sign-in and sign-out, status. Made by :func:`broker.root.build`,
    which hands it its parts; it closes the store and the sender it was given."""

    def __init__(
        self,
        paths: BrokerPaths,
        config: ConfigFile,
        store: Store,
        send: Sender,
        *,
        auth_servers: AuthServerCache,
        grant: RefreshGrant,
        service: TokenService,
        signin: SignInFlow,
    ) -> None:
        self.paths = paths
        self.config = config
        self.config_file = config.path
        self.store = store
        self._send = send
        self._auth_servers = auth_servers
        self.grant = grant
        self.service = service
        self.signin = signin
        self.dpop = grant.dpop  # the process's DPoP nonces, for the bridge's proofs

    def close(self) -> None:
        close = getattr(self._send, "close", None)
        if close is not None:
            close()
        self.store.close()

    @property
    def _sender(self) -> Sender:
        return self._send

    def prepare_refresh(self) -> None:
        """Load what a refresh needs (its modules, the HTTP client and its TLS context) ahead
        of time. A long-running broker calls it once it serves: done on the first refresh
        instead, under load, it kept callers waiting for seconds."""
        prepare = getattr(self._send, "prepare", None)  # broker.root.LazySender
        if prepare is not None:
            prepare()

    # -- configuration ------------------------------------------------------------------------

    def servers(self) -> tuple[ServerConfig, ...]:
        return self.config.load().servers

    def server(self, url: str) -> ServerConfig:
        return configured_server(self.config, url)

    def add(self, server: ServerConfig) -> ServerConfig:
        """Add or replace a server (:func:`broker.config.replacing` says what a change keeps).

        A sign-in the new settings no longer fit (another issuer or client ID, or none pinned:
        the next sign-in trusts whatever authorization server the MCP server names then) is
        signed out of first, its tokens deleted and its refresh token revoked where the server
        can, so that no token of a client the config no longer names stays in the keyring. A
        keyring that refuses leaves the config as it was.
        """
        old = self.config.load().get_server(server.url)
        if old is not None and not same_sign_in(old, server):
            result = self.logout(old.url)
            if result.problem:
                logger.warning("%s: the old sign-in is deleted, but %s", old.url, result.problem)
        self.config.update(lambda config: config.with_server(server))
        return self.server(server.url)

    def add_machine(self, server: ServerConfig, credential: str) -> ServerConfig:
        """Add a machine identity: its client secret or private key goes to the keyring (under
        the server's URL, :func:`broker.config.machine_credential_owner`), never to a file; the
        keyring first, so a refusing keyring leaves the config as it was."""
        from broker.config import machine_credential_owner

        assert server.client_id is not None  # ServerConfig checks this for a machine
        self.store.put_client_secret(
            machine_credential_owner(server.url), server.client_id, credential
        )
        return self.add(server)

    def key_for(self, server: ServerConfig) -> TokenKey:
        if server.issuer is None or server.client_id is None:
            raise InteractionRequired(
                f"not signed in to {server.url}; sign in with: mcp-broker login {server.url}"
            )
        return TokenKey(server.issuer, server.client_id, server.url)

    # -- tokens -------------------------------------------------------------------------------

    def token(self, url: str, min_valid: float | None = None) -> TokenSet:
        """The token set to hand out for ``url``: its ``access_token`` is what the server is
        sent (the ID token for a server set to ``send = "id-token"``)."""
        server = self.server(url)
        try:
            tokens = self.service.get_token(self.key_for(server), min_valid)
        except InteractionRequired:
            if not server.assertion_grant:
                raise
            # Enterprise-managed or workload identity: the first token, or the next after the
            # IdP sign-in was renewed, needs no person (an ID-JAG or the workload's JWT).
            tokens = self.signin.without_person(server.url)
        return self._as_sent(server, tokens)

    def renewed(self, url: str) -> TokenSet:
        """A new token for ``url`` now (the server refused the current one), as handed out."""
        server = self.server(url)
        return self._as_sent(server, self.service.refresh(self.key_for(server)))

    def _as_sent(self, server: ServerConfig, tokens: TokenSet) -> TokenSet:
        if not server.sends_id_token:
            return tokens
        from broker.tokens.id_token import as_sent

        return as_sent(tokens, self.service.clock.time())

    def status(self) -> list[ServerStatus]:
        return [self._status_of(server) for server in self.servers()]

    def dpop_servers(self) -> frozenset[str]:
        """The configured servers whose tokens are, or at the next sign-in will be, DPoP-bound
        (:func:`broker.tokens.dpop.dpop_servers`): only the bridge can use them."""
        from broker.tokens.dpop import dpop_servers

        return dpop_servers(self.servers(), self._auth_servers, self._tokens_bound)

    def _tokens_bound(self, server: ServerConfig) -> bool:
        if server.issuer is None or server.client_id is None:
            return False
        try:
            return self.service.status(self.key_for(server)).dpop_bound
        except StorageError as exc:
            logger.info("cannot tell whether the tokens of %s are DPoP-bound: %s", server.url, exc)
            return False

    def idp_status(self) -> list[IdpStatus]:
        """Each enterprise IdP's sign-in and the servers it gets tokens for."""
        from broker.idps import servers_of
        from broker.tokens.status import IdpStatus

        rows = []
        servers = self.servers()
        for idp in self.config.load().idps:
            urls = tuple(server.url for server in servers_of(idp.name, servers))
            base = IdpStatus(idp.name, idp.issuer, "id_token_file", servers=urls)
            if idp.id_token_file is None:
                try:
                    status = self.service.status(idp.key)
                except StorageError as exc:
                    base = replace(base, state="storage_error", reason=str(exc))
                else:
                    base = replace(
                        base,
                        state=status.state.value,
                        user=status.user,
                        expires_at=status.expires_at,
                        reason=status.reason,
                    )
            rows.append(base)
        return rows

    def _status_of(self, server: ServerConfig) -> ServerStatus:
        from broker.tokens.status import ServerStatus  # not for a token: the helpers load less

        base = ServerStatus(
            server.url,
            State.SIGNED_OUT.value,
            provider=server.provider,
            machine=server.machine,
            name=server.resource_name,
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
            dpop_bound=status.dpop_bound,
        )

    def discover(
        self, url: str, provider: str = "auto"
    ) -> tuple[Discovered, BearerChallenge | None]:
        """What a sign-in to ``url`` would find, with nothing saved and nobody signed in: the
        server's 401 challenge, its PRM and its authorization server's metadata, judged with the
        ``provider`` profile (``auto``: decided by the issuer). The control page's preview."""
        from broker.signin.discovery import discover

        server = ServerConfig(url, provider=provider)  # the canonical URL, the profile's name
        challenge = self.signin.probe(server.url)
        return discover(server.url, self._send, challenge, server.profile_name), challenge

    # -- sign-in and sign-out -----------------------------------------------------------------

    def login(
        self, url: str, extra_scope: str | None = None, headless: Headless | None = None
    ) -> TokenSet:
        """Sign in to ``url`` (:class:`broker.signin.flow.SignInFlow`): in the browser, or
        ``headless`` (:class:`broker.signin.login.Headless`)."""
        return self.signin.sign_in(url, extra_scope, headless)

    def login_idp(self, name: str, headless: Headless | None = None) -> TokenSet:
        """Sign in at the enterprise IdP ``name`` (:meth:`SignInFlow.sign_in_idp`)."""
        return self.signin.sign_in_idp(name, headless)

    def logout_idp(self, name: str) -> SignOutResult:
        """Sign out at the enterprise IdP ``name``: its tokens are deleted and its refresh token
        revoked where the IdP can. Its servers keep their current access tokens until they
        expire; their next token needs a new IdP sign-in."""
        from broker.oauth.revocation import build_revocation_request, handle_revocation_response
        from broker.tokens.status import SignOutResult

        assertions = self.grant.assertions
        if assertions is None:
            raise ConfigError("enterprise-managed authorization is not available here")
        idp = assertions.idp_named(name)
        removed = self.service.sign_out(idp.key)
        refresh_tokens = sorted({t.refresh_token for t in removed if t.refresh_token})
        if not refresh_tokens:
            return SignOutResult(len(removed), 0, False)
        try:
            found = self.grant.pinned_idp(idp)
        except (DiscoveryError, ServerUnreachable) as exc:
            return SignOutResult(len(removed), 0, False, f"could not revoke: {exc}")
        if found.auth_server.revocation_endpoint is None:
            return SignOutResult(len(removed), 0, False)
        client = assertions.idp_client(idp)
        try:
            for refresh_token in refresh_tokens:
                request = build_revocation_request(found.auth_server, client, refresh_token)
                handle_revocation_response(self._sender(request))
        except (ServerUnreachable, TokenRequestFailed) as exc:
            problem = f"could not revoke the refresh token: {exc}"
            return SignOutResult(len(removed), 0, True, problem)
        return SignOutResult(len(removed), len(refresh_tokens), True)

    def logout(self, url: str) -> SignOutResult:
        from broker.oauth.revocation import build_revocation_request, handle_revocation_response
        from broker.tokens.status import SignOutResult

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
                found = self.grant.pinned(server, key)
            except (DiscoveryError, ServerUnreachable) as exc:
                revoked = len(refresh_tokens) - len(pending)
                return SignOutResult(len(removed), revoked, False, f"could not revoke: {exc}")
            self.grant.forget(found)
            if found.auth_server.revocation_endpoint is None:
                if attempt == 0:
                    continue
                return SignOutResult(len(removed), 0, False)
            client = configured_client(server, key.issuer, key.client_id, self.store)
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
