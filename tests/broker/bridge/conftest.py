"""Bridge tests reuse the end-to-end fixtures: a private Secret Service, the demo stack, and
``mcp-broker`` as a subprocess with its own home and a headless browser driver."""

from tests.e2e.conftest import broker_cli  # noqa: F401 - fixture
from tests.support.secret_service import (  # noqa: F401 - fixtures
    secret_service,
    secret_service_daemons,
)
