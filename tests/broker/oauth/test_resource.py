from __future__ import annotations

import pytest

from broker.errors import ConfigError
from broker.oauth.resource import canonical_resource, resource_covers


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("https://MCP.Example.com/mcp", "https://mcp.example.com/mcp"),
        ("HTTPS://mcp.example.com:443/mcp/", "https://mcp.example.com/mcp"),
        ("http://127.0.0.1:80/", "http://127.0.0.1"),
        ("http://localhost:8000/mcp#frag", "http://localhost:8000/mcp"),
        ("https://mcp.example.com", "https://mcp.example.com"),
        ("https://mcp.example.com:8443/a/B", "https://mcp.example.com:8443/a/B"),
        ("https://[::1]:9000/mcp", "https://[::1]:9000/mcp"),
    ],
)
def test_one_canonical_rule(given: str, canonical: str) -> None:
    assert canonical_resource(given) == canonical


@pytest.mark.parametrize(
    "bad", ["ftp://x/mcp", "javascript:alert(1)", "https://user:pw@x/mcp", "/relative", "https://"]
)
def test_non_http_urls_are_refused(bad: str) -> None:
    with pytest.raises(ConfigError):
        canonical_resource(bad)


def test_resource_covers_same_url_and_parent_paths_only() -> None:
    assert resource_covers("http://localhost:3000/mcp", "http://localhost:3000/mcp")
    assert resource_covers("http://localhost:3000", "http://localhost:3000/mcp")
    assert resource_covers("http://LOCALHOST:3000/mcp/", "http://localhost:3000/mcp")
    assert not resource_covers("https://evil.example.com/mcp", "http://localhost:3000/mcp")
    assert not resource_covers("http://localhost:3001/mcp", "http://localhost:3000/mcp")
    assert not resource_covers("http://localhost:3000/mc", "http://localhost:3000/mcp")
    assert not resource_covers("http://localhost:3000/mcp/deeper", "http://localhost:3000/mcp")
    assert not resource_covers("https://localhost:3000/mcp", "http://localhost:3000/mcp")
