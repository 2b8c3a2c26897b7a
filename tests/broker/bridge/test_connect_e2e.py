"""``mcp-broker connect URL`` end to end: the mcp SDK's stdio client launches the bridge as a
subprocess, which relays to the demo MCP server with tokens from the broker (a real Secret
Service, the local authorization server signing in ``demo`` without a form)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.client.client import Client
from mcp.shared.exceptions import MCPError
from mcp_types import CallToolResult, TextContent

from broker.bridge.transport import SIGN_IN_REQUIRED
from tests.broker.bridge.stdio import bridged_client
from tests.broker.desktop.brokerrun import BrokerRun
from tests.e2e.conftest import BrokerCli, demo_stack
from tests.e2e.test_cli_e2e import sign_in
from tests.support.desktop import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def payload(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, result
    if result.structured_content is not None:
        content = result.structured_content
        return dict(content.get("result", content))
    (text,) = [c.text for c in result.content if isinstance(c, TextContent)]
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def mcp_error_in(exc: BaseException) -> MCPError:
    """The MCPError the SDK client raised, unwrapped from its task-group exception groups."""
    if isinstance(exc, MCPError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            try:
                return mcp_error_in(inner)
            except LookupError:
                continue
    raise LookupError(f"no MCPError in {exc!r}")


async def whoami(client: Client) -> dict[str, Any]:
    return payload(await client.call_tool("whoami", {}))


def test_a_long_session_spans_several_token_lifetimes_without_a_failure(
    broker_cli: BrokerCli, tmp_path: Path
) -> None:
    with demo_stack(access_token_ttl=3, rotation=True) as stack:
        sign_in(broker_cli, stack)

        async def session() -> tuple[int, set[int]]:
            calls, expiries = 0, set[int]()
            async with bridged_client(broker_cli, stack.mcp_url, tmp_path / "bridge.log") as c:
                # Until whoami has seen four different tokens: three refreshes mid-session.
                while len(expiries) < 4 and calls < 400:
                    me = await whoami(c)
                    assert me["username"] == "demo"
                    expiries.add(me["expires_at"])
                    calls += 1
                    await anyio.sleep(0.1)
            return calls, expiries

        calls, expiries = anyio.run(session)

    assert len(expiries) >= 4 and calls >= 10, f"{calls} calls saw {len(expiries)} tokens"
    assert stack.counter.refreshes >= 3
    assert "eyJ" not in (tmp_path / "bridge.log").read_text()  # no JWT in any log line


def test_a_tool_needing_an_extra_scope_steps_up_then_succeeds(
    broker_cli: BrokerCli, tmp_path: Path
) -> None:
    with demo_stack(access_token_ttl=60, rotation=False) as stack:
        sign_in(broker_cli, stack)
        admin_scope = f"{stack.mcp_url}/admin"

        async def session() -> tuple[list[str], dict[str, Any], list[str]]:
            async with bridged_client(broker_cli, stack.mcp_url, tmp_path / "bridge.log") as c:
                before = (await whoami(c))["scopes"]
                report = payload(await c.call_tool("admin_report", {}))
                after = (await whoami(c))["scopes"]
            return before, report, after

        before, report, after = anyio.run(session)
        status = json.loads(broker_cli.ok("status", "--json"))

    assert admin_scope not in before
    assert report["status"] == "ok"
    assert admin_scope in after and set(before) <= set(after)
    assert admin_scope in status["servers"][0]["scope"].split()


def test_not_signed_in_the_client_is_told_to_sign_in(broker_cli: BrokerCli, tmp_path: Path) -> None:
    with demo_stack(access_token_ttl=60, rotation=False) as stack:
        broker_cli.ok("add", stack.mcp_url, "--client-id", "demo-broker", "--provider", "cognito")

        async def session() -> None:
            async with bridged_client(broker_cli, stack.mcp_url, tmp_path / "bridge.log"):
                pass

        # The SDK client raises the bridge's error out of its task groups.
        refusal = pytest.RaisesExc(MCPError, check=lambda e: e.code == SIGN_IN_REQUIRED)
        with pytest.RaisesGroup(refusal, flatten_subgroups=True) as refused:
            anyio.run(session)

    error = mcp_error_in(refused.value)
    message = error.error.message
    assert f"mcp-broker login {stack.mcp_url}" in message
    assert "tray" in message


def test_with_a_broker_running_the_bridge_takes_tokens_from_its_api(
    broker_cli: BrokerCli, tmp_path: Path
) -> None:
    with demo_stack(access_token_ttl=3, rotation=False) as stack:
        sign_in(broker_cli, stack)
        admin_scope = f"{stack.mcp_url}/admin"
        env = {k: v for k, v in broker_cli.env.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
        broker = BrokerRun(env, tmp_path / "broker.log", "--headless")
        try:
            wait_for("the broker's API", lambda: "token API listening" in broker.log() or None, 120)

            async def session() -> tuple[set[int], MCPError, str, dict[str, Any]]:
                log = tmp_path / "bridge.log"
                async with bridged_client(broker_cli, stack.mcp_url, log) as client:
                    expiries: set[int] = set()
                    while len(expiries) < 3:  # the broker refreshes; the bridge keeps up
                        expiries.add((await whoami(client))["expires_at"])
                        await anyio.sleep(0.1)
                    with pytest.raises(MCPError) as refused:
                        await client.call_tool("admin_report", {})
                    still = (await whoami(client))["username"]
                    # The user does what the message says, in a terminal; the running broker
                    # picks the new sign-in up and the client's retry goes through.
                    await anyio.to_thread.run_sync(
                        broker_cli.ok, "login", stack.mcp_url, "--scope", admin_scope
                    )
                    report = await retried_admin_report(client)
                return expiries, refused.value, still, report

            expiries, refused, still, report = anyio.run(session)
        finally:
            broker.kill()
        bridge_log = (tmp_path / "bridge.log").read_text()
        audit = broker_cli.ok("clients", "log")

    assert len(expiries) == 3 and still == "demo"
    assert "using the running broker's token API" in bridge_log
    # The API never signs in on a request: the user is told which scope is missing and how.
    assert refused.code == SIGN_IN_REQUIRED
    assert admin_scope in refused.message
    assert f"mcp-broker login {stack.mcp_url} --scope {admin_scope}" in refused.message
    assert report["status"] == "ok"
    assert "insufficient_scope" in audit  # the refusal is on record, with the client's name


async def retried_admin_report(client: Client, patience: float = 20.0) -> dict[str, Any]:
    """``admin_report`` once the broker has taken up a sign-in made in another process (it
    looks once a second; the API reuses an answer for up to a second)."""
    deadline = anyio.current_time() + patience
    while True:
        try:
            return payload(await client.call_tool("admin_report", {}))
        except MCPError:
            if anyio.current_time() > deadline:
                raise
            await anyio.sleep(0.5)
