"""The bridge's restatement of the 2026-07-28 header rules agrees with the mcp SDK's, which
servers built on the SDK validate against: same verdict on every schema, same headers."""

from __future__ import annotations

from typing import Any

import pytest
from mcp.shared import inbound
from mcp_types import PROTOCOL_VERSION_META_KEY
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from broker.bridge import header_rules

STRING = {"type": "string"}

SCHEMAS: list[Any] = [
    None,
    {},
    {"type": "object", "properties": {"region": {**STRING, "x-mcp-header": "Region"}}},
    {
        "type": "object",
        "properties": {
            "outer": {
                "type": "object",
                "properties": {"n": {"type": "integer", "x-mcp-header": "N"}},
            },
            "flag": {"type": "boolean", "x-mcp-header": "Flag"},
        },
    },
    {"type": "object", "properties": {"f": {"type": "number", "x-mcp-header": "F"}}},
    {"type": "object", "properties": {"o": {"type": "object", "x-mcp-header": "O"}}},
    {"type": "object", "properties": {"s": {**STRING, "x-mcp-header": "not a token"}}},
    {"type": "object", "properties": {"s": {**STRING, "x-mcp-header": 7}}},
    {"type": "object", "properties": {"s": {"x-mcp-header": "S"}}},
    {
        "type": "object",
        "properties": {
            "a": {**STRING, "x-mcp-header": "Dup"},
            "b": {**STRING, "x-mcp-header": "dup"},
        },
    },
    {"x-mcp-header": "Root", "type": "string"},
    {"type": "object", "items": {**STRING, "x-mcp-header": "Item"}},
    {"anyOf": [{"properties": {"s": {**STRING, "x-mcp-header": "S"}}}]},
    {"$defs": {"d": {"properties": {"s": {**STRING, "x-mcp-header": "S"}}}}},
    {"properties": {"s": {**STRING, "default": {"x-mcp-header": "NotAnAnnotation"}}}},
    {"properties": {"s": {"$ref": "#/$defs/x"}}, "$defs": {"x": {**STRING, "x-mcp-header": "X"}}},
]


@pytest.mark.parametrize("schema", SCHEMAS, ids=range(len(SCHEMAS)))
def test_the_verdict_and_header_map_are_the_sdks(schema: Any) -> None:
    ours = header_rules.find_invalid_x_mcp_header(schema)
    theirs = inbound.find_invalid_x_mcp_header(schema)

    assert (ours is None) == (theirs is None), (ours, theirs)
    if ours is None:
        assert header_rules.x_mcp_header_map(schema) == inbound.x_mcp_header_map(schema)


VALUES = ["plain", " edge ", "ünï", "tab\there", "=?base64?abc?=", "", "a" * 300]


@pytest.mark.parametrize("value", VALUES)
def test_header_values_are_encoded_as_the_sdk_encodes_them(value: str) -> None:
    assert header_rules.encode_header_value(value) == inbound.encode_header_value(value)


def test_param_headers_are_the_sdks() -> None:
    header_map = {("region",): "Region", ("o", "n"): "N", ("flag",): "Flag", ("gone",): "Gone"}
    arguments = {"region": "eu ", "o": {"n": 3}, "flag": False, "other": 1}

    ours = header_rules.mcp_param_headers(header_map, arguments)

    assert ours == inbound.mcp_param_headers(header_map, arguments)
    assert ours["Mcp-Param-Flag"] == "false" and "Mcp-Param-Gone" not in ours


def test_names_and_versions_are_the_sdks() -> None:
    assert dict(header_rules.NAME_BEARING_METHODS) == dict(inbound.NAME_BEARING_METHODS)
    assert header_rules.PROTOCOL_VERSION_META_KEY == PROTOCOL_VERSION_META_KEY
    assert header_rules.MODERN_PROTOCOL_VERSIONS == MODERN_PROTOCOL_VERSIONS
    assert header_rules.MCP_PARAM_HEADER_PREFIX == inbound.MCP_PARAM_HEADER_PREFIX
    for name in ("MCP_PROTOCOL_VERSION_HEADER", "MCP_METHOD_HEADER", "MCP_NAME_HEADER"):
        assert getattr(header_rules, name) == getattr(inbound, name)
