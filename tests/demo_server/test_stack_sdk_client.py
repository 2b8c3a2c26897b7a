"""The resource side works for a client that knows nothing about this project.

The mcp SDK's own ``OAuthClientProvider``, given the pre-registered ``demo-broker`` client, finds
the local authorization server by discovery (401 → PRM → OIDC discovery), signs in with PKCE and
calls ``whoami`` on the demo MCP server — all over real HTTP against ``mcp-demo-server stack``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest
from mcp.client.auth import OAuthClientProvider
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import (
    AuthorizationCodeResult,
    OAuthClientInformationFull,
    OAuthClientMetadata,
    OAuthToken,
)

from tests.support.procs import ISSUER, ServerProcess, demo_server_cmd

pytestmark = pytest.mark.integration

CALLBACK = "http://127.0.0.1:53682/callback"


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[dict[str, str]]:
    args = demo_server_cmd(
        "stack",
        "--idp-port=0",
        "--port=0",
        "--advertise-pkce",  # the SDK refuses metadata without S256 (it has no Cognito profile)
        "--auto-login=demo",
    )
    with ServerProcess(args, tmp_path / "stack.log") as proc:
        issuer = proc.announced(ISSUER)
        assert issuer, proc.log()
        yield {"mcp_url": proc.url, "issuer": issuer}
    assert "Traceback" not in proc.log()


class PreRegistered:
    """The SDK's TokenStorage, holding the pre-registered public client."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client = OAuthClientInformationFull(
            client_id="demo-broker",
            redirect_uris=[CALLBACK],  # type: ignore[list-item]
            token_endpoint_auth_method="none",
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
        )

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


async def sign_in_and_call(mcp_url: str, storage: PreRegistered) -> tuple[Any, list[str]]:
    redirects: list[str] = []

    async def follow_authorization(url: str) -> None:
        # --auto-login answers the authorization request with the redirect to our callback.
        async with httpx2.AsyncClient() as http:
            response = await http.get(url)
        assert response.status_code == 302, response.text
        redirects.append(response.headers["location"])

    async def deliver_callback() -> AuthorizationCodeResult:
        query = parse_qs(urlsplit(redirects[-1]).query)
        return AuthorizationCodeResult(
            code=query["code"][0], state=query["state"][0], iss=query.get("iss", [None])[0]
        )

    auth = OAuthClientProvider(
        server_url=mcp_url,
        client_metadata=OAuthClientMetadata(
            client_name="sdk-test",
            redirect_uris=[CALLBACK],  # type: ignore[list-item]
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
        ),
        storage=storage,
        redirect_handler=follow_authorization,
        callback_handler=deliver_callback,
    )
    async with (
        httpx2.AsyncClient(auth=auth, timeout=15.0) as http,
        streamable_http_client(mcp_url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        result = await session.call_tool("whoami", {})
    return result, redirects


def test_sdk_oauth_client_provider_signs_in_by_discovery_and_calls_whoami(
    stack: dict[str, str],
) -> None:
    storage = PreRegistered()
    result, redirects = asyncio.run(sign_in_and_call(stack["mcp_url"], storage))

    assert len(redirects) == 1 and redirects[0].startswith(CALLBACK + "?")
    assert storage.tokens is not None and storage.tokens.refresh_token
    assert not result.is_error
    who = result.structured_content or json.loads(result.content[0].text)
    assert who["username"] == "demo"
    assert who["client_id"] == "demo-broker"
    assert f"{stack['mcp_url']}/tools" in who["scopes"]
