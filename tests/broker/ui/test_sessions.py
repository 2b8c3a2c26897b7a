"""Launch tokens and sessions: single use, short lives, bounded numbers (a fake clock)."""

from __future__ import annotations

from broker.ui.sessions import (
    LAUNCH_LIFETIME,
    MAX_SESSIONS,
    SESSION_IDLE,
    SESSION_MAX,
    LaunchTokens,
    Sessions,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_launch_token_works_once_and_lands_where_it_was_minted_for() -> None:
    tokens = LaunchTokens(clock=Clock())
    token = tokens.mint("/ui/clients")

    assert len(token) >= 43  # 256 bits
    assert tokens.redeem(token) == "/ui/clients"
    assert tokens.redeem(token) is None
    assert tokens.redeem("") is None and tokens.redeem(token[:-1] + "x") is None


def test_a_launch_token_expires_after_a_minute() -> None:
    clock = Clock()
    tokens = LaunchTokens(clock=clock)
    late, fresh = tokens.mint("/ui/"), tokens.mint("/ui/")

    clock.now += LAUNCH_LIFETIME - 1
    assert tokens.redeem(fresh) == "/ui/"
    clock.now += 1
    assert tokens.redeem(late) is None


def test_sessions_end_when_idle_or_old_and_are_bounded() -> None:
    clock = Clock()
    sessions = Sessions(clock=clock)
    cookie, session = sessions.open()
    assert sessions.find(cookie) is session and sessions.find("other") is None

    clock.now += SESSION_IDLE - 1
    assert sessions.find(cookie) is session  # a request keeps it alive...
    clock.now += SESSION_IDLE - 1
    assert sessions.find(cookie) is session
    clock.now = session.created + SESSION_MAX
    assert sessions.find(cookie) is None  # ...but not past its maximum age

    idle, _ = sessions.open()
    clock.now += SESSION_IDLE
    assert sessions.find(idle) is None

    first, _ = sessions.open()
    for _ in range(MAX_SESSIONS):
        clock.now += 1
        sessions.open()
    assert sessions.find(first) is None


def test_the_csrf_token_is_the_sessions_own() -> None:
    sessions = Sessions(clock=Clock())
    _, one = sessions.open()
    _, two = sessions.open()

    assert one.csrf_matches(one.csrf)
    assert not one.csrf_matches(two.csrf) and not one.csrf_matches(None)
    assert not one.csrf_matches("") and not one.csrf_matches(one.csrf + "x")
