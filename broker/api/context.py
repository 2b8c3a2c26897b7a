"""What the API's views need, kept on ``app.extensions`` (:func:`api_context`): the token side,
the clients registry, the provider threads, the recent tokens, and the hook that tells the user a
client needs a sign-in."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from flask import current_app

from broker import errors
from broker.api.clients import ApiClients, Client
from broker.api.guards import bearer_secret
from broker.api.provider import BoundedCalls, RecentTokens, TokenProvider
from broker.hints import login_command

logger = logging.getLogger(__name__)

InteractionHook = Callable[[str, str, str | None], None]
"""Called with (resource, client name, scope) when a client was told ``interaction_required``
(scope None) or ``insufficient_scope`` (scope: what it lacks): the tray asks the user. Must
return at once; called at most once a minute per server and client, whatever the scope."""

EXTENSION = "mcp_broker_api"
NOTIFY_INTERVAL = 60.0


def log_interaction_required(resource: str, client: str, scope: str | None = None) -> None:
    logger.warning(
        "API client %r needs a sign-in to %s: %s",
        client,
        resource,
        login_command(resource, scope.split() if scope else []),
    )


@dataclass
class ApiContext:
    """What the views need, kept on ``app.extensions``."""

    provider: TokenProvider
    clients: ApiClients
    port: int
    calls: BoundedCalls
    call_timeout: float
    on_interaction_required: InteractionHook
    hosts: frozenset[str] = frozenset()
    recent: RecentTokens = field(default_factory=RecentTokens)
    _notified: dict[tuple[str, str], float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def authenticate(self, environ: dict[str, Any]) -> Client:
        presented = bearer_secret(environ)
        if presented is None:
            raise errors.InvalidClient(
                "send the client secret as Authorization: Bearer", presented=False
            )
        client = self.clients.authenticate(presented) if presented else None
        if client is None:
            raise errors.InvalidClient("unknown client secret", presented=True)
        return client

    def interaction_required(self, resource: str, client: str, scope: str | None = None) -> None:
        now = time.monotonic()
        what = (resource, client)  # not the scope: a client varying it must not flood the user
        with self._lock:
            if now - self._notified.get(what, -NOTIFY_INTERVAL) < NOTIFY_INTERVAL:
                return
            for key, when in list(self._notified.items()):  # bounded: only the last minute's
                if now - when >= NOTIFY_INTERVAL:
                    del self._notified[key]
            self._notified[what] = now
        try:
            self.on_interaction_required(resource, client, scope)
        except Exception:
            logger.exception("the interaction-required hook failed")


def api_context() -> ApiContext:
    return cast(ApiContext, current_app.extensions[EXTENSION])
