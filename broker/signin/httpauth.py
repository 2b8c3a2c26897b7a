"""What happens on 401 and 403: the one ``httpx2.Auth`` every MCP request of the broker goes
through — the bridge's (:mod:`broker.bridge.transport`), ``mcp-broker call``'s and the login's
probe (:mod:`broker.signin.flow`).

Per request, over a :class:`TokenSource`:

- a token valid for a while yet (the source answers from its cache and refreshes when needed);
  none (``InteractionRequired``): the request goes out without one, as any MCP client's first
  request does — a server that needs no authorization answers it;
- 401 to a request that carried a token: one renewed token (another than the refused one, or
  an error) and one retry; a second 401 means the user must sign in;
- 401 to a request without a token: the "not signed in" policy decides (by default: an error
  that names the command to sign in, with the scope the challenge asks for; the login's probe
  keeps the challenge and stops);
- 403 ``insufficient_scope``: one step-up (the union of the scopes held and the challenged ones,
  MCP authorization "Scope Challenge Handling") and one retry; a second 403 is an
  ``InsufficientScope`` error (RFC 6750 §3.1);
- a DPoP-bound token (RFC 9449, :mod:`broker.tokens.dpop`) goes as ``Authorization: DPoP`` with
  a fresh proof on every send, retried once with a new proof after a 401 ``use_dpop_nonce``.

Errors are :mod:`broker.errors` classes, raised out of the request. The token source's calls
block (keyring, refresh, browser sign-in): an async client runs them in a worker thread, so an
event loop is never blocked.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

import anyio.to_thread
import httpx2

from broker.errors import InsufficientScope, InteractionRequired
from broker.hints import login_command
from broker.oauth.www_authenticate import BearerChallenge, parse_bearer_challenge

logger = logging.getLogger(__name__)


class TokenSource(Protocol):
    """Where the handler gets tokens. Each call blocks; errors are :mod:`broker.errors` classes,
    ``InteractionRequired`` meaning the user must sign in.

    - :meth:`token`: a token valid for a while yet (cheap to ask before every request);
    - :meth:`renewed`: a token other than one the server just refused (401), or an error;
    - :meth:`stepped_up`: a token that also carries the scopes a 403 ``insufficient_scope``
      named (re-authorization with the union of the old and the challenged scopes).
    """

    resource: str

    def token(self) -> str: ...

    def renewed(self, refused: str) -> str: ...

    def stepped_up(self, refused: str, challenged_scope: str | None) -> str: ...

    def close(self) -> None: ...


class RequestProofs(Protocol):
    """DPoP on the requests of one token source (RFC 9449 §7, :mod:`broker.tokens.dpop`): a
    source whose tokens may be DPoP-bound offers one as its ``proofs`` attribute."""

    def attach(self, request: httpx2.Request, token: str) -> bool:
        """Sign ``request`` for a DPoP-bound ``token`` (True), or do nothing (False: Bearer)."""
        ...

    def nonce_challenged(self, request: httpx2.Request, response: httpx2.Response) -> bool:
        """Remember the ``DPoP-Nonce`` of the answer to ``request``; True for a 401
        ``use_dpop_nonce`` (§9)."""
        ...


NotSignedIn = Callable[[BearerChallenge | None, InteractionRequired], str | None]
"""What to do about a 401 to a request sent without a token: given the challenge (if any) and
why there was no token, return a token to retry with, return None to take the 401 as the
answer, or raise."""


def refuse_unsigned(resource: str) -> NotSignedIn:
    """The policy of MCP requests made for a client: the user is told how to sign in, with the
    scope the challenge names (the login's own probe may not be challenged for it)."""

    def refuse(challenge: BearerChallenge | None, needed: InteractionRequired) -> str | None:
        if challenge is None or not challenge.scope or "`mcp-broker " in str(needed):
            raise needed  # (the last: it names the command already, e.g. an IdP sign-in)
        command = login_command(resource, challenge.scope.split())
        raise InteractionRequired(
            f"not signed in to {resource}, which asks for the scope {challenge.scope}; "
            f"run `{command}`"
        )

    return refuse


@dataclass(frozen=True)
class _Call:
    """A blocking step of the flow: run inline (sync) or in a worker thread (async); what it
    raises is raised into the flow."""

    fn: Callable[[], Any]


_Step = httpx2.Request | _Call


class BrokerAuth(httpx2.Auth):
    requires_request_body = True  # the body may have to be sent again after a 401 or 403

    def __init__(self, tokens: TokenSource, when_not_signed_in: NotSignedIn | None = None) -> None:
        self.tokens = tokens
        self._when_not_signed_in = when_not_signed_in or refuse_unsigned(tokens.resource)
        self._proofs: RequestProofs | None = getattr(tokens, "proofs", None)

    def _exchange(
        self, request: httpx2.Request, token: str | None
    ) -> Generator[_Step, Any, httpx2.Response]:
        """Send ``request`` with ``token``: as ``DPoP`` with a fresh proof when it is bound, and
        once more with a new proof after a ``use_dpop_nonce`` answer (RFC 9449 §9)."""
        proofs = self._proofs
        if not (token and proofs is not None and proofs.attach(request, token)):
            _attach(request, token)
        response: httpx2.Response = yield request
        challenged = proofs is not None and proofs.nonce_challenged(request, response)
        if challenged and token and proofs is not None and proofs.attach(request, token):
            response = yield request
            proofs.nonce_challenged(request, response)  # its nonce is remembered; no second retry
        return response

    def _flow(self, request: httpx2.Request) -> Generator[_Step, Any, None]:
        tokens = self.tokens
        token: str | None
        not_signed_in: InteractionRequired | None = None
        try:
            token = yield _Call(tokens.token)
        except InteractionRequired as needed:
            token, not_signed_in = None, needed
        response: httpx2.Response = yield from self._exchange(request, token)
        if response.status_code == 401:
            challenge = _challenge(response)
            if token is None:
                assert not_signed_in is not None
                token = yield _Call(partial(self._when_not_signed_in, challenge, not_signed_in))
                if token is None:
                    return
            else:
                token = yield _Call(partial(tokens.renewed, token))
            response = yield from self._exchange(request, token)
            if response.status_code == 401:
                raise InteractionRequired(
                    f"{tokens.resource} refused a fresh token from the broker"
                )
        challenge = _challenge(response)
        if (
            response.status_code == 403
            and token is not None
            and challenge is not None
            and challenge.insufficient_scope
        ):
            token = yield _Call(partial(tokens.stepped_up, token, challenge.scope))
            response = yield from self._exchange(request, token)
            if response.status_code == 403:
                raise InsufficientScope(
                    f"{tokens.resource} still refuses the request after signing in "
                    f"again with the scope {challenge.scope or '(unnamed)'}"
                )

    def sync_auth_flow(
        self, request: httpx2.Request
    ) -> Generator[httpx2.Request, httpx2.Response, None]:
        flow = self._flow(request)
        sent: Any = None
        error: BaseException | None = None
        while True:
            try:
                step = flow.throw(error) if error is not None else flow.send(sent)
            except StopIteration:
                return
            sent, error = None, None
            if isinstance(step, _Call):
                try:
                    sent = step.fn()
                except Exception as exc:
                    error = exc
            else:
                sent = yield step

    async def async_auth_flow(
        self, request: httpx2.Request
    ) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        flow = self._flow(request)
        sent: Any = None
        error: BaseException | None = None
        while True:
            try:
                step = flow.throw(error) if error is not None else flow.send(sent)
            except StopIteration:
                return
            sent, error = None, None
            if isinstance(step, _Call):
                try:
                    sent = await anyio.to_thread.run_sync(step.fn)
                except Exception as exc:
                    error = exc
            else:
                sent = yield step


def send_signed(
    auth: BrokerAuth, request: httpx2.Request, send: Callable[[httpx2.Request], httpx2.Response]
) -> httpx2.Response:
    """Send ``request`` through ``auth`` with ``send`` (one exchange per call, each within its
    own limits; the token source's calls happen between them)."""
    flow = auth.sync_auth_flow(request)
    try:
        outgoing = next(flow)
        while True:
            response = send(outgoing)
            try:
                outgoing = flow.send(response)
            except StopIteration:
                return response
            except BaseException:
                response.close()
                raise
            response.close()
    finally:
        flow.close()


async def asend_signed(
    auth: BrokerAuth,
    request: httpx2.Request,
    send: Callable[[httpx2.Request], Awaitable[httpx2.Response]],
) -> httpx2.Response:
    """Send ``request`` through ``auth`` with ``send`` (a transport's, for a layer that must
    answer every request itself); a response that is not the answer is closed."""
    flow = auth.async_auth_flow(request)
    try:
        outgoing = await flow.__anext__()
        while True:
            response = await send(outgoing)
            try:
                outgoing = await flow.asend(response)
            except StopAsyncIteration:
                return response
            except BaseException:
                await response.aclose()
                raise
            await response.aclose()
    finally:
        await flow.aclose()


class Unsigned:
    """No token at all: requests go out without one (the login's probe)."""

    def __init__(self, resource: str) -> None:
        self.resource = resource

    def token(self) -> str:
        raise InteractionRequired(f"not signed in to {self.resource}")

    def renewed(self, refused: str) -> str:
        raise InteractionRequired(f"not signed in to {self.resource}")

    def stepped_up(self, refused: str, challenged_scope: str | None) -> str:
        raise InteractionRequired(f"not signed in to {self.resource}")

    def close(self) -> None:
        pass


class HandedToken:
    """A token someone handed over (e.g. the token API's answer), used as it is: renewing or
    widening it is the giver's business."""

    def __init__(self, resource: str, token: str) -> None:
        self.resource = resource
        self._token = token

    def token(self) -> str:
        return self._token

    def renewed(self, refused: str) -> str:
        raise InteractionRequired(f"{self.resource} refused the token")

    def stepped_up(self, refused: str, challenged_scope: str | None) -> str:
        raise InsufficientScope(
            f"{self.resource} wants the scope {challenged_scope or '(unnamed)'}, "
            "which the token lacks"
        )

    def close(self) -> None:
        pass


def _attach(request: httpx2.Request, token: str | None) -> None:
    if token:
        request.headers["Authorization"] = f"Bearer {token}"
    else:
        request.headers.pop("Authorization", None)


def _challenge(response: httpx2.Response) -> BearerChallenge | None:
    return parse_bearer_challenge(response.headers.get_list("www-authenticate"))
