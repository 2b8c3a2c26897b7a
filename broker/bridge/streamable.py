"""The HTTP side of a bridged session: an MCP Streamable HTTP client (MCP transports,
"Streamable HTTP") that sends each message as the bytes it arrived as.

Per message from the stdio client: one ``POST`` carrying the session id, the protocol version and
the routing headers :class:`~broker.bridge.headers.RoutingHeaders` derived. A request's answer
comes back as a JSON body or an SSE stream; an SSE stream that ends before the answer is resumed
with ``GET`` and ``Last-Event-ID`` after the ``retry`` the server named (MCP transports,
"Resumability and Redelivery"). After ``notifications/initialized`` a ``GET`` stream carries the
server's own messages. Each server message is handed on as the bytes it arrived as, together
with its decoded form for the relay to learn from.

Each request gets exactly one answer, and whatever goes wrong with one request is answered to
that request as a JSON-RPC error (:mod:`broker.bridge.failures`), so the session lives on: a
4xx/5xx (a JSON-RPC error in its body is relayed with the request's id, which is how
:mod:`broker.bridge.transport` answers "sign in"), a body that is not JSON-RPC or answers
another request, an SSE stream that ends for good, an exception nobody expected. A second answer
to the same request is dropped. The session ends with a ``DELETE`` (:meth:`close`).

The rules follow the mcp SDK's client transport (``mcp.client.streamable_http``), so the bridge
behaves as the SDK client the conformance scenarios were written against, without importing it.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import httpx2
from anyio.abc import TaskGroup

from broker.bridge.failures import (
    BRIDGE_FAILED,
    CONNECTION_CLOSED,
    INTERNAL_ERROR,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    error_message,
    unexpected,
)
from broker.bridge.header_rules import MCP_PROTOCOL_VERSION_HEADER, MODERN_PROTOCOL_VERSIONS
from broker.bridge.headers import Message, is_answer, is_request

logger = logging.getLogger(__name__)

MCP_SESSION_ID = "mcp-session-id"
LAST_EVENT_ID = "last-event-id"
ACCEPT = "application/json, text/event-stream"
#: How long ``notifications/initialized`` waits for the session's GET stream to be answered.
LISTEN_WAIT = 2.0
#: Wait before reconnecting when the server named no ``retry`` (the SDK's default).
DEFAULT_RETRY_MS = 1000
#: The longest ``retry`` obeyed: as long as the bridge waits on a silent stream
#: (:data:`broker.bridge.relay.HTTP_TIMEOUT`), so a server cannot park a request for ever.
MAX_RETRY_MS = 300_000
#: Failed reconnections in a row before a stream is given up (the SDK's).
MAX_RECONNECTIONS = 2
MAX_SSE_EVENT_BYTES = 1024 * 1024
MAX_REDIRECTS = 5
#: What a session id may hold (MCP transports, "Session Management").
_VISIBLE_ASCII = re.compile(r"[\x21-\x7e]+")

#: Hands one server message to the stdio side: (decoded, the bytes it was, or None when the
#: bytes held more than this message).
Deliver = Callable[[Message, bytes | None], Awaitable[None]]


class StreamableHttp:
    """One MCP session with the server at ``url``; messages from the server go to ``deliver``."""

    def __init__(self, url: str, http: httpx2.AsyncClient, deliver: Deliver, tg: TaskGroup) -> None:
        self.url = url
        self.session_id: str | None = None
        self._http = http
        self._deliver = deliver
        self._tg = tg
        # The version for HTTP requests whose message carries none (GET, DELETE, answers to the
        # server): the last one a client message carried; cleared by `initialize`.
        self._version: str | None = None
        self._listening = False
        self._stream_opened: anyio.Event | None = None
        self._posts: dict[Any, _Post] = {}  # by request id (`_key`)

    async def send(self, message: Message, body: bytes, headers: dict[str, str]) -> None:
        """Send one client message. A request's POST runs in its own task (answers may come in
        any order); other messages are sent in turn."""
        method = message.get("method")
        if method == "notifications/cancelled" and self._cancelled_here(message):
            return
        if method == "initialize":
            self._version = None  # the negotiation itself carries no version
        elif MCP_PROTOCOL_VERSION_HEADER in headers:
            self._version = headers[MCP_PROTOCOL_VERSION_HEADER]
        if method == "notifications/initialized":
            self._listen()
        if not is_request(message):
            await self._post_one_way(body, headers)
            if method == "notifications/initialized" and self._stream_opened is not None:
                # The session's GET stream is open (or refused) before the client's next
                # request goes out, so a server sees the streams in the order they were meant.
                with anyio.move_on_after(LISTEN_WAIT):
                    await self._stream_opened.wait()
            return
        request_id = message["id"]
        superseded = self._posts.get(_key(request_id))
        if superseded is not None:  # a reused id: the old POST must not answer for the new one
            superseded.scope.cancel()
        post = _Post(anyio.CancelScope(), self._version in MODERN_PROTOCOL_VERSIONS)
        self._posts[_key(request_id)] = post
        self._tg.start_soon(self._request, message, body, headers, post)

    async def close(self) -> None:
        """End the server's session (``DELETE``), if it gave one."""
        if not self.session_id:
            return
        try:
            async with self._stream("DELETE") as response:
                if response.status_code not in (200, 202, 204, 405):
                    logger.warning("ending the session: HTTP %d", response.status_code)
        except httpx2.HTTPError as exc:
            logger.warning("ending the session failed: %s", type(exc).__name__)
        except Exception as exc:
            unexpected(logger, "while ending the session", exc)

    # -- requests ------------------------------------------------------------------------------

    async def _request(
        self, message: Message, body: bytes, headers: dict[str, str], post: _Post
    ) -> None:
        """POST a request and relay its answer; if none reached the client when this ends (and
        the client did not cancel the request), answer it with an error."""
        request_id = message["id"]
        try:
            with post.scope:
                async with self._stream("POST", body, headers) as response:
                    await self._answer(message, response)
            if not post.scope.cancel_called:
                text = "the server sent no answer to this request"
                await self._owed(post, request_id, INTERNAL_ERROR, text)
        except (httpx2.TransportError, OSError) as exc:
            logger.warning("request %r: %s", request_id, _describe(exc))
            text = f"the server connection failed: {_describe(exc)}"
            await self._owed(post, request_id, CONNECTION_CLOSED, text)
        except httpx2.HTTPError as exc:  # DecodingError, StreamError, ...
            logger.warning("request %r: %s", request_id, _describe(exc))
            text = f"the server's answer could not be read: {_describe(exc)}"
            await self._owed(post, request_id, CONNECTION_CLOSED, text)
        except Exception as exc:
            text = unexpected(logger, f"while relaying request {request_id!r}", exc)
            await self._owed(post, request_id, BRIDGE_FAILED, text)
        finally:
            if self._posts.get(_key(request_id)) is post:
                del self._posts[_key(request_id)]

    async def _answer(self, message: Message, response: httpx2.Response) -> None:
        request_id = message["id"]
        status = response.status_code
        if status == 202:
            await self._fail(
                request_id, INVALID_REQUEST, "server answered a request with 202 Accepted"
            )
            return
        if response.next_request is not None:
            await self._fail(request_id, INVALID_REQUEST, _unfollowed(response))
            return
        if status >= 400:
            await self._refused(request_id, response)
            return
        if message.get("method") == "initialize" and response.headers.get(MCP_SESSION_ID):
            session_id = response.headers[MCP_SESSION_ID]
            if not _VISIBLE_ASCII.fullmatch(session_id):  # no request could carry it back
                text = "the server's session id is not visible ASCII (MCP transports)"
                await self._fail(request_id, INVALID_REQUEST, text)
                return
            self.session_id = session_id
        content_type = _content_type(response)
        if content_type == "application/json":
            if not await self._relay_body(await response.aread()):
                await self._fail(request_id, PARSE_ERROR, "the server's answer is not JSON-RPC")
        elif content_type == "text/event-stream":
            await self._read_answer_stream(request_id, response)
        else:
            await self._fail(
                request_id, INVALID_REQUEST, f"Unexpected content type: {content_type}"
            )

    async def _refused(self, request_id: Any, response: httpx2.Response) -> None:
        """A 4xx/5xx: its JSON-RPC error, for this request; else one saying what happened."""
        if _content_type(response) == "application/json":
            try:
                doc = json.loads(await response.aread())
            except (ValueError, RecursionError, httpx2.HTTPError):
                doc = None
            if isinstance(doc, dict) and isinstance(doc.get("error"), dict) and "result" not in doc:
                # The server (or the bridge's own refusal) may not know the id: this request's.
                same = doc.get("id") == request_id and type(doc.get("id")) is type(request_id)
                await self._hand_on({**doc, "id": request_id}, response.content if same else None)
                return
        if response.status_code == 404:
            if self.session_id is None:  # no session: the HTTP spelling of "no such method"
                await self._fail(request_id, METHOD_NOT_FOUND, "Not Found")
            else:
                await self._fail(request_id, INVALID_REQUEST, "Session terminated")
            return
        await self._fail(
            request_id, INTERNAL_ERROR, f"the server answered HTTP {response.status_code}"
        )

    async def _read_answer_stream(self, request_id: Any, response: httpx2.Response) -> None:
        """Relay a request's SSE stream until its answer; resume it while the server allows."""
        cursor = _Cursor()
        try:
            if await self._relay_events(response, cursor):
                return
        except httpx2.SSEError as exc:  # a broken stream, not an ended one: not resumed
            await self._fail(request_id, CONNECTION_CLOSED, f"SSE stream failed: {exc}")
            return
        except httpx2.HTTPError as exc:
            logger.debug("request %r: the SSE stream broke (%s)", request_id, _describe(exc))
        if cursor.last_event_id is None:
            await self._fail(request_id, CONNECTION_CLOSED, "SSE stream ended without a response")
            return
        if not await self._resume(cursor, until_answer=True):
            await self._fail(
                request_id,
                CONNECTION_CLOSED,
                "SSE stream ended and reconnection attempts were exhausted",
            )

    # -- server-initiated messages -------------------------------------------------------------

    def _listen(self) -> None:
        if self.session_id and not self._listening:
            self._listening = True
            self._stream_opened = anyio.Event()
            self._tg.start_soon(self._resume, _Cursor(), False)

    async def _resume(self, cursor: _Cursor, until_answer: bool) -> bool:
        """GET the session's stream (from ``cursor``), reconnecting after each end, until an
        answer came (``until_answer``) or reconnections fail :data:`MAX_RECONNECTIONS` times in a
        row, or the server offers no stream. True when an answer came."""
        failures = 0
        first = not until_answer  # a resumption waits first: the server's `retry` says so
        while failures < MAX_RECONNECTIONS:
            if not first:
                await anyio.sleep((cursor.retry_ms or DEFAULT_RETRY_MS) / 1000)
            first = False
            headers = {"accept": "text/event-stream"}
            if cursor.last_event_id:
                headers[LAST_EVENT_ID] = cursor.last_event_id
            try:
                async with self._stream("GET", None, headers) as response:
                    if self._stream_opened is not None:
                        self._stream_opened.set()
                    if response.status_code == 405:
                        logger.debug("the server offers no GET stream")
                        return False
                    if (
                        response.status_code >= 300
                        or _content_type(response) != "text/event-stream"
                    ):
                        raise _StreamRefused(response.status_code)
                    failures = 0
                    if await self._relay_events(response, cursor) and until_answer:
                        return True
            except (httpx2.HTTPError, OSError, _StreamRefused) as exc:
                failures += 1
                logger.debug("GET stream: %s", _describe(exc))
            except Exception as exc:
                failures += 1
                unexpected(logger, "on the GET stream", exc)
            finally:
                if self._stream_opened is not None:
                    self._stream_opened.set()
        return False

    async def _relay_events(self, response: httpx2.Response, cursor: _Cursor) -> bool:
        """Relay an SSE stream's messages until it ends; True when one of them was an answer."""
        events = httpx2.EventSource(response, max_event_size=MAX_SSE_EVENT_BYTES)
        async for event in events:
            if event.id:
                cursor.last_event_id = event.id
            if event.retry is not None:
                cursor.retry_ms = min(max(event.retry, 0), MAX_RETRY_MS)
            if event.event != "message":
                logger.warning("ignored an SSE event of type %r", event.event[:40])
                continue
            if event.data and await self._relay_body(event.data.encode()):
                return True  # the request's answer: its stream is done
        return False

    # -- plumbing ------------------------------------------------------------------------------

    async def _post_one_way(self, body: bytes, headers: dict[str, str]) -> None:
        """A notification, or an answer to the server's request: nothing comes back but 202."""
        try:
            async with self._stream("POST", body, headers) as response:
                await response.aread()
                if response.status_code >= 400:
                    logger.warning("the server refused a message: HTTP %d", response.status_code)
        except (httpx2.HTTPError, OSError) as exc:
            logger.warning("a message was not delivered: %s", _describe(exc))
        except Exception as exc:
            unexpected(logger, "while sending a message that expects no answer", exc)

    async def _relay_body(self, raw: bytes) -> bool:
        """Relay the JSON-RPC message(s) in ``raw``; True when there was an answer among them,
        False also when ``raw`` is no JSON-RPC at all."""
        try:
            doc = json.loads(raw)
        except (ValueError, RecursionError):  # RecursionError: nested deeper than Python parses
            logger.warning("the server sent something that is not JSON")
            return False
        messages = doc if isinstance(doc, list) else [doc]
        answered = False
        for message in messages:
            if not isinstance(message, dict):
                logger.warning("the server sent something that is not JSON-RPC")
                continue
            await self._hand_on(message, raw if message is doc else None)
            answered = answered or is_answer(message)
        return answered

    async def _hand_on(self, message: Message, raw: bytes | None) -> None:
        """Deliver a server message, keeping count of the answers: a request in flight is
        answered once, a second answer to it is dropped."""
        post = self._posts.get(_key(message.get("id"))) if is_answer(message) else None
        if post is not None and post.answered:
            logger.warning("dropped a second answer to request %r", message.get("id"))
            return
        await self._deliver(message, raw)
        if post is not None:
            post.answered = True

    async def _fail(self, request_id: Any, code: int, text: str) -> None:
        await self._hand_on(error_message(request_id, code, text), None)

    async def _owed(self, post: _Post, request_id: Any, code: int, text: str) -> None:
        """Answer with an error unless the request has had its answer."""
        if not post.answered:
            await self._fail(request_id, code, text)

    def _cancelled_here(self, message: Message) -> bool:
        """At 2026-07-28 a client cancels a request by closing its stream, and sends no
        notifications (MCP transports): abort the request's POST and send nothing. Before
        that, the notification is the signal and is sent."""
        params = message.get("params")
        request_id = params.get("requestId") if isinstance(params, dict) else None
        post = self._posts.get(_key(request_id)) if request_id is not None else None
        if post is None:
            return self._version in MODERN_PROTOCOL_VERSIONS
        if post.modern:
            post.scope.cancel()
        return post.modern

    def _headers(self, extra: dict[str, str] | None) -> dict[str, str]:
        headers = {
            "accept": "application/json, text/event-stream",
            "content-type": "application/json",
        }
        if self.session_id:
            headers[MCP_SESSION_ID] = self.session_id
        if self._version:
            headers[MCP_PROTOCOL_VERSION_HEADER] = self._version
        headers.update(extra or {})
        return headers

    @asynccontextmanager
    async def _stream(
        self, method: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> AsyncIterator[httpx2.Response]:
        """Send, following a redirect only within the server's origin and keeping the method
        (a 307/308 trailing-slash fix); any other redirect is returned, unfollowed."""
        request = self._http.build_request(
            method, self.url, content=body, headers=self._headers(headers)
        )
        for _ in range(MAX_REDIRECTS):
            response = await self._http.send(request, stream=True, follow_redirects=False)
            follow = _within_origin(response)
            if follow is None:
                break
            await response.aclose()
            request = follow
        try:
            yield response
        finally:
            await response.aclose()


@dataclass
class _Post:
    """A request's POST in flight: the scope it runs in, whether it was sent at 2026-07-28,
    whether the client has had its answer."""

    scope: anyio.CancelScope
    modern: bool
    answered: bool = False


class _Cursor:
    """Where an SSE stream is: its last event id and the server's reconnection delay."""

    def __init__(self) -> None:
        self.last_event_id: str | None = None
        self.retry_ms: int | None = None


class _StreamRefused(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")


def _within_origin(response: httpx2.Response) -> httpx2.Request | None:
    """The redirect's next request when it keeps the method, the origin (or upgrades http to
    https on the default ports) and brings no credentials of its own; else None."""
    following = response.next_request
    if following is None:
        return None
    sent, url = response.request, following.url
    same = (sent.url.scheme, sent.url.host, sent.url.port) == (url.scheme, url.host, url.port)
    upgrade = (
        sent.url.host == url.host
        and (sent.url.scheme, url.scheme) == ("http", "https")
        and sent.url.port is None
        and url.port is None
    )
    if following.method != sent.method or (url.userinfo and url.userinfo != sent.url.userinfo):
        return None
    return following if same or upgrade else None


def _unfollowed(response: httpx2.Response) -> str:
    assert response.next_request is not None
    location = response.next_request.url.copy_with(userinfo=b"", query=None, fragment=None)
    return (
        f"Redirect to {location} not followed; "
        "use that URL as the endpoint if it is the intended server"
    )


def _content_type(response: httpx2.Response) -> str:
    return response.headers.get("content-type", "").partition(";")[0].strip().lower()


def _key(request_id: Any) -> Any:
    """A dict key that keeps "1" and 1 apart, as JSON-RPC does."""
    return (type(request_id).__name__, request_id) if isinstance(request_id, str | int) else None


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
