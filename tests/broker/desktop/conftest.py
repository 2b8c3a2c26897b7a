from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.broker.desktop.brokerrun import ROOT
from tests.support.desktop import (  # noqa: F401 - fixtures
    bare_desktop,
    desktop,
    desktop_without_notifications,
)
from tests.support.secret_service import SecretServiceDaemons


@pytest.fixture
def broker_env(
    tmp_path: Path, secret_service_daemons: SecretServiceDaemons
) -> Iterator[dict[str, str]]:
    """Environment for a broker process: its own home, the private keyring, no display."""
    if secret_service_daemons.is_locked():
        secret_service_daemons.unlock()
    env = secret_service_daemons.environ()
    env["MCP_BROKER_HOME"] = str(tmp_path / "home")
    env["PYTHON_KEYRING_BACKEND"] = "keyring.backends.SecretService.Keyring"
    env["PYTHONPATH"] = str(ROOT)
    env.pop("DISPLAY", None)
    env.pop("WAYLAND_DISPLAY", None)
    yield env
