"""The Streamable HTTP header rules of MCP 2026-07-28 (transports, "Standard Headers" and
"Custom Headers", SEP-2243): which params key ``Mcp-Name`` mirrors, the header-value codec, which
``x-mcp-header`` annotations are valid, and the ``Mcp-Param-*`` headers a ``tools/call`` carries.

The same rules as the mcp SDK's ``mcp.shared.inbound`` (which servers built on the SDK validate
against), restated here in plain Python because importing the SDK costs the bridge well over a
second of start-up; ``tests/broker/bridge/test_header_rules.py`` checks the two agree.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator, Mapping
from typing import Any, Final

MCP_PROTOCOL_VERSION_HEADER: Final = "mcp-protocol-version"
MCP_METHOD_HEADER: Final = "mcp-method"
MCP_NAME_HEADER: Final = "mcp-name"
MCP_PARAM_HEADER_PREFIX: Final = "Mcp-Param-"
X_MCP_HEADER_KEY: Final = "x-mcp-header"
#: Where a 2026-07-28 request names its protocol version (its per-request ``_meta`` envelope).
PROTOCOL_VERSION_META_KEY: Final = "io.modelcontextprotocol/protocolVersion"
#: Versions with the per-request envelope and routing headers.
MODERN_PROTOCOL_VERSIONS: Final = ("2026-07-28",)

#: Method -> the params key whose value ``Mcp-Name`` mirrors.
NAME_BEARING_METHODS: Final[Mapping[str, str]] = {
    "tools/call": "name",
    "prompts/get": "name",
    "resources/read": "uri",
}

_B64_SENTINEL = re.compile(r"^=\?base64\?(?P<payload>.*)\?=$")
_HEADER_SAFE = re.compile(r"^[\x20-\x7E]*$")  # visible ASCII and space
_RFC9110_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")  # an HTTP field-name token
# `number` may not carry a header: float -> str is not portable across implementations.
_HEADER_TYPES: Final = frozenset({"string", "integer", "boolean"})
# JSON Schema 2020-12 applicators whose values are schema positions (`properties` aside, the
# only one that keeps a static path). Instance data (`default`, `enum`...) and `$ref` are not
# entered, so data is never taken for an annotation and nothing is dereferenced.
_SUBSCHEMA_SINGLE: Final = frozenset(
    {
        "items",
        "contains",
        "unevaluatedItems",
        "additionalProperties",
        "propertyNames",
        "unevaluatedProperties",
        "not",
        "if",
        "then",
        "else",
        "contentSchema",
    }
)
_SUBSCHEMA_LIST: Final = frozenset({"allOf", "anyOf", "oneOf", "prefixItems"})
_SUBSCHEMA_MAP: Final = frozenset({"patternProperties", "dependentSchemas", "$defs", "definitions"})


def encode_header_value(value: str) -> str:
    """``value`` as is when it survives an HTTP field round-trip, else ``=?base64?...?=``."""
    if (
        _HEADER_SAFE.fullmatch(value)
        and value == value.strip()
        and not _B64_SENTINEL.fullmatch(value)
    ):
        return value
    return f"=?base64?{base64.b64encode(value.encode('utf-8')).decode('ascii')}?="


def find_invalid_x_mcp_header(input_schema: Any) -> str | None:
    """Why an ``x-mcp-header`` annotation in ``input_schema`` is invalid, or None when all are
    valid: each must sit on a property reached from the root through ``properties`` only, name
    an RFC 9110 token, be on an integer/string/boolean property, and be unique (ignoring case)."""
    seen: dict[str, str] = {}
    for path, schema in _schema_positions(input_schema):
        if X_MCP_HEADER_KEY not in schema:
            continue
        if not path:
            return (
                f"{X_MCP_HEADER_KEY} found at a schema position not reachable via a pure "
                "`properties` chain"
            )
        where = ".".join(path)
        header = schema[X_MCP_HEADER_KEY]
        if not isinstance(header, str):
            kind = type(header).__name__
            return f"property {where!r}: {X_MCP_HEADER_KEY} must be a string, not {kind}"
        if not _RFC9110_TOKEN.fullmatch(header):
            return f"property {where!r}: {X_MCP_HEADER_KEY} {header!r} is not an RFC 9110 token"
        prop_type = schema.get("type")
        if not isinstance(prop_type, str) or prop_type not in _HEADER_TYPES:
            return (
                f"property {where!r}: {X_MCP_HEADER_KEY} is only permitted on "
                f"integer/string/boolean properties (got {prop_type!r})"
            )
        if header.lower() in seen:
            return (
                f"{X_MCP_HEADER_KEY} {header!r} on property {where!r} duplicates property "
                f"{seen[header.lower()]!r}"
            )
        seen[header.lower()] = where
    return None


def x_mcp_header_map(input_schema: Any) -> dict[tuple[str, ...], str]:
    """Property path -> header token, for a schema :func:`find_invalid_x_mcp_header` accepts."""
    return {
        path: token
        for path, schema in _schema_positions(input_schema)
        if path and isinstance(token := schema.get(X_MCP_HEADER_KEY), str)
    }


def mcp_param_headers(
    header_map: Mapping[tuple[str, ...], str], arguments: Mapping[str, Any]
) -> dict[str, str]:
    """The ``Mcp-Param-*`` headers a ``tools/call`` mirrors from its arguments: one per mapped
    property present with a scalar value (booleans as ``true``/``false``), encoded."""
    headers: dict[str, str] = {}
    for path, token in header_map.items():
        rendered = _rendered(_value_at(arguments, path))
        if rendered is not None:
            headers[f"{MCP_PARAM_HEADER_PREFIX}{token}"] = encode_header_value(rendered)
    return headers


def _schema_positions(root: Any) -> Iterator[tuple[tuple[str, ...] | None, dict[str, Any]]]:
    """(path of ``properties`` keys from the root, or None once another applicator was crossed;
    the schema) for every schema position; iterative, so any finite JSON value ends."""
    stack: list[tuple[tuple[str, ...] | None, Any]] = [((), root)]
    while stack:
        path, node = stack.pop()
        if not isinstance(node, dict):
            continue
        yield path, node
        for keyword, value in node.items():
            if keyword == "properties" and isinstance(value, dict):
                for name, sub in value.items():
                    stack.append(((*path, name) if path is not None else None, sub))
            elif keyword in _SUBSCHEMA_SINGLE:
                stack.append((None, value))
            elif keyword in _SUBSCHEMA_LIST and isinstance(value, list):
                stack.extend((None, sub) for sub in value)
            elif keyword in _SUBSCHEMA_MAP and isinstance(value, dict):
                stack.extend((None, sub) for sub in value.values())


def _rendered(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if not isinstance(value, str | int | float):
        return None
    try:
        return str(value)
    except ValueError:  # an int past the interpreter's int-to-str digit limit
        return None


def _value_at(arguments: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = arguments
    for key in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return node
