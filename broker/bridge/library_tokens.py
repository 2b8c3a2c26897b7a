"""Tokens from the broker library in this process, when no broker is running."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from broker.bridge.tokens import MIN_VALID_SECONDS, missing_scopes, sign_in_hint
from broker.errors import InsufficientScope, InteractionRequired

if TYPE_CHECKING:
    from broker.app import Broker
    from broker.tokens.tokenset import TokenSet

logger = logging.getLogger(__name__)


class LibraryTokens:
    """Tokens from the broker library in this process (no broker is running): the keyring
    store, the token service's cache and refresh, and for step-up the broker's one sign-in
    flow (:mod:`broker.signin.flow`), as ``mcp-broker login URL --scope S`` runs it."""

    def __init__(self, broker: Broker, resource: str) -> None:
        self.resource = resource
        self._broker = broker
        self._step_up_lock = threading.Lock()
        self._handed: dict[str, TokenSet] = {}  # the sets of the last tokens handed out
        self._handed_lock = threading.Lock()
        #: DPoP proofs for the tokens handed out (:class:`broker.signin.httpauth.RequestProofs`).
        self.proofs = broker.dpop.resource_proofs(self._handed_set)

    def token(self) -> str:
        return self._current(MIN_VALID_SECONDS).access_token

    def renewed(self, refused: str) -> str:
        current = self._current(MIN_VALID_SECONDS)
        if current.access_token != refused:
            return current.access_token
        fresh = self._handing(self._broker.renewed(self.resource))
        if fresh.access_token == refused:
            raise InteractionRequired(
                f"{self.resource} refused the broker's current token; {sign_in_hint(self.resource)}"
            )
        return fresh.access_token

    def stepped_up(self, refused: str, challenged_scope: str | None) -> str:
        with self._step_up_lock:  # one step-up at a time; the others then find its token
            current = self._current(MIN_VALID_SECONDS)
            missing = missing_scopes(current.scope, challenged_scope)
            if not missing and current.access_token != refused:
                return current.access_token
            if not missing:
                raise InsufficientScope(
                    f"{self.resource} still refuses the token for lack of scope "
                    f"{challenged_scope or '(unnamed)'}"
                )
            logger.info(
                "signing in to %s again for the scope %s", self.resource, " ".join(sorted(missing))
            )
            return self._handing(
                self._broker.login(self.resource, extra_scope=challenged_scope)
            ).access_token

    def close(self) -> None:
        self._broker.close()

    def _current(self, min_valid: float) -> TokenSet:
        return self._handing(self._broker.token(self.resource, min_valid))

    def _handing(self, tokens: TokenSet) -> TokenSet:
        """Remember the set of a token handed out, for its DPoP proofs: the last few only."""
        with self._handed_lock:
            handed = self._handed
            if tokens.access_token not in handed:
                if len(handed) >= 4:
                    handed.pop(next(iter(handed)))
                handed[tokens.access_token] = tokens
        return tokens

    def _handed_set(self, access_token: str) -> TokenSet | None:
        with self._handed_lock:
            return self._handed.get(access_token)
