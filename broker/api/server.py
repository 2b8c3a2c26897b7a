"""Serving the local token API: waitress on one socket bound to 127.0.0.1, and a clean stop.

- The listening socket is bound here, to ``127.0.0.1`` only (SECURITY #14), before the app is
  built (the Host allowlist needs the port). POSIX: no ``SO_REUSEPORT`` (and waitress's
  ``SO_REUSEADDR`` is skipped: the socket keeps exactly the options set here); Windows:
  ``SO_EXCLUSIVEADDRUSE``, so no other process can bind the port while the broker holds it (#15).
- Connection limits (#18): a connection idle for ``channel_timeout`` seconds, including one that
  sends its headers slowly, is closed by waitress's maintenance (every ``cleanup_interval`` s).
  At ``connection_limit`` open connections waitress would stop accepting, so a few hundred idle
  sockets could starve real clients; this server instead closes the longest-idle connection that
  has no request in progress, so a client that sends a request still gets served.
- ``close()`` removes ``endpoint.json`` if it is still ours, shuts the worker threads down
  (``task_dispatcher.shutdown()``: ``server.close()`` alone leaves them running, DESIGN §6),
  closes every socket (the listener's ``server.close()`` included) from the serving thread, joins
  it, and stops the provider threads.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask
from waitress import wasyncore
from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.server import TcpWSGIServer
from waitress.task import ErrorTask, ThreadedTaskDispatcher

from broker.api.app import create_app
from broker.api.clients import ApiClients, ConsentPrompt, log_consent_prompt
from broker.api.context import EXTENSION, InteractionHook, log_interaction_required
from broker.api.endpoint import Endpoint, remove_endpoint, write_endpoint
from broker.api.guards import MAX_BODY_BYTES
from broker.api.provider import BoundedCalls, RecentTokens, TokenProvider
from broker.api.responses import json_parts
from broker.paths import BrokerPaths, broker_paths

logger = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
Mount = Callable[[Flask, int], Callable[..., Iterable[bytes]]]
# The serving loop blocks in poll() until a socket has work or this many seconds pass (then it
# runs waitress's connection maintenance). It must be a whole number: waitress converts it with
# int(), and 0 would poll without ever blocking (a full core while idle). close() wakes the loop
# through waitress's trigger, so it does not wait this long.
LOOP_TIMEOUT = 1


@dataclass(frozen=True)
class ApiSettings:
    port: int = 0  # 0: any free port; the real one is published in endpoint.json
    threads: int = 8
    call_timeout: float = 5.0  # longest a request waits on the token side (#31)
    channel_timeout: int = 30  # idle seconds before a connection is closed
    cleanup_interval: int = 2
    connection_limit: int = 128
    backlog: int = 512


def bind_loopback(port: int) -> socket.socket:
    """A listening TCP socket on 127.0.0.1:``port``, exclusive on Windows, no SO_REUSEPORT."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        if sys.platform == "win32":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_EXCLUSIVEADDRUSE, 1)  # type: ignore[attr-defined]
        sock.bind((LOOPBACK, port))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class JsonErrorTask(ErrorTask):  # type: ignore[misc]
    """waitress's own error answers (400, 413, 431, 501 …: requests it refuses before the app
    sees them) in the shape of every API answer: a JSON ``{"error", "error_description"}``
    with ``Cache-Control: no-store`` and ``X-Content-Type-Options: nosniff``. The description is
    the status phrase only: waitress's detail may quote the request."""

    def execute(self) -> None:
        error = self.request.error
        wire = "server_error" if error.code >= 500 and error.code != 501 else "invalid_request"
        _, headers, body = json_parts(
            error.code, {"error": wire, "error_description": error.reason}
        )
        self.status = f"{error.code} {error.reason}"
        self.response_headers.extend(h for h in headers if h[0] != "Content-Length")
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


class JsonErrorChannel(HTTPChannel):  # type: ignore[misc]
    error_task_class = JsonErrorTask


class LoopbackServer(TcpWSGIServer):  # type: ignore[misc]
    """waitress's TCP server, keeping our socket options, evicting idle connections and
    answering its own errors in the API's JSON shape."""

    channel_class = JsonErrorChannel

    def set_reuse_addr(self) -> None:
        pass  # the socket was bound by bind_loopback with the options we want

    def readable(self) -> bool:
        if self.accepting and len(self._map) >= self.adj.connection_limit:
            self._close_longest_idle()
        return bool(super().readable())

    def _close_longest_idle(self) -> None:
        idle = [
            channel
            for channel in self.active_channels.values()
            if not channel.requests and not channel.total_outbufs_len and not channel.will_close
        ]
        if idle:
            min(idle, key=lambda channel: channel.last_activity).will_close = True


class JoiningDispatcher(ThreadedTaskDispatcher):  # type: ignore[misc]
    """waitress's worker threads, each joined by ``shutdown``: waitress's own returns once every
    worker has left its loop, a moment before the threads have ended (Quit leaves none)."""

    def __init__(self) -> None:
        super().__init__()
        self._started: list[threading.Thread] = []

    def start_new_thread(self, target: Any, thread_no: int) -> None:
        thread = threading.Thread(
            target=target, name=f"waitress-{thread_no}", args=(thread_no,), daemon=True
        )
        self._started.append(thread)
        thread.start()

    def shutdown(self, cancel_pending: bool = True, timeout: float = 5) -> bool:
        done = bool(super().shutdown(cancel_pending, timeout))
        for thread in self._started:
            thread.join(timeout)
        return done


