"""The control page on the token API's listener, and how it is opened.

:class:`ControlPage` is made by the running broker (:mod:`broker.desktop.runner`) and handed to
:meth:`broker.root.Root.start_api`, which calls :meth:`ControlPage.mount` once the listener's
port is known: requests under ``/ui/`` go to the page's own Flask app (its own guards: it serves
the user's browser), everything else to the token API exactly as before (whose guards refuse
every browser request). The token API gains one endpoint, ``POST /v1/ui/launch``: the default
client (the secret in ``endpoint.json``, which ``mcp-broker open`` reads) — and only it — gets a
launch link. Named clients, which may be other programs the user let in, cannot open the page.

**Launch files.** A launch link holds a single-use token. Given to the browser on its command
line it would be readable by every local user (``/proc/PID/cmdline``) while the browser starts,
and could be redeemed first. So the link is written into ``<state dir>/control-page-ID.html``
(0600, in the 0700 state dir) and the browser is given that file, which moves on to the link:
the token never leaves files only this user can read. Each launch has its own file (two opens in
a row each get theirs); files older than the token's minute go at the next launch, and all of
them when the broker stops.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import threading
import time
import webbrowser
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Flask, Response, request
from markupsafe import escape

from broker import errors
from broker.api.context import EXTENSION as API_EXTENSION
from broker.api.context import api_context
from broker.api.responses import json_response
from broker.paths import write_private_file
from broker.ui.guards import page_origin
from broker.ui.sessions import LAUNCH_LIFETIME, LaunchTokens, Sessions

if TYPE_CHECKING:
    from broker.api.clients import ApiClients
    from broker.ui.backend import Backend

logger = logging.getLogger(__name__)

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
LAUNCH_FILES = "control-page-*.html"
DEFAULT_LANDING = "/ui/servers"


class ControlPage:
    """The page's launch tokens and sessions, and its app once mounted on a port.

    ``backend`` makes the :class:`~broker.ui.backend.Backend` from the API's clients registry
    (which :meth:`~broker.root.Root.start_api` makes)."""

    def __init__(
        self,
        backend: Callable[[ApiClients], Backend],
        state_dir: Path,
        *,
        opener: Callable[[str], object] = webbrowser.open,
    ) -> None:
        self._make_backend = backend
        self.state_dir = state_dir
        self._opener = opener
        self.launches = LaunchTokens()
        self.sessions = Sessions()
        self.port: int | None = None
        self._lock = threading.Lock()

    def mount(self, api: Flask, port: int) -> WsgiApp:
        """The listener's WSGI app: ``/ui/`` to the page, the rest to ``api``."""
        from broker.ui.app import create_page_app

        clients = api.extensions[API_EXTENSION].clients
        api.register_blueprint(launch_endpoint(self))
        page = create_page_app(self._make_backend(clients), self.launches, self.sessions, port=port)
        self.port = port

        def dispatch(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
            path = environ.get("PATH_INFO", "")
            if path == "/ui" or path.startswith("/ui/"):
                return page.wsgi_app(environ, start_response)
            return api.wsgi_app(environ, start_response)

        return dispatch

    def launch_url(self, landing: str | None = None) -> str:
        """A fresh single-use link that opens a session and lands on ``landing``."""
        if self.port is None:
            raise errors.BrokerNotRunning("the control page is not being served yet")
        token = self.launches.mint(landing or DEFAULT_LANDING)
        return f"{page_origin(self.port)}/ui/launch?t={token}"

    def write_launch_file(self, landing: str | None = None) -> Path:
        """A fresh launch link in the private launch file (see the module docstring)."""
        url = escape(self.launch_url(landing))
        html = (
            "<!doctype html><html lang=en><meta charset=utf-8>"
            f'<meta http-equiv="refresh" content="0; url={url}">'
            "<title>Opening mcp-oauth-broker…</title>"
            f'<p><a href="{url}">Open mcp-oauth-broker</a></p></html>\n'
        )
        path = self.state_dir / LAUNCH_FILES.replace("*", secrets.token_hex(8))
        with self._lock:
            self._remove_launch_files(older_than=LAUNCH_LIFETIME)
            write_private_file(path, html)
        return path

    def close(self) -> None:
        """Remove the launch files (their tokens die with the process anyway)."""
        with self._lock:
            self._remove_launch_files(older_than=0.0)

    def launch_files(self) -> list[Path]:
        return sorted(self.state_dir.glob(LAUNCH_FILES))

    def _remove_launch_files(self, older_than: float) -> None:
        now = time.time()
        for path in self.launch_files():
            with contextlib.suppress(OSError):
                if now - path.stat().st_mtime >= older_than:
                    path.unlink()

    def open(self, landing: str | None = None) -> None:
        """Open the page in the user's browser (the tray's "Open mcp-oauth-broker…")."""
        self._opener(self.write_launch_file(landing).as_uri())


def launch_endpoint(page: ControlPage) -> Blueprint:
    """``POST /v1/ui/launch`` on the token API (its guards apply: JSON, ``X-MCP-Broker: 1``, no
    browser): for the default client only, writes a launch file; answers its ``file://`` URL
    (never the token)."""
    launch = Blueprint("ui_launch", __name__, url_prefix="/v1/ui")

    @launch.post("/launch")
    def launch_view() -> Response:
        client = api_context().authenticate(request.environ)
        if not client.is_default:
            raise errors.ClientNotAllowed("only the user's own client may open the control page")
        body = request.get_json(silent=True)
        landing = body.get("page") if isinstance(body, dict) else None
        if landing is not None and not isinstance(landing, str):
            raise errors.InvalidRequest("page must be a string")
        from broker.ui.app import LANDING

        if landing is not None and not LANDING.fullmatch(landing):
            raise errors.InvalidRequest("page must be a control page path, e.g. /ui/clients")
        path = page.write_launch_file(landing)
        return json_response(200, {"file": path.as_uri()})

    return launch
