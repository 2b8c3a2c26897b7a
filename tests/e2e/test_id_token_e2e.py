"""``mcp-broker add URL --send id-token`` end to end (issue 12 item 5) against the demo MCP
server told to accept only ID tokens (``serve --require-id-token``, as AWS Bedrock AgentCore
Gateway with the Cognito app client as audience), the local authorization server, a real
(private) Secret Service and ``mcp-broker`` as real subprocesses: ``call``, ``token``,
``headers`` and the running broker's token API hand out the ID token, and it is renewed with the
refresh token when it expires. Without the setting the access token is sent, and that server
refuses it."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from broker.api.endpoint import request_token
from broker.paths import broker_paths
from tests.broker.desktop.brokerrun import BrokerRun
from tests.e2e.conftest import BrokerCli, DemoStack, demo_stack
from tests.e2e.test_cli_e2e import claims
from tests.support.desktop import wait_for
from tests.support.secret_service import SecretServiceHandle

pytestmark = pytest.mark.integration


def add_and_sign_in(cli: BrokerCli, stack: DemoStack, *send: str) -> None:
    cli.ok("add", stack.mcp_url, "--client-id", "demo-broker", "--provider", "cognito", *send)
    cli.ok("login", stack.mcp_url)


def test_the_id_token_is_sent_where_it_is_required_and_renewed_when_it_expires(
    broker_cli: BrokerCli, secret_service: SecretServiceHandle, tmp_path: Path
) -> None:
    with demo_stack(
        access_token_ttl=3600, rotation=False, require_id_token=True, id_token_ttl=12
    ) as stack:
        add_and_sign_in(broker_cli, stack, "--send", "id-token")

        called = broker_cli.ok("call", stack.mcp_url, "whoami")
        token = broker_cli.ok("token", stack.mcp_url).strip()
        headers = json.loads(broker_cli.ok("headers", stack.mcp_url))

        assert "user demo" in called and '"token_use": "id"' in called, called
        assert claims(token)["token_use"] == "id" and claims(token)["aud"] == "demo-broker"
        assert headers == {"Authorization": f"Bearer {token}"}

        # The running broker's token API (what the bridge and MCP clients use) too.
        env = {k: v for k, v in broker_cli.env.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
        paths = broker_paths(env)
        broker = BrokerRun(env, tmp_path / "broker.log", "--headless")
        try:
            wait_for("the broker's API", lambda: "token API listening" in broker.log() or None, 120)
            served = request_token(stack.mcp_url, paths=paths).access_token
            assert claims(served)["token_use"] == "id"
            assert "user demo" in broker_cli.ok("call", stack.mcp_url, "whoami")

            # The ID token lives 12 s, the access token an hour: the ID token is renewed with
            # the refresh token on its own clock, as an access token would be.
            refreshes = stack.counter.refreshes
            time.sleep(max(0.0, claims(served)["exp"] - time.time()) + 1)
            renewed = request_token(stack.mcp_url, paths=paths).access_token
            assert claims(renewed)["token_use"] == "id" and renewed != served
            assert claims(renewed)["exp"] > time.time()
            assert stack.counter.refreshes > refreshes
            assert "user demo" in broker_cli.ok("call", stack.mcp_url, "whoami")
        finally:
            broker.kill()
        assert served not in broker.log() and renewed not in broker.log()


def test_without_the_setting_the_access_token_is_sent_and_such_a_server_refuses_it(
    broker_cli: BrokerCli, secret_service: SecretServiceHandle
) -> None:
    with demo_stack(access_token_ttl=3600, rotation=False, require_id_token=True) as stack:
        add_and_sign_in(broker_cli, stack)

        token = broker_cli.ok("token", stack.mcp_url).strip()
        refused = broker_cli.run("call", stack.mcp_url, "whoami")

        assert claims(token)["token_use"] == "access"
        assert refused.returncode == 4, refused.stderr
        assert "refused" in refused.stderr
