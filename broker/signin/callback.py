"""The loopback listener that receives the authorization response (RFC 8252 §7.3, §8.3).

It binds 127.0.0.1 directly on the port that goes into the redirect URI (no pick-then-close),
trying the given ports in order (an empty list means an ephemeral port), answers stray requests
(``/favicon.ico``, other paths, a wrong or missing ``state``) without ending the wait, shows a
short page whose text is escaped, and frees the port when closed (SECURITY #33, #34, #40, #43).

The page that answers the sign-in's own response can wait for the outcome (after
:meth:`CallbackListener.wait_for_outcome`): the sign-in then says, with
:meth:`CallbackListener.show`, which server and which user were signed in, or what went wrong and
what to do next, once the code is redeemed. It is asked for only once the browser has been
opened: an opener that fetches the callback itself (the smoke check's) would wait on itself.
"""

from __future__ import annotations

import http.server
import logging
import os
import selectors
import socket
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, TypeVar
from urllib.parse import parse_qsl, urlsplit

from broker.errors import (
    AuthorizationError,
    BrokerError,
    CallbackPortUnavailable,
    SignInCancelled,
    SignInTimeout,
)
from broker.safetext import html_text
from broker.signin.loopback_hosts import allowed_hosts

logger = logging.getLogger(__name__)

T = TypeVar("T")

