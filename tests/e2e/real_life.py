"""Parts for the real-life event tests (issue 10): an authorization server that can go away and
come back on the same port, the demo MCP servers it protects, and ``mcp-broker run --headless``.

The authorization server is the real local one (``demo_server.idp``), served in this process so
that the test can read what it saw: token requests by grant type (the e2e ``TokenRequestCounter``)
and refresh tokens presented again after rotation (its store's ``reused_refresh_tokens``).
"""

from __future__ import annotations

import dataclasses
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from waitress import wasyncore
from waitress.server import create_server

from broker.paths import BrokerPaths, broker_paths
from broker.store.keyring_store import KeyringTokenStore
from broker.tokens.tokenset import TokenKey, TokenSet
from demo_server.idp.app import create_app
from demo_server.idp.sessions import EXTENSION
from demo_server.idp.settings import IdpSettings, ResourceServerConfig
from demo_server.idp.store import Store
from demo_server.resource import ResourceSettings
from demo_server.resource import start as start_resource
from tests.broker.desktop.brokerrun import BrokerRun
from tests.e2e.conftest import BrokerCli, TokenRequestCounter
from tests.support.desktop import wait_for
from tests.support.procs import fixed_port
from tests.support.secret_service import SecretServiceHandle

CLIENT_ID = "demo-broker"


def _listen(port: int) -> socket.socket:
    # SO_REUSEADDR: the port is taken again while the connections of the last run are in
    # TIME_WAIT, as a restarted server would.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(64)
    return sock


class SwitchableIdp:
    """The local authorization server, stoppable and restartable on the same port (its grants
    survive: the same app, so the same refresh tokens, keys and sign-ins)."""

    def __init__(self, settings: IdpSettings) -> None:
        self.settings = settings.resolved()
        app = create_app(self.settings)
        self.counter = TokenRequestCounter(app.wsgi_app)
        app.wsgi_app = self.counter  # type: ignore[method-assign]
        self.app = app
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def store(self) -> Store:
        store: Store = self.app.extensions[EXTENSION].store
        return store

    @property
    def issuer(self) -> str:
        return self.settings.issuer

    @property
    def up(self) -> bool:
        return self._server is not None

    def start(self) -> None:
        sock = _listen(self.settings.port)
        self._server = create_server(self.app, sockets=[sock], threads=4, expose_tracebacks=False)
        self._thread = threading.Thread(target=self._server.run, name="e2e-idp", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Close the listener and every connection: the broker then meets "connection refused"."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map))
        thread.join(10)
        server.task_dispatcher.shutdown()
        self._server = self._thread = None


@dataclasses.dataclass
class Stack:
    idp: SwitchableIdp
    mcp_urls: list[str]

    @property
    def issuer(self) -> str:
        return self.idp.issuer

    @property
    def mcp_url(self) -> str:
        return self.mcp_urls[0]

    def key(self, url: str | None = None) -> TokenKey:
        return TokenKey(self.issuer, CLIENT_ID, url or self.mcp_url)


@contextmanager
def real_life_stack(
    access_token_ttl: int,
    *,
    rotation: bool = False,
    grace: int = 0,
    servers: int = 1,
    refresh_token_ttl: int = 30 * 24 * 3600,
) -> Iterator[Stack]:
    """The local authorization server (auto-login as ``demo``) and ``servers`` demo MCP servers."""
    ports = [fixed_port() for _ in range(servers)]
    resources = [f"http://127.0.0.1:{p}/mcp" for p in ports]
    settings = IdpSettings(
        port=fixed_port(),
        access_token_ttl=access_token_ttl,
        refresh_token_ttl=refresh_token_ttl,
        refresh_token_rotation=rotation,
        rotation_grace_seconds=grace,
        round_expiry_up=True,
        auto_login="demo",
        resource_servers=tuple(ResourceServerConfig(r) for r in resources),
    )
    idp = SwitchableIdp(settings)
    idp.start()
    started = []
    try:
        for port in ports:
            started.append(
                start_resource(ResourceSettings(port=port, issuer=idp.issuer, clock_skew=0))
            )
        yield Stack(idp, [r.settings.mcp_url for r in started])
    finally:
        for resource in started:
            resource.close()
        idp.stop()


def sign_in(cli: BrokerCli, url: str) -> None:
    cli.ok("add", url, "--client-id", CLIENT_ID, "--provider", "cognito")
    cli.ok("login", url)


def headless_env(cli: BrokerCli) -> dict[str, str]:
    return {k: v for k, v in cli.env.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}


@contextmanager
def running_broker(
    cli: BrokerCli, log: Path, env: dict[str, str] | None = None
) -> Iterator[tuple[BrokerRun, BrokerPaths]]:
    """``mcp-broker run --headless`` (``python -m broker.desktop.runner``), its API answering."""
    env = env or headless_env(cli)
    broker = BrokerRun(env, log, "--headless")
    try:
        wait_for("the broker's API", lambda: "token API listening" in broker.log() or None, 120)
        yield broker, broker_paths(env)
    finally:
        broker.kill()


def stored(handle: SecretServiceHandle, key: TokenKey) -> TokenSet | None:
    """What the Secret Service holds for ``key`` right now, read past any cache."""
    store = KeyringTokenStore(handle.backend)
    try:
        return store.reload(key)
    finally:
        store.close()
