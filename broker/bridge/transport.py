"""The bridge's HTTP layer: every request to the MCP server goes through the broker's one
401/403 handler (:class:`broker.signin.httpauth.BrokerAuth`) with the bridge's token source.

A transport (the layer under the client, above the sockets) that drives the handler itself,
rather than the handler set on the client: when no token can be had, the bridge must still
*answer*, and the relay (:mod:`broker.bridge.streamable`) turns a 4xx response whose body is a
JSON-RPC error into that error for the one request that was sent (MCP transports: "the server
MAY return a JSON-RPC error in the body"), as any Streamable HTTP client does. So a refusal here
is a local response carrying a JSON-RPC error that tells the user how to sign in, and the
session lives on; once the user has signed in, the next request simply works. Whatever else
goes wrong under it (the server unreachable, an answer that cannot be read, an exception nobody
expected, from the token source or a bug) is answered the same way: one request fails, with a
message saying why, never the session.
"""

from __future__ import annotations

import json
import logging
import re

import httpx2

from broker.bridge.failures import (
    BRIDGE_FAILED,
    BROKER_UNAVAILABLE,
    SIGN_IN_REQUIRED,
    unexpected,
)
from broker.bridge.prompt_ack import PromptAckTransport
from broker.bridge.tokens import sign_in_hint
from broker.errors import AuthorizationError, BrokerError, ServerUnreachable
from broker.safetext import safe_text
from broker.signin.httpauth import BrokerAuth, TokenSource, asend_signed

logger = logging.getLogger(__name__)

__all__ = ["BRIDGE_FAILED", "BROKER_UNAVAILABLE", "SIGN_IN_REQUIRED", "BrokerTokenTransport"]

# The broker's messages end in "; sign in with: mcp-broker login URL": the refusal says it better.
_REPEATED_HINT = re.compile(r"[;.]?\s*sign in with: mcp-broker login \S+$", re.IGNORECASE)


class BrokerTokenTransport(httpx2.AsyncBaseTransport):
    """Sign each request with a broker token; answer with a JSON-RPC error when none can be had."""

    def __init__(self, tokens: TokenSource, inner: httpx2.AsyncBaseTransport | None = None) -> None:
        self._tokens = tokens
        self._auth = BrokerAuth(tokens)
        self._inner = inner or PromptAckTransport()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        # Every exception is answered: one raised here would end the whole session.
        resource = self._tokens.resource
        try:
            await request.aread()  # the body may have to be sent again after a 401 or 403
            return await asend_signed(self._auth, request, self._inner.handle_async_request)
        except BrokerError as exc:
            return refusal(request, exc, resource)
        except httpx2.TransportError as exc:
            unreachable = ServerUnreachable(f"could not reach {resource} ({type(exc).__name__})")
            return refusal(request, unreachable, resource)
        except httpx2.HTTPError as exc:  # DecodingError, TooManyRedirects, ...
            unreadable = ServerUnreachable(
                f"could not read {resource}'s answer ({type(exc).__name__})"
            )
            return refusal(request, unreadable, resource)
        except Exception as exc:
            text = unexpected(logger, "while sending a request", exc, _credentials(request))
            return _error_response(request, 500, BRIDGE_FAILED, text, resource, type(exc).__name__)

    async def aclose(self) -> None:
        await self._inner.aclose()


def refusal(request: httpx2.Request, exc: BrokerError, resource: str) -> httpx2.Response:
    """A local 4xx whose body is the JSON-RPC error the MCP client will see for its request.

    The id is null: the relay answers the request it sent with this error (as it does any
    JSON-RPC error a server returns with a 4xx).
    """
    needs_user = isinstance(exc, AuthorizationError)
    reason = safe_text(_REPEATED_HINT.sub("", str(exc)))
    if needs_user:
        text = f"mcp-broker: {reason}. To continue, {sign_in_hint(resource)}, then retry."
    else:
        text = f"mcp-broker: {reason}"
    logger.warning("%s", text)
    return _error_response(
        request,
        401 if needs_user else 503,
        SIGN_IN_REQUIRED if needs_user else BROKER_UNAVAILABLE,
        text,
        resource,
        _reason(exc, needs_user),
    )


def _error_response(
    request: httpx2.Request, status: int, code: int, text: str, resource: str, reason: str
) -> httpx2.Response:
    error = {"code": code, "message": text, "data": {"resource": resource, "reason": reason}}
    body = json.dumps({"jsonrpc": "2.0", "id": None, "error": error})
    return httpx2.Response(
        status,
        headers={"content-type": "application/json"},
        content=body.encode(),
        request=request,
    )


def _credentials(request: httpx2.Request) -> list[str]:
    """What the request carried last that a log must not show: its token and DPoP proof."""
    values = [request.headers.get("authorization", ""), request.headers.get("dpop", "")]
    return [value.partition(" ")[2] or value for value in values if value]


def _reason(exc: BrokerError, needs_user: bool) -> str:
    """The authorization server's own code where it gave one, else the token API's code for a
    sign-in the user must do (:mod:`broker.errors`), else the error's name."""
    code = getattr(exc, "error", None)  # TokenRequestFailed, AuthorizationDenied: the AS's
    if isinstance(code, str) and code:
        return code
    return exc.wire_error if needs_user else type(exc).__name__
