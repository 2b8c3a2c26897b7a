"""``mcp-broker logout URL`` while the broker runs (tray or headless) in another process: the
running broker must stop handing out the signed-out server's token at once, not when it expires."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.api.endpoint import request_token
from broker.errors import InteractionRequired
from broker.paths import broker_paths
from tests.broker.desktop.brokerrun import BrokerRun
from tests.e2e.conftest import BrokerCli, demo_stack
from tests.e2e.test_cli_e2e import sign_in
from tests.support.desktop import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_a_cli_logout_ends_the_running_brokers_serving_of_the_token(
    broker_cli: BrokerCli, tmp_path: Path
) -> None:
    with demo_stack(access_token_ttl=3600, rotation=False) as stack:
        sign_in(broker_cli, stack)
        env = {k: v for k, v in broker_cli.env.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
        paths = broker_paths(env)
        broker = BrokerRun(env, tmp_path / "broker.log", "--headless")
        try:
            wait_for("the broker's API", lambda: "token API listening" in broker.log() or None, 120)
            served = request_token(stack.mcp_url, paths=paths).access_token

            logout = broker_cli.ok("logout", stack.mcp_url)

            def refused() -> bool | None:
                try:
                    request_token(stack.mcp_url, paths=paths)
                except InteractionRequired:
                    return True
                return None

            # Within a few seconds (the stamp is looked at once a second, the API reuses an
            # answer for a second), not in an hour when the access token expires.
            wait_for("the running broker to refuse the signed-out server", refused, 10)
            again = broker_cli.run("token", stack.mcp_url)
        finally:
            broker.kill()
        log = broker.log()

    assert "revoked" in logout
    assert again.returncode == 4  # and the CLI itself agrees
    assert "signed in or out by another process" in log
    assert served not in log
