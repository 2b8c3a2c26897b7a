"""An idle token API costs nothing: its serving loop blocks until there is work.

waitress converts ``asyncore_loop_timeout`` with ``int()``, so a fractional timeout becomes 0 and
the loop polls without blocking: a full core, all day, on a laptop that asks for nothing.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.broker.api.conftest import Api
from tests.support.cpu import assert_idle

pytestmark = pytest.mark.integration


def test_the_running_api_server_blocks_between_events(api: Api) -> None:
    server: Any = api.server._server
    assert server.adj.asyncore_loop_timeout > 0  # the live server's, after waitress parsed it


def test_an_idle_api_burns_no_cpu_in_its_serving_thread(api: Api) -> None:
    assert api.token({"resource": "https://a.example/mcp"}).status_code == 200  # it serves
    assert_idle(api.server._thread)
