"""One total deadline for a whole HTTP exchange: connect, request, headers and body.

httpx's timeouts bound each socket operation, not the exchange: a server that sends one byte of
its status line or headers a second never trips a read timeout and can hold a sign-in or a
refresh for hours. :func:`within` starts a watchdog for the exchange on the calling thread;
the connections that exchange uses (new or taken from the pool) register themselves with it
as they read or write, and when the deadline passes the watchdog shuts their sockets down. The
blocked read then fails at once, whatever the server is dripping, TLS records included; the
exchange reports :attr:`Exchange.expired` so the caller can say it took too long.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import socket
import ssl
import threading
from collections.abc import Iterable, Iterator
from typing import Any

import httpcore2
import httpx2

logger = logging.getLogger(__name__)

__all__ = ["Exchange", "WatchedTransport", "watched_client", "within"]


class Exchange:
    """The sockets one exchange uses, shut down by its watchdog when the deadline passes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._finished = False
        self.expired = False

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            if self.expired:
                _shut(sock)
            elif not self._finished:
                self._sockets.add(sock)

    def expire(self) -> None:
        with self._lock:
            if self._finished:
                return
            self.expired = True
            for sock in self._sockets:
                _shut(sock)

    def finish(self) -> None:
        """The exchange is over: its connection may go back to the pool untouched."""
        with self._lock:
            self._finished = True
            self._sockets.clear()


def _shut(sock: socket.socket) -> None:
    # The plain socket's shutdown, also for a TLS socket (whose own would reset its state under
    # the reading thread): the reader wakes up with an error, the connection is dropped.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


_current: contextvars.ContextVar[Exchange | None] = contextvars.ContextVar(
    "broker_exchange", default=None
)


@contextlib.contextmanager
def within(seconds: float) -> Iterator[Exchange]:
    """Bound every request made on this thread inside the block to ``seconds`` in all.

    Call :meth:`Exchange.finish` before handing a response's connection back (closing it), so
    that a deadline passing just then cannot cut a pooled connection.
    """
    exchange = Exchange()
    timer = threading.Timer(seconds, exchange.expire)
    timer.daemon = True
    token = _current.set(exchange)
    timer.start()
    try:
        yield exchange
    finally:
        exchange.finish()
        timer.cancel()
        _current.reset(token)


def _watch(stream: httpcore2.NetworkStream) -> None:
    exchange = _current.get()
    sock = stream.get_extra_info("socket")
    if exchange is not None and isinstance(sock, socket.socket):
        exchange.watch(sock)


class _WatchedStream(httpcore2.NetworkStream):
    def __init__(self, inner: httpcore2.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        _watch(self._inner)
        return self._inner.read(max_bytes, timeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        _watch(self._inner)
        self._inner.write(buffer, timeout)

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore2.NetworkStream:
        _watch(self._inner)
        return _WatchedStream(self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _WatchedBackend(httpcore2.NetworkBackend):
    def __init__(self, inner: httpcore2.NetworkBackend) -> None:
        self._inner = inner

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore2.NetworkStream:
        stream = self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        return _WatchedStream(stream)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore2.NetworkStream:
        return _WatchedStream(self._inner.connect_unix_socket(path, timeout, socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class WatchedTransport(httpx2.HTTPTransport):
    """httpx's own transport whose connections take part in :func:`within` deadlines."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # httpx takes no network backend; its connection pool does (httpcore's public API).
        pool = self._pool
        pool._network_backend = _WatchedBackend(pool._network_backend)


def watched_client() -> httpx2.Client:
    """An HTTP client whose exchanges honour :func:`within`, proxies from the environment included.

    httpx reads ``HTTP(S)_PROXY``/``ALL_PROXY``/``NO_PROXY`` only for the transport it builds
    itself; given a transport of ours it would ignore them, and users behind a corporate proxy
    would lose discovery, sign-in and refresh. So each proxy gets a watched transport too.
    """
    from httpx2._utils import get_environment_proxies  # httpx's own reading of the environment

    mounts: dict[str, httpx2.BaseTransport | None] = {
        pattern: None if url is None else WatchedTransport(proxy=url)
        for pattern, url in get_environment_proxies().items()
    }
    return httpx2.Client(transport=WatchedTransport(), mounts=mounts, follow_redirects=False)
