"""``Broker.login(extra_scope)`` (``mcp-broker login URL --scope S``, the tray's step-up entry):
the new sign-in asks for the union of what the server asks, what the current sign-in has and
what is added, so a second step-up never drops the first (MCP authorization, "Scope Challenge
Handling"). Against the local authorization server and the demo MCP server."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.cli.demo import CLIENT_ID
from broker.cli.demo_smoke import follow_to_callback
from broker.config import ServerConfig
from broker.paths import broker_paths
from broker.root import build
from broker.store.memory import MemoryTokenStore
from tests.e2e.conftest import demo_stack

pytestmark = pytest.mark.integration


def test_each_step_up_keeps_the_scopes_of_the_ones_before(tmp_path: Path) -> None:
    with demo_stack(access_token_ttl=3600, rotation=False) as stack:
        paths = broker_paths({"MCP_BROKER_HOME": str(tmp_path / "home")})
        broker = build(
            paths, paths.config_file, store=MemoryTokenStore(), opener=follow_to_callback
        ).broker
        try:
            broker.add(ServerConfig(stack.mcp_url, client_id=CLIENT_ID, provider="cognito"))
            plain = set((broker.login(stack.mcp_url).scope or "").split())
            admin = f"{stack.mcp_url}/admin"
            first = set((broker.login(stack.mcp_url, extra_scope=admin).scope or "").split())
            second = set((broker.login(stack.mcp_url, extra_scope="email").scope or "").split())
            again = set((broker.login(stack.mcp_url).scope or "").split())
        finally:
            broker.close()

    assert admin not in plain and "email" not in plain
    assert first == plain | {admin}
    assert second == first | {"email"}  # the admin step-up survives the next one
    assert again == plain  # a plain sign-in asks for what the server asks, nothing more
