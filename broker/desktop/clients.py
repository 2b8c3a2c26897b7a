"""The tray's "Connect a client…": the MCP clients on this machine, found and configured by
``mcp-broker configure``'s own code (:mod:`broker.integrations.configure`), so the menu and the
command always agree on which file each client uses and what goes in it."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Sequence

from broker.desktop.menu import ClientChoice
from broker.integrations.clientconfigs import CLIENTS
from broker.integrations.configure import connect_client, detect_clients

logger = logging.getLogger(__name__)


class DetectedClients:
    """:class:`~broker.desktop.controller.ClientLinks` for this user's real files.

    The tray asks on every view update; the files are read again only after ``max_age``
    seconds (clients are seldom installed) or after a client was connected from the menu.
    ``bridge_only`` names the servers whose tokens are DPoP-bound (the broker's
    :meth:`~broker.app.Broker.dpop_servers`): they get the bridge in every client."""

    def __init__(
        self,
        max_age: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        bridge_only: Callable[[], Collection[str]] = frozenset,
    ) -> None:
        self._max_age = max_age
        self._clock = clock
        self._bridge_only = bridge_only
        self._cache: tuple[float, tuple[str, ...], tuple[ClientChoice, ...]] | None = None

    def detected(self, urls: Sequence[str]) -> tuple[ClientChoice, ...]:
        now = self._clock()
        if self._cache is not None:
            when, for_urls, choices = self._cache
            if for_urls == tuple(urls) and now - when < self._max_age:
                return choices
        choices = tuple(
            ClientChoice(
                found.client.name,
                found.client.title,
                bool(urls) and found.problem is None and set(urls) <= set(found.urls),
            )
            for found in detect_clients()
        )
        self._cache = (now, tuple(urls), choices)
        return choices

    def connect(self, name: str, urls: Sequence[str]) -> str:
        title = CLIENTS[name].title
        self._cache = None
        change = connect_client(name, urls, self._bridge_only())
        logger.info("connected %s: %s", name, change)
        if not change.changed:
            return f"{title} already reaches every server through the broker."
        count = len(change.added) + len(change.updated)
        servers = "server" if count == 1 else "servers"
        return (
            f"{title} now reaches {count} {servers} through the broker ({change.path}). "
            f"Restart {title} to pick up the change."
        )
