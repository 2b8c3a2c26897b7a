"""The v1 endpoints (DESIGN §3): ``POST /v1/token``, ``GET /v1/status``, ``GET /v1/hello``,
``GET /v1/openapi.json``."""

from __future__ import annotations

import os
import re
import time

from flask import Blueprint, Response, request

from broker import errors
from broker.api.context import api_context
from broker.api.endpoint import hello_proof
from broker.api.openapi import openapi_document
from broker.api.responses import json_response
from broker.api.token import answer_token, bounded

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
    "user",
    "machine",
    "name",
    "dpop_bound",
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
    """Served by :func:`broker.api.token.token_fast_path` before Flask sees it; this view is
    the same endpoint in Flask's terms (for ``create_app(fast_token_path=False)``)."""
    return json_response(200, answer_token(api_context(), request.environ))


@v1.get("/status")
def status() -> Response:
    ctx = api_context()
    client = ctx.authenticate(request.environ)
    rows = bounded(ctx, "status", ctx.provider.status)
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
