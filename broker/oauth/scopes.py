"""Which scopes to ask for (MCP authorization, "Scope Selection Strategy"; SEP-2207, SEP-2350).

- The challenge's ``scope`` wins; else the PRM ``scopes_supported``; else no ``scope`` at all.
- On a 403 ``insufficient_scope`` the new request is the union of the scopes asked for before and
  the challenged ones (at most once per operation: the caller counts).
- ``offline_access`` is added only when the authorization server lists it in ``scopes_supported``.
"""

from __future__ import annotations

from collections.abc import Sequence

OFFLINE_ACCESS = "offline_access"

__all__ = ["OFFLINE_ACCESS", "choose_scope", "step_up_scope", "union_scopes", "with_offline_access"]


def union_scopes(first: str | None, second: str | None) -> str | None:
    """The mcp SDK's union of two scope strings (imported when needed: the SDK is heavy)."""
    from mcp.client.auth.utils import union_scopes as sdk_union

    return sdk_union(first, second)


def choose_scope(
    challenge_scope: str | None,
    prm_scopes: Sequence[str] | None,
    as_scopes: Sequence[str] | None = None,
) -> str | None:
    """The ``scope`` for a first authorization request, or None to omit it."""
    if challenge_scope and challenge_scope.strip():
        chosen: str | None = " ".join(challenge_scope.split())
    elif prm_scopes:
        chosen = " ".join(prm_scopes)
    else:
        chosen = None
    return with_offline_access(chosen, as_scopes)


def with_offline_access(scope: str | None, as_scopes: Sequence[str] | None) -> str | None:
    """Add ``offline_access`` to a chosen scope when (and only when) the AS lists it."""
    if scope is None or not as_scopes or OFFLINE_ACCESS not in as_scopes:
        return scope
    return scope if OFFLINE_ACCESS in scope.split() else f"{scope} {OFFLINE_ACCESS}"


def step_up_scope(
    previous: str | None, challenged: str | None, as_scopes: Sequence[str] | None = None
) -> str | None:
    """The scope for re-authorization after ``insufficient_scope`` (old ∪ challenged)."""
    return with_offline_access(union_scopes(previous, challenged), as_scopes)
