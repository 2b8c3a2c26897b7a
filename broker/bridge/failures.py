"""The errors the bridge answers with itself, and what an unexpected exception becomes.

Every request the MCP client sends gets exactly one answer: the server's, or a JSON-RPC error
(JSON-RPC 2.0 §5.1) from this table. The standard codes are used as the mcp SDK's client
transport uses them; the bridge's own refusals sit in the implementation-defined band
-32000..-32099 at -32010 and up (the SDK uses -32000 and -32001).

An exception nobody expected (a bug, a malformed answer no check foresaw, a token source that
raised something other than a :class:`~broker.errors.BrokerError`) is logged with its traceback,
credentials scrubbed from it, and answered as :data:`BRIDGE_FAILED` for the one request it hit;
the session goes on.
"""

from __future__ import annotations

import logging
import re
import traceback
from collections.abc import Iterable
from typing import Any

from broker.safetext import safe_lines, safe_text

# JSON-RPC 2.0 §5.1, and the mcp SDK's CONNECTION_CLOSED.
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INTERNAL_ERROR = -32603
CONNECTION_CLOSED = -32000
#: The user must sign in (the message says how).
SIGN_IN_REQUIRED = -32010
#: The broker cannot get a token now, or the server cannot be reached.
BROKER_UNAVAILABLE = -32011
#: An unexpected error in the bridge itself; its log has the traceback.
BRIDGE_FAILED = -32012

# What could carry a credential into an exception's text: an Authorization value (h11 quotes a
# header it refuses), a JWT or JWS (access tokens, DPoP proofs).
_AUTH_VALUE = re.compile(r"(?i)\b(bearer|dpop)(\s+)[A-Za-z0-9\-._~+/]+=*")
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]*)?")
REDACTED = "[redacted]"


def error_message(request_id: Any, code: int, text: str) -> dict[str, Any]:
    """A JSON-RPC error response to ``request_id``."""
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": text}}


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` without ``secrets`` and anything shaped like a credential."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    text = _AUTH_VALUE.sub(rf"\1\2{REDACTED}", text)
    return _JWT.sub(REDACTED, text)


def innermost(exc: BaseException) -> BaseException:
    """The exception inside task-group wrappers that hold only one."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def describe(exc: BaseException, secrets: Iterable[str] = ()) -> str:
    """``Type: message`` on one line, scrubbed, for a log or stderr line."""
    exc = innermost(exc)
    text = str(exc)
    line = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return safe_text(scrub(line, secrets), 300)


def unexpected(
    logger: logging.Logger, doing: str, exc: BaseException, secrets: Iterable[str] = ()
) -> str:
    """Log an unexpected ``exc`` (what the bridge was ``doing``) with its traceback, scrubbed;
    return the message for the JSON-RPC error that answers the request it hit. The message names
    only the exception's type: the client (and the model behind it) never sees its text."""
    secrets = tuple(secrets)
    trace = "".join(traceback.format_exception(exc))
    logger.error("unexpected error %s:\n%s", doing, safe_lines(scrub(trace, secrets)).rstrip())
    return (
        f"mcp-broker: the bridge failed on an unexpected error ({type(innermost(exc)).__name__}) "
        f"{doing}; this request was not completed, the session goes on. The bridge's log "
        "(stderr) has the details."
    )
