"""Routing headers for relayed messages: what a client's own SDK session would have sent."""

from __future__ import annotations

from typing import Any

from mcp_types import PROTOCOL_VERSION_META_KEY

from broker.bridge.headers import RoutingHeaders

Json = dict[str, Any]

MODERN = "2026-07-28"


def request(id: int, method: str, params: Json | None = None) -> Json:
    return {"jsonrpc": "2.0", "id": id, "method": method, **({"params": params} if params else {})}


def modern(id: int, method: str, **params: Any) -> Json:
    return request(id, method, {**params, "_meta": {PROTOCOL_VERSION_META_KEY: MODERN}})


def answer(id: int, result: Json) -> Json:
    return {"jsonrpc": "2.0", "id": id, "result": result}


def test_after_initialize_every_message_carries_the_negotiated_version() -> None:
    routing = RoutingHeaders()

    first = routing.for_client_message(request(1, "initialize", {"protocolVersion": "2025-11-25"}))
    routing.observe_server_message(answer(1, {"protocolVersion": "2025-06-18"}))
    note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    later = [
        routing.for_client_message(note),
        routing.for_client_message(request(2, "tools/list")),
        routing.for_client_message(answer(7, {"action": "accept"})),  # to a server request
    ]

    assert first == {}
    assert later == [{"mcp-protocol-version": "2025-06-18"}] * 3


def test_a_version_in_an_answer_to_another_method_is_not_taken_for_the_negotiated_one() -> None:
    routing = RoutingHeaders()
    routing.for_client_message(request(1, "tools/call", {"name": "x"}))

    routing.observe_server_message(answer(1, {"protocolVersion": "1999-01-01"}))

    assert routing.for_client_message(request(2, "tools/list")) == {}


def test_a_modern_request_names_its_version_method_and_tool() -> None:
    routing = RoutingHeaders()

    headers = routing.for_client_message(modern(1, "tools/call", name="whoami", arguments={}))
    discover = routing.for_client_message(modern(2, "server/discover"))

    assert headers == {
        "mcp-protocol-version": MODERN,
        "mcp-method": "tools/call",
        "mcp-name": "whoami",
    }
    assert discover == {"mcp-protocol-version": MODERN, "mcp-method": "server/discover"}


def test_a_name_that_cannot_travel_in_a_header_is_base64_wrapped() -> None:
    headers = RoutingHeaders().for_client_message(modern(1, "resources/read", uri="file:///ä"))

    assert headers["mcp-name"].startswith("=?base64?")


def test_tool_arguments_annotated_with_x_mcp_header_are_mirrored_once_the_tool_was_listed() -> None:
    routing = RoutingHeaders()
    schema = {
        "type": "object",
        "properties": {"region": {"type": "string", "x-mcp-header": "Region"}},
    }
    before = routing.for_client_message(
        modern(1, "tools/call", name="deploy", arguments={"region": "eu"})
    )
    routing.for_client_message(modern(2, "tools/list"))
    routing.observe_server_message(
        answer(2, {"tools": [{"name": "deploy", "inputSchema": schema}]})
    )

    after = routing.for_client_message(
        modern(3, "tools/call", name="deploy", arguments={"region": "eu"})
    )

    assert "Mcp-Param-Region" not in before
    assert after["Mcp-Param-Region"] == "eu"


INVALID = {"type": "object", "properties": {"data": {"type": "object", "x-mcp-header": "Data"}}}
VALID = {"type": "object", "properties": {"region": {"type": "string", "x-mcp-header": "Region"}}}


def test_a_modern_tool_listing_drops_tools_with_invalid_x_mcp_header_and_keeps_the_rest() -> None:
    routing = RoutingHeaders()
    routing.for_client_message(modern(1, "tools/list"))
    listing = {
        "tools": [{"name": "bad", "inputSchema": INVALID}, {"name": "good", "inputSchema": VALID}],
        "nextCursor": "c2",
    }

    relayed = routing.observe_server_message(answer(1, listing))

    kept = [{"name": "good", "inputSchema": VALID}]
    assert relayed["result"] == {"tools": kept, "nextCursor": "c2"}


def test_before_2026_07_28_x_mcp_header_means_nothing_and_every_tool_is_relayed() -> None:
    routing = RoutingHeaders()
    routing.for_client_message(request(1, "initialize", {"protocolVersion": "2025-11-25"}))
    routing.observe_server_message(answer(1, {"protocolVersion": "2025-11-25"}))
    routing.for_client_message(request(2, "tools/list"))
    listing = answer(2, {"tools": [{"name": "bad", "inputSchema": INVALID}]})

    assert routing.observe_server_message(listing) is listing
