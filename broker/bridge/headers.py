"""The HTTP headers a relayed message needs on the Streamable HTTP side (MCP transports,
"Protocol Version Header" and, from 2026-07-28, the routing headers).

Over stdio a message is only its JSON-RPC body; over HTTP a client also sends
``MCP-Protocol-Version`` (the version negotiated by ``initialize``, or for the per-request
envelope of 2026-07-28 the version in ``params._meta``), ``Mcp-Method``, ``Mcp-Name`` and the
``Mcp-Param-*`` headers a tool's ``x-mcp-header`` annotations ask for. The bridge relays
messages it did not write, so :class:`RoutingHeaders` derives these from the bodies (plain
decoded JSON), learning the negotiated version and the tools' annotations from the answers that
pass back. The rules themselves are in :mod:`broker.bridge.header_rules`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from broker.bridge.header_rules import (
    MCP_METHOD_HEADER,
    MCP_NAME_HEADER,
    MCP_PROTOCOL_VERSION_HEADER,
    MODERN_PROTOCOL_VERSIONS,
    NAME_BEARING_METHODS,
    PROTOCOL_VERSION_META_KEY,
    encode_header_value,
    find_invalid_x_mcp_header,
    mcp_param_headers,
    x_mcp_header_map,
)

logger = logging.getLogger(__name__)

#: A JSON-RPC message as decoded JSON.
Message = dict[str, Any]


def is_request(message: Mapping[str, Any]) -> bool:
    return "method" in message and "id" in message


def is_answer(message: Mapping[str, Any]) -> bool:
    """A response or an error (to either side's request)."""
    return "method" not in message and ("result" in message or "error" in message)


class RoutingHeaders:
    """Per-session header state: one instance per bridged session."""

    def __init__(self) -> None:
        self.negotiated_version: str | None = None
        # client request id -> (method, its envelope's version), until answered
        self._asked: dict[Any, tuple[str, str | None]] = {}
        self._param_headers: dict[str, dict[tuple[str, ...], str]] = {}  # tool -> header map

    def for_client_message(self, message: Mapping[str, Any]) -> dict[str, str]:
        """Headers for a message from the stdio client to the HTTP server."""
        headers: dict[str, str] = {}
        method = message.get("method")
        if not isinstance(method, str):
            if self.negotiated_version:
                headers[MCP_PROTOCOL_VERSION_HEADER] = self.negotiated_version
            return headers
        params = message.get("params")
        params = params if isinstance(params, Mapping) else {}
        version = _envelope_version(params)
        if "id" in message and _hashable(message["id"]):
            self._asked[message["id"]] = (method, version)
        if version is not None:
            headers.update(self._routing(method, params))
            headers[MCP_PROTOCOL_VERSION_HEADER] = version
        elif self.negotiated_version and method != "initialize":
            headers[MCP_PROTOCOL_VERSION_HEADER] = self.negotiated_version
        return headers

    def observe_server_message(self, message: Message) -> Message:
        """Learn from an answer on its way back (the negotiated version, tools' annotations);
        return the message to relay: the same object, except a 2026-07-28 tool listing, from
        which tools with invalid ``x-mcp-header`` annotations are dropped (SEP-2243: a client
        MUST exclude them; the bridge is the HTTP client that would have to send those
        headers)."""
        if not is_answer(message) or not _hashable(message.get("id")):
            return message
        method, version = self._asked.pop(message.get("id"), (None, None))
        result = message.get("result")
        if not isinstance(result, dict):
            return message
        if method == "initialize" and isinstance(result.get("protocolVersion"), str):
            self.negotiated_version = result["protocolVersion"]
        elif method == "tools/list" and isinstance(result.get("tools"), list):
            modern = (version or self.negotiated_version) in MODERN_PROTOCOL_VERSIONS
            kept = self._learn_tools(result["tools"], drop_invalid=modern)
            if len(kept) != len(result["tools"]):
                return {**message, "result": {**result, "tools": kept}}
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


def _hashable(value: Any) -> bool:
    return isinstance(value, str | int | float) or value is None


def _printable(text: str) -> str:
    return "".join(ch for ch in text if ch.isprintable())


def _envelope_version(params: Mapping[str, Any]) -> str | None:
    """The protocol version of a 2026-07-28 per-request envelope (``params._meta``), if any;
    one no HTTP header can carry (a control or non-ASCII character) is none."""
    meta = params.get("_meta")
    if isinstance(meta, Mapping):
        version = meta.get(PROTOCOL_VERSION_META_KEY)
        if isinstance(version, str) and version.isascii() and version.isprintable():
            return version
    return None
