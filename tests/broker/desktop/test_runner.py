"""The long-running broker shuts down cleanly: Quit stops the API, the refresher and the worker."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx2
import pytest

from broker.desktop.instance import hold_instance
from broker.desktop.menu import Action, Command
from broker.desktop.runner import BrokerSession
from broker.paths import broker_paths
from tests.support.desktop import wait_for
from tests.support.secret_service import SecretServiceHandle

pytestmark = pytest.mark.integration


def test_quit_stops_every_part_and_leaves_no_thread(
    secret_service: SecretServiceHandle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MCP_BROKER_HOME", str(tmp_path / "home"))
    before = set(threading.enumerate())
    with hold_instance(broker_paths()) as instance:
        session = BrokerSession(instance, None, None)
        running = threading.Thread(target=session.run, args=(True,), name="test-broker")
        running.start()
        api = wait_for("the token API", lambda: session.api)
        answer = httpx2.get(f"{api.url}/v1/openapi.json", headers={"X-MCP-Broker": "1"}, timeout=10)
        assert (answer.status_code, answer.json()["openapi"]) == (200, "3.1.0")  # it serves

        session.controller.post(Command(Action.QUIT))
        running.join(30)

    assert not running.is_alive()

    # The keyring thread was told to stop at Quit and ends once its queued calls are done.
    def left() -> list[str]:
        return [t.name for t in threading.enumerate() if t not in before]

    try:
        wait_for("every thread the broker started to end", lambda: not left(), timeout=10)
    except AssertionError:
        assert left() == []
    with pytest.raises(httpx2.TransportError):
        httpx2.get(f"{api.url}/v1/openapi.json", timeout=10)
    assert not broker_paths().endpoint_file.exists()


def test_any_token_change_ends_the_apis_reuse_of_the_old_token(
    secret_service: SecretServiceHandle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refresh, or a sign-in seen from another process, must not leave the API handing out
    the previous token for its reuse second."""
    from broker.tokens.service import KeyStatus, State
    from broker.tokens.tokenset import TokenKey, TokenSet

    monkeypatch.setenv("MCP_BROKER_HOME", str(tmp_path / "home"))
    url = "https://a.example/mcp"
    key = TokenKey("https://as.example", "client", url)
    with hold_instance(broker_paths()) as instance:
        session = BrokerSession(instance, None, None)
        running = threading.Thread(target=session.run, args=(True,), name="test-broker")
        running.start()
        try:
            api = wait_for("the token API", lambda: session.api)
            api._recent.put(url, TokenSet(key, "CANARY-old", expires_at=4e9))
            assert api._recent.get(url, 0) is not None

            for listener in list(session.broker.service._listeners):
                listener(key, KeyStatus(key, State.VALID))  # what the service reports on change

            assert api._recent.get(url, 0) is None
        finally:
            session.controller.post(Command(Action.QUIT))
            running.join(30)
