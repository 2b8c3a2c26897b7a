from __future__ import annotations

from broker.oauth.scopes import choose_scope, step_up_scope, with_offline_access


def test_challenge_scope_wins_over_prm_scopes() -> None:
    assert choose_scope("mcp:basic", ["mcp:basic", "mcp:admin"]) == "mcp:basic"


def test_prm_scopes_are_used_without_a_challenge_scope() -> None:
    assert choose_scope(None, ["files:read", "files:write"]) == "files:read files:write"


def test_scope_is_omitted_when_nothing_defines_it() -> None:
    assert choose_scope(None, None) is None
    assert choose_scope("  ", []) is None
    # The authorization server's own list is not a reason to ask for everything it has.
    assert choose_scope(None, None, ["openid", "email", "offline_access"]) is None


def test_offline_access_only_when_the_authorization_server_lists_it() -> None:
    assert choose_scope(None, ["mcp:basic"], ["mcp:basic", "offline_access"]) == (
        "mcp:basic offline_access"
    )
    assert choose_scope(None, ["mcp:basic"], ["mcp:basic", "mcp:read"]) == "mcp:basic"
    assert choose_scope(None, ["mcp:basic"], None) == "mcp:basic"
    assert with_offline_access("offline_access a", ["offline_access"]) == "offline_access a"


def test_step_up_is_the_union_of_old_and_challenged_scopes() -> None:
    assert step_up_scope("mcp:basic", "mcp:write") == "mcp:basic mcp:write"
    assert step_up_scope("a b", "b c") == "a b c"
    assert step_up_scope(None, "mcp:write") == "mcp:write"
    assert step_up_scope("a", "b", ["offline_access"]) == "a b offline_access"
