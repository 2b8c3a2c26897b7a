"""The ``[broker]`` settings the running broker applies: ``api_port`` (the token API's port) and
``log_level`` (its log, unless ``-v`` is given)."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.desktop.runner import run
from broker.paths import broker_paths
from tests.support.secret_service import SecretServiceHandle

pytestmark = pytest.mark.integration


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port some other program listens on."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        yield other.getsockname()[1]


@pytest.fixture
def root_level() -> Iterator[None]:
    level = logging.getLogger().level
    try:
        logging.getLogger().setLevel(logging.WARNING)
        yield
    finally:
        logging.getLogger().setLevel(level)


@pytest.mark.usefixtures("root_level")
def test_the_configured_api_port_and_log_level_are_used(
    secret_service: SecretServiceHandle,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    taken_port: int,
) -> None:
    monkeypatch.setenv("MCP_BROKER_HOME", str(tmp_path / "home"))
    config = broker_paths().ensure_private_dirs().config_file
    config.write_text(f'[broker]\nlog_level = "debug"\napi_port = {taken_port}\n')
    config.chmod(0o600)

    code = run(True, config=str(config))

    assert code == 3  # a configuration problem, said plainly: the port is another program's
    assert f"127.0.0.1:{taken_port} (api_port in {config}" in caplog.text
    assert logging.getLogger().level == logging.DEBUG
    assert not broker_paths().endpoint_file.exists()


@pytest.mark.usefixtures("root_level")
def test_minus_v_wins_over_the_configured_log_level(
    secret_service: SecretServiceHandle,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    taken_port: int,
) -> None:
    monkeypatch.setenv("MCP_BROKER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MCP_BROKER_LOG_LEVEL", "error")
    monkeypatch.setenv("MCP_BROKER_API_PORT", str(taken_port))  # so that it stops at once

    assert run(True, verbose=True) == 3
    assert logging.getLogger().level == logging.WARNING  # as -v set it (here: the fixture's)
