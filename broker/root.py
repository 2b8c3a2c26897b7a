"""The composition root: :func:`build` makes the long-lived objects of one broker process, once,
and hands each what it needs when it is made. Nothing else constructs them.

    root = build(paths, config_file)     # or from_environment(--config)
    root.broker                          # the commands' façade: config, tokens, sign-in, status
    root.refresher                       # the background refresher (made on first use: `run`)
    api = root.start_api(consent_prompt=..., on_interaction_required=...)   # `run` only
    root.close()

What is made here: the config file reader (:class:`~broker.config.ConfigFile`: parsed once, again
only when the file changes), the token store (the OS keyring with the configured timeout), the
HTTP sender (:class:`~broker.net.limited_http.LimitedSender`, made on first use: a ``mcp-broker
token`` answered from the keyring never loads an HTTP library), the authorization server metadata
cache, the refresh grant, the token service, the sign-in flow, the :class:`~broker.app.Broker`
that the commands use, and for the long-running broker the refresher, the API's clients registry
and the API server.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from broker.app import Broker, Opener, Store, configured_server, refresh_locks
from broker.config import ConfigFile, Settings, config_path, resolve_settings
from broker.errors import ConfigError
from broker.paths import BrokerPaths, broker_paths
from broker.signin.flow import SignInFlow
from broker.tokens.auth_servers import AuthServerCache
from broker.tokens.dpop import Dpop
from broker.tokens.enterprise import AssertionGrants
from broker.tokens.grant import RefreshGrant
from broker.tokens.service import TokenService
from broker.tokens.stamps import FileStamps

if TYPE_CHECKING:
    import httpx2

    from broker.api.clients import ConsentPrompt
    from broker.api.context import InteractionHook
    from broker.api.server import ApiServer, Mount
    from broker.net.limited_http import LimitedSender, Sender
    from broker.tokens.refresher import Refresher

logger = logging.getLogger(__name__)


class LazySender:
    """The broker's HTTP sender, made on the first request (or :meth:`prepare`)."""

    def __init__(self, make: Callable[[], LimitedSender] | None = None) -> None:
        self._make = make
        self._lock = threading.Lock()
        self._sender: LimitedSender | None = None

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        return self.prepare()(request)

    def prepare(self) -> LimitedSender:
        """The sender, made now if it was not yet (its modules, HTTP client and TLS context)."""
        with self._lock:
            if self._sender is None:
                if self._make is None:
                    from broker.net.limited_http import LimitedSender

                    self._sender = LimitedSender()
                else:
                    self._sender = self._make()
            return self._sender

    def close(self) -> None:
        with self._lock:
            sender, self._sender = self._sender, None
        if sender is not None:
            sender.close()


class Root:
    """The parts :func:`build` made. ``close()`` stops and closes them, the API first."""

    def __init__(
        self, paths: BrokerPaths, config: ConfigFile, settings: Settings, broker: Broker
    ) -> None:
        self.paths = paths
        self.config = config
        self.settings = settings
        self.broker = broker
        self.api: ApiServer | None = None

    @functools.cached_property
    def refresher(self) -> Refresher:
        from broker.tokens.refresher import Refresher

        return Refresher(self.broker.service)

    def start_api(
        self,
        *,
        consent_prompt: ConsentPrompt | None = None,
        on_interaction_required: InteractionHook | None = None,
        mount: Mount | None = None,
    ) -> ApiServer:
        """Serve the local token API (Flask and waitress load only now) for the broker: its
        clients registry asks ``consent_prompt``, which answers through each request's
        ``answer``. Any change of a key's tokens (a refresh, a sign-in or sign-out, here or in
        another process) ends the API's one-second reuse of the token it had. ``mount`` serves
        more on the same listener (the control page: :meth:`broker.ui.mount.ControlPage.mount`)."""
        from broker.api.clients import ApiClients, log_consent_prompt
        from broker.api.context import log_interaction_required
        from broker.api.server import ApiSettings, start_api

        clients = ApiClients(self.paths, consent_prompt=consent_prompt or log_consent_prompt)
        port = self.settings.api_port
        try:
            api = start_api(
                self.broker,
                self.paths,
                settings=ApiSettings(port=port),
                clients=clients,
                on_interaction_required=on_interaction_required or log_interaction_required,
                mount=mount,
            )
        except OSError as exc:
            clients.close()
            if not port:
                raise
            raise ConfigError(
                f"the token API cannot listen on 127.0.0.1:{port} (api_port in "
                f"{self.config.path}, or MCP_BROKER_API_PORT): {exc.strerror or exc}. "
                "Choose a free port, or 0 for any."
            ) from None
        self.broker.service.add_listener(lambda key, status: api.forget_tokens(key.resource))
        self.api = api
        return api

    def close(self) -> None:
        if self.api is not None:
            self.api.close()
        if "refresher" in self.__dict__:
            self.refresher.stop()
        self.broker.close()


