"""The v1 endpoints (DESIGN §3): ``POST /v1/token``, ``GET /v1/status``, ``GET /v1/hello``,
``GET /v1/openapi.json``."""

from __future__ import annotations

import functools
import os
import re
import time
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Blueprint, Response, request

from broker import errors as broker_errors
from broker.api import errors
from broker.api.app import ApiContext, api_context, json_response
from broker.api.body import TokenRequest, parse_token_request
from broker.api.openapi import openapi_document
from broker.api.provider import Busy
from broker.clients import Client, Verdict
from broker.endpoint import hello_proof
from broker.tokens import TokenSet

T = TypeVar("T")

v1 = Blueprint("v1", __name__, url_prefix="/v1")

_NONCE = re.compile(r"[A-Za-z0-9_-]{16,128}")
_STATUS_FIELDS = (
    "url",
    "state",
    "issuer",
    "client_id",
    "provider",
    "reason",
    "expires_at",
    "scope",
)


@v1.get("/hello")
def hello() -> Response:
    """Proves to a client that this server knows its secret, before the client sends it."""
    nonce = request.headers.get("X-MCP-Broker-Nonce", "")
    if not _NONCE.fullmatch(nonce):
        raise errors.InvalidRequest("X-MCP-Broker-Nonce must be 16-128 URL-safe characters")
    ctx = api_context()
    key = ctx.clients.hello_key(request.headers.get("X-MCP-Broker-Client"))
    proof = hello_proof(key or os.urandom(32), ctx.port, nonce)
    return json_response(200, {"api_version": 1, "pid": os.getpid(), "proof": proof})


@v1.get("/openapi.json")
def openapi() -> Response:
    return json_response(200, openapi_document(api_context().port))


@v1.post("/token")
def token() -> Response:
    ctx, environ = api_context(), request.environ  # proxies cost: look them up once
    client = ctx.authenticate(environ)
    wanted = parse_token_request(_body(environ))
    _authorize(ctx, client, wanted.resource)
    tokens = _fetch(ctx, client, wanted)
    ctx.clients.audit.record(client.name, wanted.resource, "granted")
    return json_response(200, _token_body(tokens, wanted.resource))


@v1.get("/status")
def status() -> Response:
    ctx = api_context()
    client = ctx.authenticate(request.environ)
    rows = _bounded(ctx, "status", ctx.provider.status)
    visible = set(ctx.clients.visible_to(client, [row.url for row in rows]))
    now = time.time()
    servers = []
    for row in rows:
        if row.url not in visible:
            continue
        item = {name: getattr(row, name, None) for name in _STATUS_FIELDS}
        expires_at = item["expires_at"]
        item["expires_in"] = None if expires_at is None else max(0, int(expires_at - now))
        servers.append(item)
    return json_response(200, {"servers": servers})


# -- helpers ------------------------------------------------------------------------------------


def _body(environ: dict[str, Any]) -> bytes:
    """The request body. The guards checked Content-Length (<= 64 KiB) and waitress delivers
    exactly that many bytes (it de-chunks and limits bodies itself), so read it directly:
    werkzeug's stream wrappers cost more than the rest of a cached-token request."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    data: bytes = environ["wsgi.input"].read(length) if length else b""
    return data


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
        raise errors.AccessDenied("the user denied this client this server")
    raise errors.AccessDenied(f"client {client.name!r} is not allowed this server")


def _fetch(ctx: ApiContext, client: Client, wanted: TokenRequest) -> TokenSet:
    tokens = ctx.recent.get(wanted.resource, wanted.min_valid)
    if tokens is None:
        tokens = _ask_provider(ctx, client, wanted)
    if wanted.scope and tokens.scope is not None and not wanted.scope <= set(tokens.scope.split()):
        ctx.clients.audit.record(client.name, wanted.resource, "insufficient_scope")
        raise errors.InsufficientScope(
            "the stored token lacks some of these scopes; sign in again: "
            f"mcp-broker login {wanted.resource}"
        )
    return tokens


def _ask_provider(ctx: ApiContext, client: Client, wanted: TokenRequest) -> TokenSet:
    try:
        call = functools.partial(ctx.provider.token, wanted.resource, wanted.min_valid)
        tokens = _bounded(ctx, f"token {wanted.min_valid} {wanted.resource}", call)
    except errors.TemporarilyUnavailable:
        ctx.recent.forget(wanted.resource)
        raise
    except broker_errors.BrokerError as exc:
        ctx.recent.forget(wanted.resource)
        ctx.clients.audit.record(client.name, wanted.resource, _outcome(exc))
        if isinstance(exc, broker_errors.AuthorizationError):
            ctx.interaction_required(wanted.resource, client.name)
        raise _http_error_for(exc) from None
    if tokens.key.resource != wanted.resource:
        # Never hand out a token kept for another server, whatever the token side did (#20, #30).
        ctx.clients.audit.record(client.name, wanted.resource, "wrong_resource")
        raise errors.ServerError("the token side answered for another server; refused")
    ctx.recent.put(wanted.resource, tokens)
    return tokens


def _bounded(ctx: ApiContext, key: str, fn: Callable[[], T]) -> T:
    try:
        return ctx.calls.call(key, fn, ctx.call_timeout)
    except Busy as exc:
        raise errors.TemporarilyUnavailable(
            f"{exc} (a keyring prompt may be waiting); retry"
        ) from None


def _http_error_for(exc: broker_errors.BrokerError) -> errors.HttpError:
    message = str(exc)  # BrokerError messages are written to be shown
    if isinstance(exc, broker_errors.InsufficientScope):
        return errors.InsufficientScope(message)
    if isinstance(exc, broker_errors.AuthorizationError):
        return errors.InteractionRequired(message)
    if isinstance(exc, broker_errors.ConfigError):
        return errors.InvalidTarget(message)
    retry = 5 if isinstance(exc, broker_errors.StorageError) else 10
    return errors.TemporarilyUnavailable(message, retry_after=retry)


def _outcome(exc: broker_errors.BrokerError) -> str:
    return _http_error_for(exc).error


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
