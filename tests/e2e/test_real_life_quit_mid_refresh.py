"""Quit (SIGTERM, the tray's Quit, a logout) while a refresh with rotation is in flight (issue 10).

The authorization server has already rotated the refresh token when it answers: from then on the
new one exists only in the broker's memory until its keyring write lands. A Quit must wait for
that refresh to finish and be stored, or the sign-in is lost (with a 0 s grace period the old
refresh token is refused). The server here answers 1.5 s after rotating, a slow network's
answer, and the Quit comes as the rotation happens.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from broker.api.endpoint import request_token
from tests.e2e.conftest import BrokerCli
from tests.e2e.real_life import real_life_stack, running_broker, sign_in, stored
from tests.support.secret_service import SecretServiceHandle

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TTL = 4
SLOW_ANSWER = 1.5  # seconds between the rotation and the answer reaching the broker

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class SlowAnswers:
    """WSGI middleware: a refresh grant runs (and rotates) at once, its answer leaves late."""

    def __init__(self, app: WsgiApp) -> None:
        self.app = app
        self.rotated = threading.Event()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ.get("PATH_INFO") != "/oauth2/token":
            return self.app(environ, start_response)
        body = list(self.app(environ, start_response))
        self.rotated.set()
        time.sleep(SLOW_ANSWER)
        return body


def test_quit_during_a_refresh_keeps_the_rotated_refresh_token(
    broker_cli: BrokerCli, secret_service: SecretServiceHandle, tmp_path: Path
) -> None:
    with real_life_stack(TTL, rotation=True, grace=0) as stack:
        sign_in(broker_cli, stack.mcp_url)
        with running_broker(broker_cli, tmp_path / "broker.log") as (broker, paths):
            request_token(stack.mcp_url, paths=paths)
            slow = SlowAnswers(stack.idp.app.wsgi_app)
            stack.idp.app.wsgi_app = slow  # type: ignore[method-assign]
            assert slow.rotated.wait(3 * TTL), "no proactive refresh"
            exit_code = broker.stop()  # SIGTERM while the answer is on its way
            log = broker.log()
        kept = stored(secret_service, stack.key())
        after = broker_cli.run("token", stack.mcp_url)  # a fresh process, old keyring content

    assert exit_code == 0, log
    assert kept is not None
    assert after.returncode == 0, after.stderr  # the sign-in survived the Quit
    assert stack.idp.store.reused_refresh_tokens == 0  # never a rotated-out token again
    assert "Traceback" not in log