def build(
    paths: BrokerPaths,
    config_file: Path,
    *,
    store: Store | None = None,
    send: Sender | None = None,
    opener: Opener | None = None,
    sign_in_timeout: float = 300.0,
) -> Root:
    """Every long-lived part of a broker process. ``store`` and ``send`` replace the OS keyring
    and the limited HTTP sender (an in-memory store for the smoke check; tests)."""
    paths = paths.ensure_private_dirs()
    opener = opener or open_in_browser
    config = ConfigFile(config_file, paths.lock_dir)
    settings = resolve_settings(config.load())
    if store is None:
        from broker.store.keyring_store import KeyringTokenStore

        store = KeyringTokenStore(timeout=settings.keyring_timeout)
    sender: Sender = send if send is not None else LazySender()
    auth_servers = AuthServerCache(paths.state_dir)
    dpop = Dpop()
    assertions = AssertionGrants(
        sender,
        auth_servers,
        store,
        config.load,
        # The IdP sign-ins are the token service's like any other; the service is made below,
        # as it needs the refresh grant, which needs this.
        lambda key, force: service.refresh(key) if force else service.get_token(key),
        dpop,
    )
    grant = RefreshGrant(
        sender, auth_servers, lambda: config.load().servers, store, dpop, assertions
    )
    service = TokenService(
        store, grant, lock_factory=refresh_locks(paths.lock_dir), stamps=FileStamps(paths.lock_dir)
    )
    signin = SignInFlow(
        send=sender,
        head_of=functools.partial(_head_of, sender),
        service=service,
        auth_servers=auth_servers,
        secrets=store,
        server=functools.partial(configured_server, config),
        update_config=config.update,
        opener=opener,
        timeout=sign_in_timeout,
        dpop=dpop,
        assertions=assertions,
    )
    broker = Broker(
        paths,
        config,
        store,
        sender,
        auth_servers=auth_servers,
        grant=grant,
        service=service,
        signin=signin,
    )
    return Root(paths, config, settings, broker)


def open_in_browser(url: str) -> bool:
    """``webbrowser.open``, imported when a sign-in opens the browser (not by a ``token``
    helper: webbrowser loads ``subprocess``, ``shlex`` and ``shutil``)."""
    import webbrowser

    return webbrowser.open(url)


def _head_of(send: Sender, request: httpx2.Request) -> httpx2.Response:
    """Status and headers only, within the sender's limits: the sign-in's probe of an MCP
    server, which without auth may answer with a stream."""
    from broker.net.limited_http import LimitedSender

    probe = LimitedSender(limits=getattr(send, "limits", None))
    try:
        return probe.head_of(request)
    finally:
        probe.close()


def from_environment(
    config: str | Path | None = None,
    *,
    store: Store | None = None,
    send: Sender | None = None,
    opener: Opener | None = None,
    sign_in_timeout: float = 300.0,
) -> Root:
    """:func:`build` with the paths from ``MCP_BROKER_HOME`` (or the platform's directories)
    and the config file from ``--config``, else ``MCP_BROKER_CONFIG``, else the default."""
    paths = broker_paths()
    return build(
        paths,
        config_path(paths, config),
        store=store,
        send=send,
        opener=opener,
        sign_in_timeout=sign_in_timeout,
    )
