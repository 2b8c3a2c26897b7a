"""The HTTP headers a relayed message needs on the Streamable HTTP side (MCP transports,
"Protocol Version Header" and, from 2026-07-28, the routing headers).

Over stdio a message is only its JSON-RPC body; over HTTP a client also sends
``MCP-Protocol-Version`` (the version negotiated by ``initialize``, or for the per-request
envelope of 2026-07-28 the version in ``params._meta``), ``Mcp-Method``, ``Mcp-Name`` and the
``Mcp-Param-*`` headers a tool's ``x-mcp-header`` annotations ask for. The SDK's client session
computes these for the messages it writes itself; the bridge relays messages it did not write,
so :class:`RoutingHeaders` derives them from the bodies, learning the negotiated version and the
tools' annotations from the answers that pass back. The header rules and codecs are the SDK's
(:mod:`mcp.shared.inbound`), so both ends read the same source of truth.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from mcp.shared.inbound import (
    MCP_METHOD_HEADER,
    MCP_NAME_HEADER,
    MCP_PROTOCOL_VERSION_HEADER,
    NAME_BEARING_METHODS,
    encode_header_value,
    find_invalid_x_mcp_header,
    mcp_param_headers,
    x_mcp_header_map,
)
from mcp_types import (
    PROTOCOL_VERSION_META_KEY,
    JSONRPCMessage,
    JSONRPCNotification,
    JSONRPCRequest,
    JSONRPCResponse,
    RequestId,
)
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

logger = logging.getLogger(__name__)


class RoutingHeaders:
    """Per-session header state: one instance per bridged session."""

    def __init__(self) -> None:
        self.negotiated_version: str | None = None
        # client request id -> (method, its envelope's version), until answered
        self._asked: dict[RequestId, tuple[str, str | None]] = {}
        self._param_headers: dict[str, dict[tuple[str, ...], str]] = {}  # tool -> header map

    def for_client_message(self, message: JSONRPCMessage) -> dict[str, str]:
        """Headers for a message from the stdio client to the HTTP server."""
        headers: dict[str, str] = {}
        if not isinstance(message, JSONRPCRequest | JSONRPCNotification):
            if self.negotiated_version:
                headers[MCP_PROTOCOL_VERSION_HEADER] = self.negotiated_version
            return headers
        params = message.params or {}
        version = _envelope_version(params)
        if isinstance(message, JSONRPCRequest):
            self._asked[message.id] = (message.method, version)
        if version is not None:
            headers.update(self._routing(message.method, params))
            headers[MCP_PROTOCOL_VERSION_HEADER] = version
        elif self.negotiated_version and message.method != "initialize":
            headers[MCP_PROTOCOL_VERSION_HEADER] = self.negotiated_version
        return headers

    def observe_server_message(self, message: JSONRPCMessage) -> JSONRPCMessage:
        """Learn from an answer on its way back (the negotiated version, tools' annotations);
        return the message to relay: unchanged, except a 2026-07-28 tool listing, from which
        tools with invalid ``x-mcp-header`` annotations are dropped (SEP-2243: a client MUST
        exclude them; the bridge is the HTTP client that would have to send those headers)."""
        if isinstance(message, JSONRPCRequest | JSONRPCNotification) or message.id is None:
            return message
        method, version = self._asked.pop(message.id, (None, None))
        if not isinstance(message, JSONRPCResponse):
            return message
        result = message.result
        if method == "initialize" and isinstance(result.get("protocolVersion"), str):
            self.negotiated_version = result["protocolVersion"]
        elif method == "tools/list" and isinstance(result.get("tools"), list):
            modern = (version or self.negotiated_version) in MODERN_PROTOCOL_VERSIONS
            kept = self._learn_tools(result["tools"], drop_invalid=modern)
            if len(kept) != len(result["tools"]):
                return message.model_copy(update={"result": {**result, "tools": kept}})
        return message

    def _routing(self, method: str, params: Mapping[str, Any]) -> dict[str, str]:
        headers = {MCP_METHOD_HEADER: method}
        name_key = NAME_BEARING_METHODS.get(method)
        name = params.get(name_key) if name_key else None
        if isinstance(name, str):
            headers[MCP_NAME_HEADER] = encode_header_value(name)
        if method == "tools/call" and isinstance(name, str) and name in self._param_headers:
            arguments = params.get("arguments")
            if isinstance(arguments, Mapping):
                headers.update(mcp_param_headers(self._param_headers[name], arguments))
        return headers

    def _learn_tools(self, tools: list[Any], *, drop_invalid: bool) -> list[Any]:
        """Remember each tool's ``x-mcp-header`` map; the tools to offer the client."""
        kept: list[Any] = []
        for tool in tools:
            if not isinstance(tool, Mapping) or not isinstance(tool.get("name"), str):
                kept.append(tool)
                continue
            schema = tool.get("inputSchema")
            reason = find_invalid_x_mcp_header(schema)
            if reason is None:
                self._param_headers[tool["name"]] = x_mcp_header_map(schema)
                kept.append(tool)
                continue
            self._param_headers.pop(tool["name"], None)
            if drop_invalid:
                logger.warning("not offering the tool %r: %s", _printable(tool["name"]), reason)
            else:
                kept.append(tool)
        return kept


def _printable(text: str) -> str:
    return "".join(ch for ch in text if ch.isprintable())


def _envelope_version(params: Mapping[str, Any]) -> str | None:
    """The protocol version of a 2026-07-28 per-request envelope (``params._meta``), if any."""
    meta = params.get("_meta")
    if isinstance(meta, Mapping):
        version = meta.get(PROTOCOL_VERSION_META_KEY)
        if isinstance(version, str):
            return version
    return None
