"""Serve the local authorization server with waitress on a background thread."""

from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import dataclass, replace
from typing import Any

from waitress import wasyncore
from waitress.server import create_server

from demo_server.idp.app import create_app
from demo_server.idp.settings import IdpSettings

logger = logging.getLogger(__name__)
WAITRESS_THREADS = 4
# The serving loop blocks until a socket has work or this many seconds pass. A whole number:
# waitress converts it with int(), and 0 would poll without blocking (a full core while idle).
# close() wakes the loop through waitress's trigger, so it does not wait this long.
LOOP_TIMEOUT = 1


@dataclass
class RunningIdp:
    """A started server; ``close()`` stops it and leaves no thread behind."""

    settings: IdpSettings
    server: object
    thread: threading.Thread

    @property
    def issuer(self) -> str:
        return self.settings.issuer

    @property
    def url(self) -> str:
        return self.settings.base_url

    @property
    def demo_password(self) -> str:
        assert self.settings.demo_password is not None
        return self.settings.demo_password

    @property
    def m2m_secret(self) -> str:
        assert self.settings.m2m_secret is not None
        return self.settings.m2m_secret

    def close(self) -> None:
        """Close every socket from the serving thread itself, then stop the worker threads."""
        server: Any = self.server
        if self.thread.is_alive():
            server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map))
            self.thread.join(timeout=10)
        else:
            server.close()
        server.task_dispatcher.shutdown()

    def __enter__(self) -> RunningIdp:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def bind_loopback(host: str, port: int) -> socket.socket:
    """Bind the listening socket first, so the issuer names the port actually bound.

    POSIX ``SO_REUSEADDR``: a restart on the same port need not wait for the last run's
    connections to leave TIME_WAIT (it never lets two sockets listen on one port there; no
    ``SO_REUSEPORT``, which would). Windows' ``SO_REUSEADDR`` would, so it is not set there.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        if os.name == "posix":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((socket.gethostbyname(host), port))
        sock.listen(64)
    except OSError:
        sock.close()
        raise
    return sock


def start(settings: IdpSettings, sock: socket.socket | None = None) -> RunningIdp:
    """Bind ``settings.host:settings.port`` (0 picks a free port), or take ``sock`` (already
    bound, when the issuer had to be known earlier), and serve in the background."""
    settings.validate()
    sock = sock or bind_loopback(settings.host, settings.port)
    try:
        settings = replace(settings, port=int(sock.getsockname()[1])).resolved()
        app = create_app(settings)
        server = create_server(
            app,
            sockets=[sock],
            threads=WAITRESS_THREADS,
            ident="mcp-demo-idp",
            expose_tracebacks=False,
            asyncore_loop_timeout=LOOP_TIMEOUT,
        )
    except BaseException:
        sock.close()
        raise
    thread = threading.Thread(target=server.run, name="mcp-demo-idp", daemon=True)
    thread.start()
    logger.info("authorization server listening at %s", settings.base_url)
    return RunningIdp(settings=settings, server=server, thread=thread)
