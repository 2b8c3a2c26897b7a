"""What the bridge asks of a token source (:mod:`broker.bridge.sources` picks one).

Every source answers the same three questions, each a blocking call (run it off the event loop):

- :meth:`TokenSource.token` — a token valid for a while yet (the broker answers from its cache
  and refreshes when needed, so asking before every request is cheap);
- :meth:`TokenSource.renewed` — a token other than one the server just refused (401), or an
  error: asked once per request;
- :meth:`TokenSource.stepped_up` — a token that also carries the scopes a 403
  ``insufficient_scope`` named: re-authorization with the union of the old and the challenged
  scopes (MCP authorization, "Scope Challenge Handling"), at most once per request.

Errors are :mod:`broker.errors` classes; ``InteractionRequired`` means the user must sign in.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from broker.hints import login_command

#: Seconds a token must stay valid to be attached (the broker caps it for short-lived tokens).
MIN_VALID_SECONDS = 30.0
#: Asked after a 401: as much life as the broker will promise, so a fresher token comes back.
RENEW_MIN_VALID_SECONDS = 24 * 3600.0


class TokenSource(Protocol):
    resource: str

    def token(self) -> str: ...

    def renewed(self, refused: str) -> str: ...

    def stepped_up(self, refused: str, challenged_scope: str | None) -> str: ...

    def close(self) -> None: ...


def sign_in_hint(url: str, scopes: Iterable[str] = ()) -> str:
    return f"sign in from the mcp-broker tray menu or run `{login_command(url, scopes)}`"


def missing_scopes(granted: str | None, wanted: str | None) -> set[str]:
    return set((wanted or "").split()) - set((granted or "").split())