class ApiServer:
    """A running API. ``close()`` stops it and leaves no thread behind."""

    def __init__(
        self,
        server: LoopbackServer,
        thread: threading.Thread,
        calls: BoundedCalls,
        clients: ApiClients,
        endpoint: Endpoint,
        endpoint_file: Path | None,
        recent: RecentTokens,
    ) -> None:
        self._recent = recent
        self._server = server
        self._thread = thread
        self._calls = calls
        self.clients = clients
        self.endpoint = endpoint
        self._endpoint_file = endpoint_file
        self._closed = False

    @property
    def url(self) -> str:
        return self.endpoint.url

    @property
    def port(self) -> int:
        return self.endpoint.port

    @property
    def socket(self) -> socket.socket:
        sock: socket.socket = self._server.socket
        return sock

    def forget_tokens(self, resource: str | None = None) -> None:
        """Drop the API's one-second memory of tokens (call after a sign-out)."""
        self._recent.forget(resource)

    def open_connections(self) -> int:
        return len(self._server.active_channels)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._endpoint_file is not None:
            remove_endpoint(self._endpoint_file, self.endpoint)
        server: Any = self._server
        # Workers first: a request still being answered needs the trigger to hand its response
        # to the serving loop. Then every socket is closed from the serving thread itself.
        server.task_dispatcher.shutdown()
        if self._thread.is_alive():
            server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map))
            self._thread.join(timeout=10)
        else:
            server.close()
        self._calls.close()
        self.clients.close()
        logger.info("token API stopped")

    def __enter__(self) -> ApiServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def start_api(
    provider: TokenProvider,
    paths: BrokerPaths | None = None,
    *,
    settings: ApiSettings | None = None,
    clients: ApiClients | None = None,
    consent_prompt: ConsentPrompt = log_consent_prompt,
    on_interaction_required: InteractionHook = log_interaction_required,
    publish: bool = True,
    mount: Mount | None = None,
) -> ApiServer:
    """Serve the API for ``provider`` on 127.0.0.1 in a background thread.

    ``publish`` writes ``endpoint.json`` (with the default client's secret) into the state dir.
    The tray answers consent questions with ``server.clients.decide(request, decision)``.
    ``mount`` is given the API's app and the port, and returns the app to serve (the control
    page, :mod:`broker.ui.mount`, adds its own under ``/ui/``).
    """
    settings = settings or ApiSettings()
    paths = (paths or broker_paths()).ensure_private_dirs()
    if clients is None:
        clients = ApiClients(paths, consent_prompt=consent_prompt)
    sock = bind_loopback(settings.port)
    port = int(sock.getsockname()[1])
    calls = BoundedCalls(workers=settings.threads)
    try:
        app = create_app(
            provider,
            clients,
            port=port,
            calls=calls,
            call_timeout=settings.call_timeout,
            on_interaction_required=on_interaction_required,
        )
        server = _waitress(app if mount is None else mount(app, port), sock, settings)
    except BaseException:
        sock.close()
        calls.close()
        raise
    endpoint = Endpoint(
        f"http://{LOOPBACK}:{port}", port, os.getpid(), clients.default_secret, time.time()
    )
    thread = threading.Thread(target=server.run, name="mcp-broker-api", daemon=True)
    thread.start()
    endpoint_file = paths.endpoint_file if publish else None
    recent = app.extensions[EXTENSION].recent
    running = ApiServer(server, thread, calls, clients, endpoint, endpoint_file, recent)
    if endpoint_file is not None:
        try:
            write_endpoint(endpoint_file, endpoint)
        except BaseException:
            running.close()
            raise
    logger.info("token API listening at %s", endpoint.url)
    return running


def _waitress(app: Any, sock: socket.socket, settings: ApiSettings) -> LoopbackServer:
    adj = Adjustments(
        sockets=[sock],
        threads=settings.threads,
        ident="mcp-broker",
        expose_tracebacks=False,
        # The guards must see X-Forwarded-For / Forwarded to refuse them (#10).
        clear_untrusted_proxy_headers=False,
        max_request_body_size=MAX_BODY_BYTES,
        max_request_header_size=16 * 1024,
        channel_timeout=settings.channel_timeout,
        cleanup_interval=settings.cleanup_interval,
        connection_limit=settings.connection_limit,
        backlog=settings.backlog,
        asyncore_use_poll=True,  # select() cannot watch more than 1024 sockets
        asyncore_loop_timeout=LOOP_TIMEOUT,
        log_socket_errors=False,
    )
    dispatcher = JoiningDispatcher()
    dispatcher.set_thread_count(adj.threads)
    sockinfo = (sock.family, sock.type, sock.proto, sock.getsockname())
    return LoopbackServer(
        app, {}, True, sock, dispatcher=dispatcher, adj=adj, bind_socket=False, sockinfo=sockinfo
    )
