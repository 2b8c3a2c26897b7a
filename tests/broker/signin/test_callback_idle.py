"""A callback listener waiting for the browser costs nothing: it sleeps until a connection comes
(or ``close()`` wakes it), and close still frees the port."""

from __future__ import annotations

import httpx2
import pytest

from broker.signin.callback import CallbackListener
from tests.support.cpu import assert_idle

pytestmark = pytest.mark.integration


def test_a_waiting_listener_burns_no_cpu_and_close_still_frees_the_port() -> None:
    listener: CallbackListener[str] = CallbackListener.bind()
    listener.expect(lambda params: params.get("state") == "s", lambda params: params["code"])
    try:
        with httpx2.Client(trust_env=False, timeout=10) as http:
            assert http.get(f"http://127.0.0.1:{listener.port}/favicon.ico").status_code == 404
        assert_idle(listener._thread)
    finally:
        listener.close()
    assert not listener._thread.is_alive()
    with httpx2.Client(trust_env=False, timeout=10) as http, pytest.raises(httpx2.TransportError):
        http.get(f"http://127.0.0.1:{listener.port}/callback")
