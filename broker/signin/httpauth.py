"""An ``httpx2.Auth`` that signs MCP requests with a broker token and reacts to challenges.

- Attaches ``Authorization: Bearer`` when a token is at hand.
- On 401: discovery (the challenge's ``resource_metadata`` first), then a refresh when the
  refresh token belongs to the same authorization server, else a sign-in; retries once.
- On 403 ``insufficient_scope``: signs in again with the union of the scopes asked for before
  and the challenged ones, at most once per request, and not at all when the challenge asks for
  nothing new (MCP authorization, "Scope Challenge Handling").

:class:`ServerAuthenticator` holds the per-server state and does the blocking work; the async
flow runs it in a worker thread so an event loop is never blocked by a browser sign-in.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncGenerator, Callable, Generator
from dataclasses import dataclass
from functools import partial
from typing import Any

import anyio.to_thread
import httpx2

from broker.errors import TokenRequestFailed
from broker.oauth.discovery import Discovered
from broker.oauth.scopes import choose_scope, step_up_scope
from broker.oauth.www_authenticate import BearerChallenge, parse_bearer_challenge
from broker.signin.discovery import Sender, discover
from broker.signin.login import SignIn, SignInOptions
from broker.tokens.tokenset import TokenSet

logger = logging.getLogger(__name__)

#: A token must have at least this much life left to be attached.
MIN_VALID_SECONDS = 5.0


class ServerAuthenticator:
    """Tokens for one MCP server, obtained on demand. Thread-safe."""

    def __init__(
        self,
        server_url: str,
        sign_in: SignIn,
        send: Sender,
        options: SignInOptions | None = None,
    ) -> None:
        self.server_url = server_url
        self.options = options or SignInOptions()
        self._sign_in = sign_in
        self._send = send
        self._lock = threading.Lock()
        self._found: Discovered | None = None
        self._tokens: TokenSet | None = None
        self._requested_scope: str | None = None

    @property
    def tokens(self) -> TokenSet | None:
        with self._lock:
            return self._tokens

    def current_token(self) -> str | None:
        """A token valid for a few more seconds (refreshing it if needed), or None."""
        with self._lock:
            tokens, found = self._tokens, self._found
        if tokens is None:
            return None
        if tokens.is_valid_for(MIN_VALID_SECONDS):
            return tokens.access_token
        if tokens.refresh_token and found is not None:
            try:
                return self._keep(self._sign_in.refresh(found, tokens, self.options)).access_token
            except TokenRequestFailed as exc:
                logger.info("refresh failed (%s); a sign-in will be needed", exc.error or "error")
        return None

    def login(self, scope: str | None = None) -> TokenSet:
        """Sign in now (``mcp-broker login URL``): discovery from the well-known URLs, then the
        browser. ``scope`` overrides the PRM's ``scopes_supported``."""
        found = self._discover(None)
        prm_scopes = found.prm.scopes_supported if found.prm else None
        chosen = choose_scope(scope, prm_scopes, found.auth_server.scopes_supported)
        return self._signed_in(found, chosen)

    def after_unauthorized(self, challenge: BearerChallenge | None, failed: str | None) -> TokenSet:
        """Get a token after a 401 to a request that carried ``failed`` (or no token)."""
        with self._lock:
            current = self._tokens
        if current is not None and failed is not None and current.access_token != failed:
            return current  # another request already renewed it
        found = self._discover(challenge)
        if (
            current is not None
            and current.refresh_token
            and failed is not None
            and (current.key.issuer, current.key.resource) == (found.issuer, found.resource)
        ):
            try:
                return self._keep(self._sign_in.refresh(found, current, self.options))
            except TokenRequestFailed as exc:
                logger.info("refresh failed (%s); signing in", exc.error or "error")
        prm_scopes = found.prm.scopes_supported if found.prm else None
        scope = choose_scope(
            challenge.scope if challenge else None, prm_scopes, found.auth_server.scopes_supported
        )
        return self._signed_in(found, scope)

    def after_forbidden(self, challenge: BearerChallenge, failed: str | None) -> TokenSet | None:
        """Step up after 403 ``insufficient_scope``; None when there is nothing new to ask for."""
        with self._lock:
            current, requested = self._tokens, self._requested_scope
        if current is not None and failed is not None and current.access_token != failed:
            return current
        wanted = set((challenge.scope or "").split())
        if not wanted or wanted <= set((requested or "").split()):
            logger.info("the server wants scopes already asked for; not signing in again")
            return None
        found = self._discover(challenge)
        scope = step_up_scope(requested, challenge.scope, found.auth_server.scopes_supported)
        return self._signed_in(found, scope)

    def _discover(self, challenge: BearerChallenge | None) -> Discovered:
        found = discover(self.server_url, self._send, challenge, self.options.profile)
        with self._lock:
            self._found = found
        return found

    def _signed_in(self, found: Discovered, scope: str | None) -> TokenSet:
        with self._lock:
            self._requested_scope = scope
        return self._keep(self._sign_in.sign_in(found, scope, self.options))

    def _keep(self, tokens: TokenSet) -> TokenSet:
        with self._lock:
            self._tokens = tokens
        return tokens


@dataclass(frozen=True)
class _Call:
    """A blocking step of the flow: run inline (sync) or in a worker thread (async)."""

    fn: Callable[[], Any]


_Step = httpx2.Request | _Call


class BrokerAuth(httpx2.Auth):
    requires_request_body = True

    def __init__(self, authenticator: ServerAuthenticator) -> None:
        self.authenticator = authenticator

    def _flow(self, request: httpx2.Request) -> Generator[_Step, Any, None]:
        auth = self.authenticator
        token: str | None = yield _Call(auth.current_token)
        _attach(request, token)
        response: httpx2.Response = yield request
        if response.status_code == 401:
            challenge = _challenge(response)
            tokens: TokenSet | None = yield _Call(
                partial(auth.after_unauthorized, challenge, token)
            )
            assert tokens is not None
            token = tokens.access_token
            _attach(request, token)
            response = yield request
        if response.status_code == 403:
            challenge = _challenge(response)
            if challenge is not None and challenge.insufficient_scope:
                tokens = yield _Call(partial(auth.after_forbidden, challenge, token))
                if tokens is not None:
                    _attach(request, tokens.access_token)
                    yield request

    def sync_auth_flow(
        self, request: httpx2.Request
    ) -> Generator[httpx2.Request, httpx2.Response, None]:
        flow = self._flow(request)
        sent: Any = None
        while True:
            try:
                step = flow.send(sent)
            except StopIteration:
                return
            sent = step.fn() if isinstance(step, _Call) else (yield step)

    async def async_auth_flow(
        self, request: httpx2.Request
    ) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        flow = self._flow(request)
        sent: Any = None
        while True:
            try:
                step = flow.send(sent)
            except StopIteration:
                return
            if isinstance(step, _Call):
                sent = await anyio.to_thread.run_sync(step.fn)
            else:
                sent = yield step


def _attach(request: httpx2.Request, token: str | None) -> None:
    if token:
        request.headers["Authorization"] = f"Bearer {token}"


def _challenge(response: httpx2.Response) -> BearerChallenge | None:
    return parse_bearer_challenge(response.headers.get_list("www-authenticate"))
