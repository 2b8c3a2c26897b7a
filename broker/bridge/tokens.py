"""What the bridge's token sources share (:mod:`broker.bridge.sources` picks one).

Each source is a :class:`broker.signin.httpauth.TokenSource`: the one 401/403 handler asks it
for a token before every request, a renewed one after a 401 and a stepped-up one after a 403
``insufficient_scope``, at most once each per request.
"""

from __future__ import annotations

from collections.abc import Iterable

from broker.hints import login_command

#: Seconds a token must stay valid to be attached (the broker caps it for short-lived tokens).
MIN_VALID_SECONDS = 30.0
#: Asked after a 401: as much life as the broker will promise, so a fresher token comes back.
RENEW_MIN_VALID_SECONDS = 24 * 3600.0


def sign_in_hint(url: str, scopes: Iterable[str] = ()) -> str:
    return f"sign in from the mcp-broker tray menu or run `{login_command(url, scopes)}`"


def missing_scopes(granted: str | None, wanted: str | None) -> set[str]:
    return set((wanted or "").split()) - set((granted or "").split())
