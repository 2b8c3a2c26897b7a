"""Tokens from the broker library in this process, when no broker is running."""

from __future__ import annotations

import dataclasses
import logging
import threading
from typing import TYPE_CHECKING

from broker.bridge.tokens import MIN_VALID_SECONDS, missing_scopes, sign_in_hint
from broker.errors import ConfigError, InsufficientScope, InteractionRequired
from broker.oauth.scopes import union_scopes

if TYPE_CHECKING:
    from broker.app import Broker
    from broker.signin.httpauth import ServerAuthenticator
    from broker.tokens.tokenset import TokenSet

logger = logging.getLogger(__name__)


class LibraryTokens:
    """Tokens from the broker library in this process (no broker is running): the keyring
    store, the token service's cache and refresh, and for step-up a browser sign-in through
    :class:`broker.signin.httpauth.ServerAuthenticator`."""

    def __init__(self, broker: Broker, resource: str) -> None:
        self.resource = resource
        self._broker = broker
        self._step_up_lock = threading.Lock()

    def token(self) -> str:
        return self._current(MIN_VALID_SECONDS).access_token

    def renewed(self, refused: str) -> str:
        current = self._current(MIN_VALID_SECONDS)
        if current.access_token != refused:
            return current.access_token
        fresh = self._broker.service.refresh(current.key)
        if fresh.access_token == refused:
            raise InteractionRequired(
                f"{self.resource} refused the broker's current token; {sign_in_hint(self.resource)}"
            )
        return fresh.access_token

    def stepped_up(self, refused: str, challenged_scope: str | None) -> str:
        with self._step_up_lock:  # one sign-in at a time; the others then find its token
            current = self._current(MIN_VALID_SECONDS)
            missing = missing_scopes(current.scope, challenged_scope)
            if not missing and current.access_token != refused:
                return current.access_token
            if not missing:
                raise InsufficientScope(
                    f"{self.resource} still refuses the token for lack of scope "
                    f"{challenged_scope or '(unnamed)'}"
                )
            scope = union_scopes(current.scope, challenged_scope)
            logger.info("signing in to %s again for the scope %s", self.resource, scope)
            tokens = self._authenticator().login(scope)
            self._keep(current, tokens)
            return tokens.access_token

    def close(self) -> None:
        self._broker.close()

    def _current(self, min_valid: float) -> TokenSet:
        return self._broker.token(self.resource, min_valid)

    def _authenticator(self) -> ServerAuthenticator:
        # Sign-in pulls in the mcp SDK's auth helpers: loaded only when a step-up happens.
        from broker.net.limited_http import LimitedSender
        from broker.oauth.registration import ClientCredentials
        from broker.signin.httpauth import ServerAuthenticator
        from broker.signin.login import ClientRegistry, SignIn, SignInOptions

        server = self._broker.server(self.resource)
        if server.issuer is None or server.client_id is None:
            raise InteractionRequired(f"not signed in; {sign_in_hint(self.resource)}")
        secret = server.client_secret or self._broker.store.get_client_secret(
            server.issuer, server.client_id
        )
        client = ClientCredentials(server.client_id, server.issuer, secret)
        send = LimitedSender()
        options = SignInOptions(
            profile=server.profile_name,
            send_resource=server.send_resource,
            callback_ports=server.callback_ports,
        )
        return ServerAuthenticator(
            self.resource, SignIn(send, ClientRegistry([client])), send, options
        )

    def _keep(self, current: TokenSet, tokens: TokenSet) -> None:
        """Store the stepped-up tokens under the server's key, as ``mcp-broker login`` does."""
        if (tokens.key.issuer, tokens.key.client_id) != (current.key.issuer, current.key.client_id):
            raise ConfigError(
                f"{self.resource} now names another authorization server or client; "
                f"{sign_in_hint(self.resource)}"
            )
        self._broker.service.put(dataclasses.replace(tokens, key=current.key))
