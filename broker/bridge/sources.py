"""Which token source the bridge uses: the running broker's API, else the broker library."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from broker.api import endpoint
from broker.bridge.api_tokens import ApiTokens
from broker.bridge.library_tokens import LibraryTokens
from broker.errors import BrokerNotRunning, DpopBound
from broker.signin.httpauth import RequestProofs, TokenSource

if TYPE_CHECKING:
    import httpx2

logger = logging.getLogger(__name__)


class BrokerTokens:
    """The running broker's API while it answers, else the library: a broker may quit in the
    middle of the bridge's session, or not run at all. Opened on first use."""

    def __init__(
        self,
        resource: str,
        open_api: Callable[[], TokenSource],
        open_library: Callable[[], TokenSource],
    ) -> None:
        self.resource = resource
        self._open_api = open_api
        self._open_library = open_library
        self._lock = threading.Lock()  # held while opening, so each source is opened once
        self._api: TokenSource | None = None
        self._library: TokenSource | None = None
        self._use_api: bool | None = None  # None: not decided yet
        self.proofs = _CurrentProofs(self)

    def token(self) -> str:
        return self._ask(lambda source: source.token())

    def renewed(self, refused: str) -> str:
        return self._ask(lambda source: source.renewed(refused))

    def stepped_up(self, refused: str, challenged_scope: str | None) -> str:
        return self._ask(lambda source: source.stepped_up(refused, challenged_scope))

    def close(self) -> None:
        with self._lock:
            sources, self._api, self._library = (self._api, self._library), None, None
        for source in sources:
            if source is not None:
                source.close()

    def _ask(self, question: Callable[[TokenSource], str]) -> str:
        source, is_api = self._current()
        try:
            return question(source)
        except (BrokerNotRunning, DpopBound) as exc:
            if not is_api:
                raise
            if isinstance(exc, DpopBound):
                # Only the library holds the key: the bridge signs its own proofs (RFC 9449).
                logger.info("%s's tokens are DPoP-bound; using the broker library", self.resource)
            else:
                logger.warning("the broker stopped answering (%s); using the broker library", exc)
            with self._lock:
                self._use_api = False
            return question(self._current()[0])

    def current_proofs(self) -> RequestProofs | None:
        """The DPoP proofs of the source in use (the library's; the API hands out no bound
        tokens)."""
        proofs: RequestProofs | None = getattr(self._current()[0], "proofs", None)
        return proofs

    def _current(self) -> tuple[TokenSource, bool]:
        with self._lock:
            if self._use_api is None:
                try:
                    self._api = self._open_api()
                    self._use_api = True
                    logger.info("using the running broker's token API")
                except BrokerNotRunning as exc:
                    self._use_api = False
                    logger.info("no running broker (%s); using the broker library", exc)
            if self._use_api and self._api is not None:
                return self._api, True
            if self._library is None:
                self._library = self._open_library()
            return self._library, False


class _CurrentProofs:
    """:class:`RequestProofs` of whichever source :class:`BrokerTokens` uses at the time."""

    def __init__(self, tokens: BrokerTokens) -> None:
        self._tokens = tokens

    def attach(self, request: httpx2.Request, token: str) -> bool:
        proofs = self._tokens.current_proofs()
        return proofs is not None and proofs.attach(request, token)

    def nonce_challenged(self, request: httpx2.Request, response: httpx2.Response) -> bool:
        proofs = self._tokens.current_proofs()
        return proofs is not None and proofs.nonce_challenged(request, response)


def open_token_source(resource: str, config: str | None = None) -> TokenSource:
    """The running broker's API when a broker is running for this user, else the library."""

    def open_api() -> TokenSource:
        endpoint.discover_endpoint()
        return ApiTokens(resource)

    def open_library() -> TokenSource:
        from broker.root import from_environment

        # Not even checking that the server is configured: every request is then answered
        # with what to do, which an MCP client shows, where an exiting server shows little.
        return LibraryTokens(from_environment(config).broker, resource)

    return BrokerTokens(resource, open_api, open_library)
