"""The sign-in callback listener answers only ``Host: 127.0.0.1:PORT`` (or ``localhost:PORT``), like
the token API: a DNS-rebinding page that reaches it under its own hostname gets one and the same
answer whether or not a sign-in is waiting, so it cannot tell that one is in progress, and it
cannot complete or spoil the sign-in.
"""

from __future__ import annotations

import httpx2
import pytest

from broker.errors import SignInTimeout
from broker.signin.callback import CallbackListener
from tests.broker.signin.test_callback_listener import STATE, listener_on

pytestmark = pytest.mark.integration


def get(port: int, path: str, host: str) -> httpx2.Response:
    with httpx2.Client(trust_env=False, timeout=10) as http:
        return http.get(f"http://127.0.0.1:{port}{path}", headers={"Host": host})


@pytest.mark.parametrize(
    "host",
    ["rebind.attacker.example:{port}", "127.0.0.1:{port}.", "127.0.0.2:{port}", "127.0.0.1:1"],
)
def test_a_foreign_host_learns_nothing_and_cannot_complete_the_sign_in(host: str) -> None:
    waiting = listener_on()
    idle: CallbackListener[str] = CallbackListener.bind()  # no sign-in expected here
    try:
        answers = [
            get(listener.port, path, host.format(port=listener.port))
            for listener in (waiting, idle)
            for path in (f"/callback?state={STATE}&code=attacker-code", "/callback", "/other")
        ]
        with pytest.raises(SignInTimeout):
            waiting.wait(timeout=0.5)  # the sign-in did not end with the page's code
    finally:
        waiting.close()
        idle.close()

    assert {a.status_code for a in answers} == {403}
    assert len({a.content for a in answers}) == 1  # the same answer, waiting or not


def test_the_listeners_own_host_still_completes_the_sign_in() -> None:
    with listener_on() as listener:
        answer = get(
            listener.port, f"/callback?state={STATE}&code=the-code", f"127.0.0.1:{listener.port}"
        )
        assert answer.status_code == 200
        assert listener.wait(timeout=5) == "the-code"
