"""Tokens from the running broker's local token API (``POST /v1/token``, DESIGN §3)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from broker.api import endpoint
from broker.bridge.tokens import (
    MIN_VALID_SECONDS,
    RENEW_MIN_VALID_SECONDS,
    missing_scopes,
    sign_in_hint,
)
from broker.errors import InsufficientScope, InteractionRequired
from broker.oauth.scopes import union_scopes

if TYPE_CHECKING:
    from broker.paths import BrokerPaths


class ApiTokens:
    """Tokens from the running broker (``POST /v1/token``, DESIGN §3) as its default client."""

    def __init__(self, resource: str, paths: BrokerPaths | None = None) -> None:
        self.resource = resource
        self._paths = paths
        self._scope: str | None = None  # what the last token carried

    def token(self) -> str:
        return self._ask(MIN_VALID_SECONDS)

    def renewed(self, refused: str) -> str:
        fresh = self._ask(RENEW_MIN_VALID_SECONDS)
        if fresh == refused:
            raise InteractionRequired(
                f"{self.resource} refused the broker's current token; {sign_in_hint(self.resource)}"
            )
        return fresh

    def stepped_up(self, refused: str, challenged_scope: str | None) -> str:
        missing = missing_scopes(self._scope, challenged_scope)
        if not missing:
            raise InsufficientScope(
                f"{self.resource} still refuses the token for lack of scope "
                f"{challenged_scope or '(unnamed)'}"
            )
        scope = union_scopes(self._scope, challenged_scope)
        try:
            return self._ask(MIN_VALID_SECONDS, scope)
        except InsufficientScope:
            raise InsufficientScope(
                f"{self.resource} needs the scope {' '.join(sorted(missing))}, which the current "
                f"sign-in lacks; {sign_in_hint(self.resource, sorted(missing))} to grant it"
            ) from None

    def close(self) -> None:
        pass  # each request opens (and closes) its own loopback connection

    def _ask(self, min_valid: float, scope: str | None = None) -> str:
        answer = endpoint.request_token(
            self.resource,
            scope=scope,
            min_valid=min_valid,
            paths=self._paths,
        )
        self._scope = answer.scope
        return answer.access_token
