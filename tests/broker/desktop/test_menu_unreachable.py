"""The tray says "can't reach the authorization server" while refreshes only fail for a passing
reason, never "sign in": signing in would not help, and the refresh token is still good."""

from __future__ import annotations

from broker.desktop.menu import Overall, View, entries, overall, title
from broker.tokens.status import ServerStatus

A = "http://127.0.0.1:8000/mcp"
B = "https://b.example/mcp"
NOW = 1_800_000_000.0
ISSUER = "https://idp.example/pool"


def retrying(url: str, expires_in: float) -> ServerStatus:
    reason = "can't reach the authorization server: https://idp.example could not be reached"
    return ServerStatus(url, "retrying", ISSUER, "c", reason=reason, expires_at=NOW + expires_in)


def test_a_server_whose_refreshes_fail_for_now_is_unreachable_not_sign_in() -> None:
    view = View(servers=(retrying(A, -5),), now=NOW)

    (_open, _separator, server, *_) = entries(view)

    assert overall(view) is Overall.REFRESHING
    assert title(view) == "MCP OAuth Broker: can't reach the authorization server (1 of 1)"
    assert "can't reach the authorization server" in server.label
    assert "sign" not in server.label.lower()


def test_a_sign_in_in_progress_is_still_called_refreshing() -> None:
    view = View(servers=(retrying(A, 600), retrying(B, 600)), now=NOW, busy=frozenset({B}))

    assert title(view) == "MCP OAuth Broker: refreshing (2 of 2)"
