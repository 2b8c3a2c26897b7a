"""The whole chain: the real Broker (tokens in a real Secret Service) signed in to
``mcp-demo-server stack``, its API serving on 127.0.0.1, and the mcp SDK client calling
``whoami`` with a token it got from ``POST /v1/token`` using the secret in endpoint.json."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client

from broker.api.endpoint import request_token
from broker.api.server import ApiSettings, start_api
from broker.config import ServerConfig
from broker.paths import broker_paths
from broker.root import build
from tests.support.procs import ServerProcess, demo_server_cmd

pytestmark = pytest.mark.integration


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[str]:
    args = demo_server_cmd("stack", "--idp-port=0", "--port=0", "--auto-login=demo")
    with ServerProcess(args, tmp_path / "stack.log") as proc:
        yield proc.url
    assert "Traceback" not in proc.log()


def follow_in_background(url: str) -> bool:
    """The browser: --auto-login answers with a redirect to the broker's loopback callback."""
    thread = threading.Thread(
        target=lambda: httpx2.get(url, follow_redirects=True, timeout=30, trust_env=False),
        daemon=True,
    )
    thread.start()
    return True


async def call_whoami(mcp_url: str, access_token: str) -> str:
    headers = {"Authorization": f"Bearer {access_token}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=15.0, trust_env=False) as http,
        streamable_http_client(mcp_url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        result = await session.call_tool("whoami", {})
    assert not result.is_error, result
    return json.dumps(result.model_dump(mode="json"))


def test_an_sdk_client_calls_whoami_with_a_token_from_the_api(
    stack: str, tmp_path: Path, secret_service: object
) -> None:
    paths = broker_paths({"MCP_BROKER_HOME": str(tmp_path / "home")})
    broker = build(paths, paths.config_file, opener=follow_in_background, sign_in_timeout=60).broker
    try:
        broker.add(ServerConfig(url=stack, client_id="demo-broker", provider="cognito"))
        signed_in = broker.login(stack)
        with start_api(broker, paths, settings=ApiSettings(threads=4)) as api:
            endpoint = json.loads(paths.endpoint_file.read_text())
            response = httpx2.post(
                f"{endpoint['url']}/v1/token",
                json={"resource": stack, "min_valid_seconds": 60},
                headers={"X-MCP-Broker": "1", "Authorization": f"Bearer {endpoint['secret']}"},
                trust_env=False,
            )
            helper = request_token(stack, paths=paths)
            who = asyncio.run(call_whoami(stack, response.json()["access_token"]))
            status = httpx2.get(
                f"{api.url}/v1/status",
                headers={"X-MCP-Broker": "1", "Authorization": f"Bearer {endpoint['secret']}"},
                trust_env=False,
            ).json()
    finally:
        broker.close()

    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    assert response.json()["access_token"] == signed_in.access_token == helper.access_token
    assert "refresh_token" not in response.text
    assert "demo" in who
    assert [(s["state"], s["user"]) for s in status["servers"]] == [("valid", "demo")]
    assert signed_in.access_token not in json.dumps(status)
