"""``broker.tokens.id_token`` on its own: the expiry of a set kept for an ID-token server, and
what is handed out from it (never a token in an error message)."""

from __future__ import annotations

import pytest

from broker.errors import InteractionRequired
from broker.tokens.id_token import as_sent, bounded_by_id_token
from broker.tokens.tokenset import TokenKey, TokenSet
from tests.broker.test_send_id_token import id_token

KEY = TokenKey("https://issuer", "client", "https://mcp.example/mcp")
NOW = 1_800_000_000.0


def kept(id_tok: str | None, expires_at: float = NOW + 3600) -> TokenSet:
    return TokenSet(KEY, "CANARY-access", expires_at=expires_at, obtained_at=NOW, id_token=id_tok)


def test_the_earlier_expiry_wins() -> None:
    assert bounded_by_id_token(kept(id_token(NOW + 600))).expires_at == NOW + 600
    assert bounded_by_id_token(kept(id_token(NOW + 9000))).expires_at == NOW + 3600


@pytest.mark.parametrize("renewal", [False, True])
def test_no_id_token_needs_a_sign_in(renewal: bool) -> None:
    with pytest.raises(InteractionRequired) as raised:
        bounded_by_id_token(kept(None), renewal=renewal)
    assert ("without an ID token" in str(raised.value)) is renewal


@pytest.mark.parametrize(
    "unreadable", ["not-a-jwt", "a.CANARY-b.c", id_token(NOW).replace(".", "", 1)]
)
def test_an_id_token_without_a_readable_exp_is_refused_unechoed(unreadable: str) -> None:
    with pytest.raises(InteractionRequired) as raised:
        bounded_by_id_token(kept(unreadable))
    assert "CANARY" not in str(raised.value)
    with pytest.raises(InteractionRequired):
        as_sent(kept(unreadable), NOW)


def test_the_id_token_is_handed_out_in_the_place_of_the_access_token() -> None:
    sent = as_sent(kept(id_token(NOW + 600)), NOW)
    assert sent.access_token == id_token(NOW + 600) and sent.expires_at == NOW + 600
    assert "CANARY" not in repr(sent)


def test_an_expired_id_token_is_never_handed_out() -> None:
    # e.g. send = "id-token" typed into the config after the sign-in: nothing bounded the set.
    with pytest.raises(InteractionRequired, match="sign-in required") as raised:
        as_sent(kept(id_token(NOW - 1)), NOW)
    assert "CANARY" not in str(raised.value)
