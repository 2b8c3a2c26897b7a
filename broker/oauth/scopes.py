"""Which scopes to ask for (MCP authorization, "Scope Selection Strategy"; SEP-2207, SEP-2350).

- The challenge's ``scope`` wins; else the PRM ``scopes_supported``; else no ``scope`` at all.
- On a 403 ``insufficient_scope`` the new request is the union of the scopes asked for before and
  the challenged ones (at most once per operation: the caller counts).
- ``offline_access`` is added only when the authorization server lists it in ``scopes_supported``.
- Where scopes are named after the resource server they belong to (Amazon Cognito's custom scopes
  are ``<resource server identifier>/<name>``), a scope named under another server's identifier is
  never requested for this one: a hostile server's 401 must not get the user to grant it another
  server's ``…/admin`` (:func:`own_scopes`).
"""

from __future__ import annotations

from collections.abc import Sequence

OFFLINE_ACCESS = "offline_access"

__all__ = [
    "OFFLINE_ACCESS",
    "choose_scope",
    "is_scope_of",
    "own_scopes",
    "step_up_scope",
    "union_scopes",
    "with_offline_access",
]


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


def is_scope_of(scope: str, resource: str) -> bool:
    """Whether ``scope`` is named under ``resource`` as its identifier (``<resource>/<name>``)."""
    return scope.startswith(resource.rstrip("/") + "/")


def own_scopes(scope: str | None, resources: Sequence[str]) -> tuple[str | None, list[str]]:
    """``scope`` without the resource-server scopes of other servers, and the ones dropped.

    A scope with a ``/`` is a resource-server scope (``openid``, ``email``, ``offline_access``
    have none); it is kept only when named under one of ``resources`` (this server's URL or its
    PRM ``resource``).
    """
    if scope is None:
        return None, []
    kept: list[str] = []
    dropped: list[str] = []
    for name in scope.split():
        mine = "/" not in name or any(is_scope_of(name, r) for r in resources)
        (kept if mine else dropped).append(name)
    return (" ".join(kept) or None), dropped
