"""``start``: run the demo MCP server with uvicorn on a background thread, on 127.0.0.1.

The listening socket is bound here, directly on the requested port (``0`` picks a free one), before
the app is built, so the URLs in challenges and metadata carry the real port.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import socket
import threading
import time

import uvicorn

from demo_server.resource.app import create_app
from demo_server.resource.settings import ResourceSettings

logger = logging.getLogger(__name__)

STARTUP_TIMEOUT = 15.0
SHUTDOWN_TIMEOUT = 10.0


def bind_loopback(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (no ``SO_REUSEPORT``; ``SO_REUSEADDR`` on POSIX only)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        if os.name == "posix":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


class QuietServer(uvicorn.Server):
    """uvicorn's server, waking once a second instead of ten times while idle.

    uvicorn's main loop sleeps 0.1 s between checks of ``should_exit`` and refreshes the Date
    header every tenth check; here the loop waits up to a second (the Date header's resolution)
    and :meth:`stop` wakes it at once.
    """

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None

    async def main_loop(self) -> None:
        self._loop, self._wake = asyncio.get_running_loop(), asyncio.Event()
        ticks = 0
        while not await self.on_tick(ticks):
            # uvicorn counts tenths of a second (and wraps at a day); each call refreshes Date
            ticks = (ticks + 10) % 864000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=1.0)

    def stop(self) -> None:
        """Ask the server to exit (from any thread); its loop notices at once."""
        self.should_exit = True
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already ended
                loop.call_soon_threadsafe(wake.set)


class RunningResourceServer:
    """A started server: ``url`` is the MCP endpoint, ``close()`` stops it and joins its thread."""

    def __init__(self, settings: ResourceSettings, server: QuietServer, thread: threading.Thread):
        self.settings = settings
        self._server = server
        self._thread = thread

    @property
    def url(self) -> str:
        return self.settings.mcp_url

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def close(self) -> None:
        self._server.stop()
        self._thread.join(SHUTDOWN_TIMEOUT)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(SHUTDOWN_TIMEOUT)

    def __enter__(self) -> RunningResourceServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def start(settings: ResourceSettings, sock: socket.socket | None = None) -> RunningResourceServer:
    """Bind (or take ``sock``, already bound, when the port had to be known earlier), build the
    app for the bound port, serve on a daemon thread; return once it accepts."""
    sock = sock or bind_loopback(settings.host, settings.port)
    settings = dataclasses.replace(settings, port=int(sock.getsockname()[1]))
    config = uvicorn.Config(
        create_app(settings),
        log_config=None,
        lifespan="on",
        timeout_graceful_shutdown=3,
    )
    server = QuietServer(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="mcp-demo-resource", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.stop()
            thread.join(SHUTDOWN_TIMEOUT)
            sock.close()
            raise RuntimeError(f"the demo MCP server did not start on {settings.mcp_url}")
        time.sleep(0.02)
    logger.info(
        "demo MCP server listening on %s (resource %s)", settings.mcp_url, settings.resource_id
    )
    return RunningResourceServer(settings, server, thread)
