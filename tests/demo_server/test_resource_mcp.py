"""The demo MCP server working as a user sees it: tools through the real mcp SDK client, the
Protected Resource Metadata documents, and the 401 challenge that starts discovery."""

from __future__ import annotations

from collections.abc import Iterator

import httpx2
import pytest
from mcp.shared.exceptions import MCPError

from demo_server.resource import RunningResourceServer
from demo_server.resource.challenges import www_authenticate
from tests.support.jwt_issuer import JwksServer
from tests.support.resource_server import call_tool, initialize_body, post_mcp, running_resource

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server(jwks: JwksServer) -> Iterator[RunningResourceServer]:
    with running_resource(jwks) as running:
        yield running


def test_whoami_returns_the_validated_claims(
    jwks: JwksServer, server: RunningResourceServer
) -> None:
    resource = server.settings.resource_id
    claims = jwks.issuer_obj.claims(resource, username="alice", **{"cognito:groups": ["admins"]})
    token = jwks.issuer_obj.sign(claims)
    result = call_tool(server.url, token, "whoami")
    assert not result.is_error
    me = result.structured_content
    assert me["authenticated"] is True
    assert me["subject"] == claims["sub"]
    assert me["username"] == "alice"
    assert me["client_id"] == "demo-broker"
    assert me["scopes"] == [f"{resource}/tools"]
    assert me["expires_at"] == claims["exp"]
    assert me["groups"] == ["admins"]
    assert me["issuer"] == jwks.issuer
    assert token not in str(result.content) and token not in str(me)


def test_echo_and_add(jwks: JwksServer, server: RunningResourceServer) -> None:
    token = jwks.issuer_obj.token(server.settings.resource_id)
    assert call_tool(server.url, token, "echo", {"text": "héllo"}).structured_content == {
        "result": "héllo"
    }
    assert call_tool(server.url, token, "add", {"a": 2, "b": 40}).structured_content == {
        "result": 42
    }


def test_admin_report_works_with_the_admin_scope(
    jwks: JwksServer, server: RunningResourceServer
) -> None:
    scopes = " ".join(server.settings.scopes_supported)
    token = jwks.issuer_obj.token(server.settings.resource_id, scope=scopes)
    result = call_tool(server.url, token, "admin_report")
    assert not result.is_error
    assert result.structured_content["resource"] == server.settings.resource_id


def test_admin_report_without_the_admin_scope_fails_for_the_sdk_client(
    jwks: JwksServer, server: RunningResourceServer
) -> None:
    """The 403 reaches the SDK client as an error; the tool never runs."""
    token = jwks.issuer_obj.token(server.settings.resource_id)
    with pytest.raises(BaseExceptionGroup) as info:
        call_tool(server.url, token, "admin_report")
    assert info.group_contains(MCPError, depth=None)


PRM_PATHS = ["/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"]


@pytest.mark.parametrize("path", PRM_PATHS)
def test_protected_resource_metadata(
    path: str, jwks: JwksServer, server: RunningResourceServer
) -> None:
    """RFC 9728 §2/§3: path-inserted and root documents, no token needed."""
    response = httpx2.get(server.settings.base_url + path, timeout=5)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    document = response.json()
    resource = server.url
    assert document["resource"] == resource
    assert document["authorization_servers"] == [jwks.issuer]
    assert document["scopes_supported"] == [f"{resource}/tools", f"{resource}/admin"]
    assert document["bearer_methods_supported"] == ["header"]
    assert document["resource_name"]
    assert "access-control-allow-origin" not in response.headers


def test_401_without_token_names_metadata_and_scope(server: RunningResourceServer) -> None:
    """RFC 6750 §3 + RFC 9728 §5.1: no error code when no token was sent, but scope is there."""
    response = post_mcp(server.url, initialize_body())
    assert response.status_code == 401
    metadata_url = f"{server.settings.base_url}/.well-known/oauth-protected-resource/mcp"
    expected = www_authenticate({"resource_metadata": metadata_url, "scope": f"{server.url}/tools"})
    assert response.headers["www-authenticate"] == expected
    assert expected == (f'Bearer resource_metadata="{metadata_url}", scope="{server.url}/tools"')
    assert httpx2.get(metadata_url, timeout=5).json()["resource"] == server.url


@pytest.mark.parametrize("authorization", ["Bearer", "Basic ZGVtbzpkZW1v", "Token abc"])
def test_non_bearer_or_empty_credentials_get_the_plain_challenge(
    authorization: str, server: RunningResourceServer
) -> None:
    response = post_mcp(server.url, initialize_body(), headers={"Authorization": authorization})
    assert response.status_code == 401
    assert "error=" not in response.headers["www-authenticate"]


def test_401_for_a_rejected_token_says_invalid_token(server: RunningResourceServer) -> None:
    response = post_mcp(server.url, initialize_body(), token="garbage")
    challenge = response.headers["www-authenticate"]
    assert response.status_code == 401
    assert challenge.startswith('Bearer error="invalid_token"')
    assert f'scope="{server.url}/tools"' in challenge
    assert "resource_metadata=" in challenge
    assert response.headers["cache-control"] == "no-store"


def test_get_stream_and_delete_need_a_token_too(server: RunningResourceServer) -> None:
    for method in ("GET", "DELETE"):
        response = httpx2.request(method, server.url, timeout=5)
        assert response.status_code == 401, method


def test_explicit_resource_changes_scopes_and_metadata(jwks: JwksServer) -> None:
    resource = "https://mcp.example.com/mcp"
    with running_resource(jwks, resource=resource) as server:
        document = httpx2.get(server.settings.resource_metadata_url, timeout=5).json()
        assert document["resource"] == resource
        assert document["scopes_supported"] == [f"{resource}/tools", f"{resource}/admin"]
        token = jwks.issuer_obj.token(resource, aud=resource)
        assert call_tool(server.url, token, "whoami").structured_content["authenticated"]
        other = jwks.issuer_obj.token(resource, aud=server.settings.mcp_url)
        assert post_mcp(server.url, initialize_body(), other).status_code == 401


def test_path_less_issuer_is_published_exactly(jwks: JwksServer) -> None:
    """The PRM names the issuer character for character (no trailing slash added)."""
    with running_resource(jwks, issuer="http://127.0.0.1:9000") as server:
        document = httpx2.get(server.settings.resource_metadata_url, timeout=5).json()
        assert document["authorization_servers"] == ["http://127.0.0.1:9000"]
