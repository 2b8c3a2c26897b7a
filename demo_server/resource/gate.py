"""ASGI middleware in front of the MCP app: the loopback guard and the bearer gate.

- ``LoopbackGuard`` refuses any request whose ``Host`` or ``Origin`` is not this loopback server
  (DNS rebinding, MCP security best practices), on every path, the metadata routes included.
- ``BearerGate`` protects everything but the metadata routes (RFC 6750 §2.1 header tokens only):
  401 without a valid token, 403 ``insufficient_scope`` without the base scope, and — for a JSON-RPC
  ``tools/call`` of a tool that needs more — 403 naming the extra scopes before the SDK sees the
  call, so a client can step up (RFC 6750 §3.1, MCP authorization "Scope challenge handling").
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import TokenVerifier
from mcp.server.transport_security import DEFAULT_MAX_REQUEST_BODY_SIZE, TransportSecurityMiddleware
from starlette.authentication import AuthCredentials
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from demo_server.resource.challenges import insufficient_scope, unauthorized
from demo_server.resource.dpop import ResourceDpop, presented_token
from demo_server.resource.settings import ResourceSettings

logger = logging.getLogger(__name__)


class LoopbackGuard:
    """Answer 421/403 to a request whose Host or Origin is not allowlisted (the SDK's check)."""

    def __init__(self, app: ASGIApp, security: TransportSecurityMiddleware) -> None:
        self.app = app
        self.security = security

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refusal = await self.security.validate_request(Request(scope), is_post=False)
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)


class BearerGate:
    """Authenticate with the token verifier; challenge with 401/403 as RFC 6750 §3 describes."""

    def __init__(
        self,
        app: ASGIApp,
        settings: ResourceSettings,
        verifier: TokenVerifier,
        public_paths: Sequence[str],
        tool_scopes: Mapping[str, Sequence[str]],
    ) -> None:
        self.app = app
        self.settings = settings
        self.verifier = verifier
        self.public_paths = frozenset(public_paths)
        self.tool_scopes = tool_scopes
        self.dpop = ResourceDpop(settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.public_paths:
            await self.app(scope, receive, send)
            return
        conn = HTTPConnection(scope)
        presented = presented_token(conn)
        access = await self.verifier.verify_token(presented.token) if presented else None
        if access is None:
            refused = unauthorized(self.settings, token_presented=presented is not None)
            await self.dpop.with_challenge(refused)(scope, receive, send)
            return
        refusal = self.dpop.refusal(conn, presented, access) if presented else None
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        credentials, user = AuthCredentials(access.scopes), AuthenticatedUser(access)
        needed = [self.settings.tools_scope]
        if scope["method"] == "POST":
            body = await read_body(receive)
            if body is None:
                await Response("Request body too large", status_code=413)(scope, receive, send)
                return
            needed += scopes_for_tool_calls(body, self.tool_scopes)
            receive = replay(body, receive)
        if not set(needed) <= set(credentials.scopes):
            logger.info(
                "refused a request lacking scopes %s", sorted(set(needed) - set(credentials.scopes))
            )
            await insufficient_scope(self.settings, needed)(scope, receive, send)
            return
        scope["user"], scope["auth"] = user, credentials
        await self.app(scope, receive, send)


def scopes_for_tool_calls(body: bytes, tool_scopes: Mapping[str, Sequence[str]]) -> list[str]:
    """Extra scopes the JSON-RPC ``tools/call`` messages in ``body`` need (batches included)."""
    try:
        parsed: Any = json.loads(body)
    except ValueError:
        return []  # not JSON: the SDK answers with a parse error
    messages = parsed if isinstance(parsed, list) else [parsed]
    needed: list[str] = []
    for message in messages:
        if not isinstance(message, dict) or message.get("method") != "tools/call":
            continue
        params = message.get("params")
        name = params.get("name") if isinstance(params, dict) else None
        for extra in tool_scopes.get(name, ()) if isinstance(name, str) else ():
            if extra not in needed:
                needed.append(extra)
    return needed


async def read_body(receive: Receive, limit: int = DEFAULT_MAX_REQUEST_BODY_SIZE) -> bytes | None:
    """The whole request body, or ``None`` when it is larger than ``limit``."""
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return bytes(body)
        body.extend(message.get("body", b""))
        if len(body) > limit:
            return None
        if not message.get("more_body", False):
            return bytes(body)


def replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that yields the already-read body once, then the real messages (disconnect)."""
    sent = False

    async def replaying() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replaying
