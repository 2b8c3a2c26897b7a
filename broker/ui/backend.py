"""What the control page's views use, in one :class:`Backend` protocol, and :class:`LiveBackend`,
which gives it the running broker's own parts: the :class:`~broker.app.Broker` (status, the
discovery preview, adding and removing servers), the tray's controller (sign-in and sign-out
run there, on the one :class:`~broker.signin.flow.SignInFlow`, exactly as from the tray menu;
consent answers too, so the page and the menu show the same questions), the token API's
clients registry, ``mcp-broker configure``'s own code and the start-at-login switch."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from broker.config import ServerConfig
from broker.desktop.menu import Command, View
from broker.tokens.status import ServerStatus, SignOutResult

if TYPE_CHECKING:
    from broker.api.clients import ApiClients
    from broker.app import Broker
    from broker.desktop.controller import ClientLinks, StartAtLogin
    from broker.ui.preview import Preview


@dataclass(frozen=True)
class McpClientFile:
    """One MCP client found on this machine, as the Connect page shows it."""

    name: str
    title: str
    path: Path
    urls: tuple[str, ...]
    problem: str | None
    preview: str
    """The entries ``configure`` would write, in the client's own format."""


class Controls(Protocol):
    """The tray's controller (:class:`broker.desktop.controller.Controller`)."""

    @property
    def view(self) -> View: ...

    def post(self, command: Command) -> None: ...


class Backend(Protocol):
    @property
    def config_file(self) -> Path: ...
    @property
    def state_dir(self) -> Path: ...
    @property
    def clients(self) -> ApiClients: ...

    def statuses(self) -> list[ServerStatus]: ...
    def view(self) -> View: ...
    def post(self, command: Command) -> None: ...
    def preview(self, url: str, provider: str) -> Preview: ...
    def server(self, url: str) -> ServerConfig | None: ...
    def add_server(self, server: ServerConfig) -> ServerConfig: ...
    def remove_server(self, url: str) -> SignOutResult: ...
    def mcp_clients(self) -> list[McpClientFile]: ...
    def connect(self, name: str) -> str: ...
    def start_at_login(self) -> bool | None: ...
    def set_start_at_login(self, enabled: bool) -> None: ...


class LiveBackend:
    """:class:`Backend` for the running broker."""

    def __init__(
        self,
        broker: Broker,
        controls: Controls,
        clients: ApiClients,
        links: ClientLinks | None = None,
        autostart: StartAtLogin | None = None,
    ) -> None:
        self._broker = broker
        self._controls = controls
        self._clients = clients
        self._links = links
        self._autostart = autostart

    @property
    def config_file(self) -> Path:
        return self._broker.config_file

    @property
    def state_dir(self) -> Path:
        return self._broker.paths.state_dir

    @property
    def clients(self) -> ApiClients:
        return self._clients

    def statuses(self) -> list[ServerStatus]:
        return self._broker.status()

    def view(self) -> View:
        return self._controls.view

    def post(self, command: Command) -> None:
        self._controls.post(command)

    def preview(self, url: str, provider: str) -> Preview:
        from broker.ui.preview import preview_of

        found, challenge = self._broker.discover(url, provider)
        return preview_of(url, provider, found, challenge)

    def server(self, url: str) -> ServerConfig | None:
        return self._broker.config.load().get_server(url)

    def add_server(self, server: ServerConfig) -> ServerConfig:
        return self._broker.add(server)

    def remove_server(self, url: str) -> SignOutResult:
        """Sign out (tokens deleted, refresh token revoked), then forget the server."""
        result = self._broker.logout(url)
        self._broker.config.update(lambda config: config.without_server(url))
        return result

    def _urls(self) -> list[str]:
        return [server.url for server in self._broker.servers()]

    def mcp_clients(self) -> list[McpClientFile]:
        from broker.integrations.clientfiles import snippet
        from broker.integrations.configure import Request, configure_client, detect_clients

        urls = tuple(self._urls())
        bridge_only = self._broker.dpop_servers() if urls else frozenset()
        found = []
        for detected in detect_clients():
            client = detected.client
            preview = ""
            if urls and detected.problem is None:
                request = Request(client, urls, client.default_via, bridge_only=bridge_only)
                _, wanted = configure_client(request, dry_run=True)
                preview = snippet(client, dict(wanted))
            found.append(
                McpClientFile(
                    client.name,
                    client.title,
                    detected.path,
                    detected.urls,
                    detected.problem,
                    preview,
                )
            )
        return found

    def connect(self, name: str) -> str:
        if self._links is None:
            from broker.desktop.clients import DetectedClients

            self._links = DetectedClients(bridge_only=self._broker.dpop_servers)
        return self._links.connect(name, self._urls())

    def start_at_login(self) -> bool | None:
        return None if self._autostart is None else self._autostart.is_installed()

    def set_start_at_login(self, enabled: bool) -> None:
        if self._autostart is not None:
            self._autostart.set_installed(enabled)