HOST = "127.0.0.1"
CALLBACK_PATH = "/callback"
OUTCOME_WAIT = 30.0
"""Seconds the browser's page waits for the sign-in's outcome before a generic answer."""
SIGNED_IN = "You are signed in. You can close this tab and return to your MCP client."
TRY_AGAIN = (
    "Close this tab and sign in again: from the tray menu (Sign in), or with "
    "`mcp-broker login <server URL>` in a terminal. If it fails again, `mcp-broker status` "
    "and the broker's log say more."
)

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>mcp-oauth-broker</title>
<style>body{{font-family:system-ui,sans-serif;max-width:36em;margin:4em auto;color:#222}}
h1{{font-size:1.4em}}</style></head>
<body><h1>{title}</h1><p>{message}</p></body></html>
"""


def render_page(title: str, message: str) -> bytes:
    return _PAGE.format(title=html_text(title, 500), message=html_text(message, 500)).encode()


class _Server(http.server.ThreadingHTTPServer, Generic[T]):
    daemon_threads = True
    block_on_close = False
    # POSIX SO_REUSEADDR only skips TIME_WAIT; it never lets two sockets listen on one port.
    # On Windows it would, so there the socket asks for exclusive use instead (SECURITY #15).
    allow_reuse_address = os.name != "nt"

    def server_bind(self) -> None:
        if os.name == "nt":
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_EXCLUSIVEADDRUSE, 1)  # type: ignore[attr-defined]
        super().server_bind()

    listener: CallbackListener[T]


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server[Any]
    timeout = 10
    server_version = "mcp-oauth-broker"
    sys_version = ""

    def do_GET(self) -> None:
        if self.headers.get("Host") not in allowed_hosts(self.server.listener.port):
            # A DNS-rebinding page: the same answer whatever the listener is waiting for.
            status, page = 403, render_page("Forbidden", "This address is not for web pages.")
        else:
            status, page = self.server.listener._handle(self.path)
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(page)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(page)

    def log_message(self, format: str, *args: Any) -> None:
        # The default logs the request line, whose query holds the code and state.
        logger.debug("callback listener answered a request")


class CallbackListener(Generic[T]):
    """One sign-in's listener. ``accept`` tells our response from strays; ``judge`` turns it into
    a result or raises a :class:`BrokerError` whose message is shown (escaped) on the page."""

    def __init__(self, server: _Server[T], path: str = CALLBACK_PATH) -> None:
        self._server = server
        self._path = path
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._result: T | None = None
        self._error: BaseException | None = None
        self._accept: Callable[[Mapping[str, str]], bool] = lambda params: False
        self._judge: Callable[[Mapping[str, str]], T] | None = None
        self._outcome_expected = False
        self._outcome = threading.Event()
        self._outcome_page: tuple[int, bytes] = (200, render_page("Signed in", SIGNED_IN))
        server.listener = self
        self._closing = threading.Event()
        # close() writes to this pair to wake the serving loop, which otherwise sleeps until a
        # connection arrives: socketserver's serve_forever would wake every poll_interval instead.
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._thread = threading.Thread(target=self._serve, name="mcp-broker-callback", daemon=True)
        self._thread.start()

    @classmethod
    def bind(cls, ports: Sequence[int] = (), path: str = CALLBACK_PATH) -> CallbackListener[T]:
        """Listen on the first free port of ``ports`` (or an ephemeral one when empty)."""
        busy: list[int] = []
        for port in ports or (0,):
            try:
                server: _Server[T] = _Server((HOST, port), _Handler)
            except OSError:
                busy.append(port)
                logger.info("callback port %s is busy, trying the next one", port)
                continue
            return cls(server, path)
        raise CallbackPortUnavailable(
            "every callback port is in use ("
            + ", ".join(map(str, busy))
            + "): close the program holding it and sign in again"
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def redirect_uri(self) -> str:
        return f"http://{HOST}:{self.port}{self._path}"

    def expect(
        self, accept: Callable[[Mapping[str, str]], bool], judge: Callable[[Mapping[str, str]], T]
    ) -> None:
        with self._lock:
            self._accept, self._judge = accept, judge

    def wait_for_outcome(self) -> None:
        """From now on the accepted response's page waits (up to :data:`OUTCOME_WAIT`) for
        :meth:`show`."""
        with self._lock:
            self._outcome_expected = True

    def show(self, status: int, title: str, message: str) -> None:
        """The page the browser gets for the accepted response: the sign-in's outcome."""
        self._outcome_page = (status, render_page(title, message))
        self._outcome.set()

    def wait(self, timeout: float) -> T:
        """The judged result; raises the judge's error, :class:`SignInTimeout` or cancel's error."""
        if not self._done.wait(timeout):
            self._finish(None, SignInTimeout("the sign-in was not completed in time"))
        with self._lock:
            if self._error is not None:
                raise self._error
            assert self._result is not None
            return self._result

    def cancel(self, message: str = "the sign-in was cancelled") -> None:
        self._finish(None, SignInCancelled(message))

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def deliver(self, params: Mapping[str, str]) -> None:
        """A response that reached the broker another way (pasted by the user, ``login
        --no-browser``), judged by the same ``judge`` as one the listener receives: it completes
        the sign-in, with the judge's error if it fails a check (raised here too)."""
        with self._lock:
            judge = self._judge
        if judge is None or self._done.is_set():
            raise AuthorizationError("no sign-in is waiting for this response")
        try:
            result = judge(params)
        except BrokerError as exc:
            self._finish(None, exc)
            raise
        self._finish(result, None)

    def close(self) -> None:
        """Stop serving and release the port."""
        if self._closing.is_set():
            return
        self._closing.set()
        self._wake_writer.send(b"\0")
        self._thread.join(timeout=5)
        self._server.server_close()
        self._wake_reader.close()
        self._wake_writer.close()

    def __enter__(self) -> CallbackListener[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _serve(self) -> None:
        """Answer connections until close(); blocks while nothing happens (no polling)."""
        with selectors.DefaultSelector() as selector:
            selector.register(self._server, selectors.EVENT_READ)
            selector.register(self._wake_reader, selectors.EVENT_READ)
            while not self._closing.is_set():
                for key, _ in selector.select():
                    if key.fileobj is self._server and not self._closing.is_set():
                        # What serve_forever does with a ready socket (accept, then a thread).
                        self._server._handle_request_noblock()  # type: ignore[attr-defined]

    def _finish(self, result: T | None, error: BaseException | None) -> bool:
        with self._lock:
            if self._done.is_set():
                return False
            self._result, self._error = result, error
            self._done.set()
            return True

    def _handle(self, target: str) -> tuple[int, bytes]:
        parts = urlsplit(target)
        if parts.path != self._path:
            return 404, render_page("Not found", "Nothing to see here.")
        params: dict[str, str] = {}
        for key, value in parse_qsl(parts.query, keep_blank_values=True):
            params.setdefault(key, value)
        with self._lock:
            accept, judge = self._accept, self._judge
        if judge is None or not accept(params):
            return 400, render_page(
                "Not a sign-in in progress",
                "This link does not belong to the sign-in the broker is waiting for.",
            )
        if self._done.is_set():
            return 409, render_page("Already done", "This sign-in has already finished.")
        try:
            result = judge(params)
        except BrokerError as exc:
            self._finish(None, exc)
            return 400, render_page("Sign-in failed", f"{exc}. {TRY_AGAIN}")
        except Exception:
            logger.exception("judging the sign-in response failed")
            self._finish(None, AuthorizationError("the sign-in response could not be handled"))
            return 500, render_page(
                "Sign-in failed", f"The sign-in response could not be handled. {TRY_AGAIN}"
            )
        self._finish(result, None)
        with self._lock:
            wait = self._outcome_expected
        if wait:
            self._outcome.wait(OUTCOME_WAIT)
        return self._outcome_page
