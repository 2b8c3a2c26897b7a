"""``POST /v1/token`` (DESIGN §3): what it answers, and the WSGI fast path that serves it.

:func:`answer_token` is the endpoint: authenticate, parse the body strictly, check the client's
scope and consent, take the token (recent or from the provider), write the audit record. It
returns the 200 body or raises the :class:`~broker.errors.BrokerError` to answer with (its
class says how, :mod:`broker.errors`).

:func:`token_fast_path` serves exactly ``POST /v1/token`` without Flask: a cached-token request
does little work of its own, and Flask's routing, request context and response object cost more
than all of it (a bare Flask view is the benchmark's baseline, README "Benchmarks"). It sits
behind the request guards like every other request and calls the same :func:`answer_token`;
its responses come from :func:`broker.api.responses.json_parts`, as the Flask views' do, so the
status line, headers and body are byte for byte what the Flask view of the same request gives
(``tests/broker/api/test_token_fast_path.py`` runs one request matrix through both).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from broker import errors
from broker.api.body import TokenRequest, parse_token_request
from broker.api.clients import Client, Verdict
from broker.api.context import ApiContext
from broker.api.provider import Busy
from broker.api.responses import WsgiApp, error_parts, json_parts, send, unexpected_parts
from broker.hints import login_command
from broker.oauth.scopes import is_scope_of
from broker.tokens.dpop import is_bound, refuse_bound
from broker.tokens.tokenset import TokenSet

T = TypeVar("T")

TOKEN_PATH = "/v1/token"  # noqa: S105 - a URL path, not a secret


def answer_token(ctx: ApiContext, environ: dict[str, Any]) -> dict[str, Any]:
    """The body of the 200 answer to a ``POST /v1/token`` that passed the request guards."""
    client = ctx.authenticate(environ)
    wanted = parse_token_request(read_body(environ))
    _authorize(ctx, client, wanted.resource)
    tokens = _fetch(ctx, client, wanted)
    if is_bound(tokens):
        ctx.clients.audit.record(client.name, wanted.resource, errors.DpopBound.wire_error)
        refuse_bound(tokens)
    ctx.clients.audit.record(client.name, wanted.resource, "granted")
    return _token_body(tokens, wanted.resource)


def token_fast_path(wsgi_app: WsgiApp, ctx: ApiContext) -> WsgiApp:
    """``wsgi_app`` with ``POST /v1/token`` answered directly; everything else goes on to it.

    ``PATH_INFO`` is what Flask routes on too (``SCRIPT_NAME`` is only a prefix to it), so the
    requests taken here are exactly those the ``v1.token`` view would get. Errors are answered
    as the app's error handlers answer them, unexpected ones logged as ``_unexpected`` does.
    """

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != TOKEN_PATH or environ.get("REQUEST_METHOD") != "POST":
            return wsgi_app(environ, start_response)
        try:
            parts = json_parts(200, answer_token(ctx, environ))
        except errors.BrokerError as exc:
            parts = error_parts(exc)
        except Exception as exc:
            parts = unexpected_parts("POST", TOKEN_PATH, exc)
        return send(start_response, parts)

    return app


def read_body(environ: dict[str, Any]) -> bytes:
    """The request body. The guards checked Content-Length (<= 64 KiB) and waitress delivers
    exactly that many bytes (it de-chunks and limits bodies itself), so read it directly:
    werkzeug's stream wrappers cost more than the rest of a cached-token request."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    data: bytes = environ["wsgi.input"].read(length) if length else b""
    return data


def bounded(ctx: ApiContext, key: str, fn: Callable[[], T]) -> T:
    """``fn()`` on the provider threads, waited on for at most the call timeout (#31)."""
    try:
        return ctx.calls.call(key, fn, ctx.call_timeout)
    except Busy as exc:
        raise errors.ApiBusy(f"{exc} (a keyring prompt may be waiting); retry") from None


def _authorize(ctx: ApiContext, client: Client, resource: str) -> None:
    verdict = ctx.clients.check(client, resource)
    if verdict is Verdict.ALLOWED:
        return
    ctx.clients.audit.record(client.name, resource, verdict.value)
    if verdict is Verdict.CONSENT_REQUIRED:
        raise errors.ConsentRequired(
            f"the user has not yet allowed client {client.name!r} this server; they are "
            f"being asked (or run: mcp-broker clients allow {client.name} {resource})"
        )
    if verdict is Verdict.DENIED:
        raise errors.ClientNotAllowed("the user denied this client this server")
    raise errors.ClientNotAllowed(f"client {client.name!r} is not allowed this server")


def _fetch(ctx: ApiContext, client: Client, wanted: TokenRequest) -> TokenSet:
    tokens = ctx.recent.get(wanted.resource, wanted.min_valid)
    if tokens is None:
        tokens = _ask_provider(ctx, client, wanted)
    held = tokens.scope.split() if tokens.scope is not None else None
    missing = sorted(wanted.scope - set(held)) if wanted.scope and held is not None else []
    if missing:
        ctx.clients.audit.record(client.name, wanted.resource, "insufficient_scope")
        if all(is_scope_of(scope, wanted.resource) for scope in missing):
            # Step-up: the tray offers a sign-in that adds these. Only scopes named under this
            # server's own identifier (Cognito's resource-server scopes are "<identifier>/x"):
            # a client must not get the user to grant scopes meant for another server.
            ctx.interaction_required(wanted.resource, client.name, " ".join(missing))
            how = "the broker's tray offers a sign-in that adds it"
        else:
            how = "the broker does not offer this scope in its tray"
        raise errors.InsufficientScope(
            f"the current sign-in lacks the scope {' '.join(missing)}; {how} (or run: "
            f"{login_command(wanted.resource, missing)})"
        )
    return tokens


def _ask_provider(ctx: ApiContext, client: Client, wanted: TokenRequest) -> TokenSet:
    try:
        call = functools.partial(ctx.provider.token, wanted.resource, wanted.min_valid)
        tokens = bounded(ctx, f"token {wanted.min_valid} {wanted.resource}", call)
    except errors.ApiBusy:
        ctx.recent.forget(wanted.resource)
        raise
    except errors.BrokerError as exc:
        # Answered as its class says (broker/errors.py); the message was written to be shown.
        ctx.recent.forget(wanted.resource)
        ctx.clients.audit.record(client.name, wanted.resource, exc.wire_error)
        if isinstance(exc, errors.AuthorizationError):
            ctx.interaction_required(wanted.resource, client.name)
        raise
    if tokens.key.resource != wanted.resource:
        # Never hand out a token kept for another server, whatever the token side did (#20, #30).
        ctx.clients.audit.record(client.name, wanted.resource, "wrong_resource")
        raise errors.ApiServerError("the token side answered for another server; refused")
    ctx.recent.put(wanted.resource, tokens)
    return tokens


def _token_body(tokens: TokenSet, resource: str) -> dict[str, Any]:
    now = time.time()
    token_type = "Bearer" if tokens.token_type.lower() == "bearer" else tokens.token_type
    return {
        "access_token": tokens.access_token,
        "token_type": token_type,
        "expires_in": max(0, int(tokens.expires_at - now)),
        "expires_at": int(tokens.expires_at),
        "scope": tokens.scope,
        "resource": resource,
    }
