"""Fixtures of the ``mcp-broker demo`` tests: the CLI as a subprocess with a private Secret
Service and the e2e browser driver (shared with tests/e2e)."""

from __future__ import annotations

from tests.e2e.conftest import broker_cli  # noqa: F401 - fixture
from tests.support.secret_service import secret_service_daemons  # noqa: F401 - fixture
