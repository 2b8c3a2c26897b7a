from __future__ import annotations

from typing import Any

import httpx2
import pytest

from broker.errors import ResourceMismatch
from broker.oauth.prm import build_prm_request, handle_prm_response, prm_urls

SERVER = "https://mcp.example.com/mcp"


def reply(url: str, status: int = 200, body: Any = None) -> httpx2.Response:
    return httpx2.Response(status, json=body, request=build_prm_request(url))


def test_discovery_order_challenge_then_path_then_root() -> None:
    assert prm_urls(SERVER, "https://mcp.example.com/custom/prm.json") == [
        "https://mcp.example.com/custom/prm.json",
        "https://mcp.example.com/.well-known/oauth-protected-resource/mcp",
        "https://mcp.example.com/.well-known/oauth-protected-resource",
    ]


def test_discovery_without_path_or_challenge_uses_the_root_only() -> None:
    assert prm_urls("https://MCP.example.com:443/") == [
        "https://mcp.example.com/.well-known/oauth-protected-resource"
    ]


@pytest.mark.parametrize(
    "unsafe", ["javascript:alert(1)", "file:///etc/passwd", "http://10.0.0.1/x"]
)
def test_unsafe_resource_metadata_url_is_skipped(unsafe: str) -> None:
    assert unsafe not in prm_urls(SERVER, unsafe)


def test_valid_document_is_accepted_with_issuers_verbatim() -> None:
    info = handle_prm_response(
        reply(
            SERVER,
            body={
                "resource": "https://mcp.example.com/mcp",
                "authorization_servers": ["https://auth.example.com"],
                "scopes_supported": ["files:read"],
            },
        ),
        SERVER,
    )
    assert info is not None
    assert info.authorization_servers == ("https://auth.example.com",)  # no added slash
    assert info.scopes_supported == ("files:read",)
    assert info.resource == "https://mcp.example.com/mcp"


def test_root_document_naming_the_origin_is_accepted() -> None:
    body = {"resource": "https://mcp.example.com", "authorization_servers": ["https://a.example"]}
    info = handle_prm_response(reply(SERVER, body=body), SERVER)
    assert info is not None and info.resource == "https://mcp.example.com"


def test_resource_is_kept_exactly_as_published() -> None:
    body = {"resource": "https://mcp.example.com/mcp/", "authorization_servers": ["https://a.b"]}
    info = handle_prm_response(reply(SERVER, body=body), SERVER)
    assert info is not None and info.resource == "https://mcp.example.com/mcp/"


@pytest.mark.parametrize(
    "resource",
    ["https://evil.example.com/mcp", "https://mcp.example.com/other", "http://mcp.example.com/mcp"],
)
def test_document_for_another_resource_is_refused(resource: str) -> None:
    body = {"resource": resource, "authorization_servers": ["https://auth.example.com"]}
    with pytest.raises(ResourceMismatch):
        handle_prm_response(reply(SERVER, body=body), SERVER)


@pytest.mark.parametrize(
    ("status", "body"),
    [(404, {"error": "nope"}), (200, ["not", "an", "object"]), (200, {"resource": SERVER})],
)
def test_missing_or_invalid_document_means_try_the_next_url(status: int, body: Any) -> None:
    assert handle_prm_response(reply(SERVER, status, body), SERVER) is None


def test_non_json_body_means_try_the_next_url() -> None:
    response = httpx2.Response(200, text="<html>", request=build_prm_request(SERVER))
    assert handle_prm_response(response, SERVER) is None
