"""The loopback callback listener: exact port, strays ignored, escaped pages, busy ports."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import httpx2
import pytest

from broker.errors import (
    CallbackPortUnavailable,
    CallbackRejected,
    SignInCancelled,
    SignInTimeout,
)
from broker.safetext import html_text
from broker.signin.callback import CallbackListener
from tests.support.procs import fixed_port

pytestmark = pytest.mark.integration

STATE = "expected-state"


def judge(params: Mapping[str, str]) -> str:
    if params.get("error"):
        raise CallbackRejected(f"refused: {params.get('error_description', '')}")
    return params["code"]


def listener_on(ports: tuple[int, ...] = ()) -> CallbackListener[str]:
    listener: CallbackListener[str] = CallbackListener.bind(ports)
    listener.expect(lambda p: p.get("state") == STATE, judge)
    return listener


def get(url: str) -> httpx2.Response:
    with httpx2.Client(trust_env=False, timeout=10) as http:
        return http.get(url)


def port_is_free(port: int) -> bool:
    """Whether a new listener can take the port (connections left in TIME_WAIT don't count)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            s.listen()
        except OSError:
            return False
        return True


@contextmanager
def held_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def test_binds_loopback_on_the_exact_port_of_the_redirect_uri() -> None:
    port = fixed_port()
    with listener_on((port,)) as listener:
        host, bound = listener._server.socket.getsockname()
        assert (host, bound) == ("127.0.0.1", port)
        assert listener.redirect_uri == f"http://127.0.0.1:{port}/callback"
        assert not port_is_free(port)
    assert port_is_free(port)


def test_ephemeral_port_when_no_ports_are_given() -> None:
    with listener_on() as listener:
        assert listener.port > 0
        assert listener._server.socket.getsockname()[0] == "127.0.0.1"


def test_stray_requests_are_ignored_until_the_real_callback() -> None:
    with listener_on() as listener:
        base = f"http://127.0.0.1:{listener.port}"
        assert get(f"{base}/favicon.ico").status_code == 404
        assert get(f"{base}/other?code=x&state={STATE}").status_code == 404
        assert get(f"{base}/callback?code=x").status_code == 400
        assert get(f"{base}/callback?code=x&state=forged").status_code == 400
        answer = get(f"{base}/callback?code=real&state={STATE}")
        assert answer.status_code == 200 and "signed in" in answer.text.lower()
        assert listener.wait(timeout=10) == "real"
        assert answer.headers["Cache-Control"] == "no-store"
        assert answer.headers["Referrer-Policy"] == "no-referrer"


def test_port_is_released_after_success() -> None:
    listener = listener_on()
    port = listener.port
    get(f"{listener.redirect_uri}?code=c&state={STATE}")
    assert listener.wait(timeout=10) == "c"
    listener.close()
    assert port_is_free(port)


def test_port_is_released_after_an_error() -> None:
    listener = listener_on()
    port = listener.port
    get(f"{listener.redirect_uri}?error=access_denied&state={STATE}")
    with pytest.raises(CallbackRejected):
        listener.wait(timeout=10)
    listener.close()
    assert port_is_free(port)


def test_timeout_raises_and_releases_the_port() -> None:
    listener = listener_on()
    port = listener.port
    with pytest.raises(SignInTimeout):
        listener.wait(timeout=0.05)
    listener.close()
    assert port_is_free(port)


def test_cancel_from_another_thread_ends_the_wait_and_releases_the_port() -> None:
    listener = listener_on()
    port = listener.port
    threading.Thread(target=listener.cancel).start()
    with pytest.raises(SignInCancelled):
        listener.wait(timeout=30)
    listener.close()
    assert port_is_free(port)


def test_busy_fixed_port_moves_to_the_next_one() -> None:
    with held_port() as busy:
        spare = fixed_port()
        with listener_on((busy, spare)) as listener:
            assert listener.port == spare


def test_all_fixed_ports_busy_is_a_clear_error() -> None:
    with held_port() as a, held_port() as b, pytest.raises(CallbackPortUnavailable) as caught:
        listener_on((a, b))
    assert f"{a}, {b}" in str(caught.value)


def test_error_text_is_escaped_on_the_page() -> None:
    with listener_on() as listener:
        hostile = "<script>alert(1)</script>\x1b[31mred"
        query = httpx2.QueryParams({"state": STATE, "error": "x", "error_description": hostile})
        answer = get(f"{listener.redirect_uri}?{query}")
        assert answer.status_code == 400
        assert "<script>" not in answer.text and "&lt;script&gt;" in answer.text
        assert "\x1b" not in answer.text
        with pytest.raises(CallbackRejected):
            listener.wait(timeout=10)


def test_page_text_drops_control_characters_and_escapes_markup() -> None:
    assert html_text('a<b>"&\x1b[2J\x07\nz') == "a&lt;b&gt;&quot;&amp; [2J z"


def test_request_line_is_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    with listener_on() as listener:
        get(f"{listener.redirect_uri}?code=CANARY-CODE-123&state={STATE}")
        listener.wait(timeout=10)
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("broker")]
    assert ours and not any("CANARY-CODE-123" in m or STATE in m for m in ours)
