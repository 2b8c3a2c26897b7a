"""Resource Indicators for OAuth 2.0 (RFC 8707), as Cognito's resource binding does it.

A client may send one ``resource`` on the authorization request (§2.1) and on the token and refresh
requests (§2.2). It must be the identifier of a configured resource server; the access token then
carries ``aud`` = that identifier. An unknown resource, several resources, or a token-request
resource that differs from the one the grant was bound to → ``invalid_target``.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from demo_server.idp.errors import InvalidTargetError


def requested_resource(values: Sequence[str], known: Collection[str]) -> str | None:
    """The single requested resource, or None; refuse several or unknown ones (RFC 8707 §2)."""
    if not values:
        return None
    if len(values) > 1:
        raise InvalidTargetError("Only one 'resource' is supported.")
    resource = values[0]
    if resource not in known:
        raise InvalidTargetError("The 'resource' is not a resource server of this pool.")
    return resource


def bound_resource(
    granted: str | None, values: Sequence[str], known: Collection[str]
) -> str | None:
    """The audience of a token issued from a grant bound to ``granted`` (RFC 8707 §2.2)."""
    requested = requested_resource(values, known)
    if requested is None:
        return granted
    if granted is not None and requested != granted:
        raise InvalidTargetError("The 'resource' differs from the one that was authorized.")
    return requested
