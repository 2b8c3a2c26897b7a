"""Relay MCP messages between a stdio client and a Streamable HTTP server, both ways.

A faithful relay: each message goes on as the bytes it arrived as — a line from the client is
the body of its POST, a server's JSON body or SSE event is a line to the client — so requests,
responses, notifications, progress and server-initiated requests (sampling, elicitation, roots)
pass unchanged, ids and all, and a schema is never re-serialised. The relay decodes each message
only to read it: what the HTTP side needs beyond the body (routing headers,
:class:`~broker.bridge.headers.RoutingHeaders`), which requests still await an answer. It
rewrites a message in two cases only: a 2026-07-28 tool listing loses the tools whose
``x-mcp-header`` annotations are invalid (SEP-2243), and an error the server sent without the
request's id gets it (:mod:`broker.bridge.streamable`).

Every request gets exactly one answer (:mod:`broker.bridge.failures`). The session ends when
the client closes stdin: answers still owed are awaited a little, then given as errors, and the
server's session is ended (``DELETE``). Should the relay itself fail, each request still owed is
answered with an error before the exception ends the process.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import sys
import threading
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterator
from typing import Any, BinaryIO

import anyio
import anyio.from_thread
import anyio.lowlevel
import httpx2

from broker.bridge.failures import (
    BRIDGE_FAILED,
    CONNECTION_CLOSED,
    INVALID_REQUEST,
    error_message,
    unexpected,
)
from broker.bridge.headers import Message, RoutingHeaders, is_answer, is_request
from broker.bridge.streamable import StreamableHttp
from broker.bridge.transport import BrokerTokenTransport
from broker.signin.httpauth import TokenSource

logger = logging.getLogger(__name__)

#: A response may stream for a long time (the mcp SDK's defaults).
HTTP_TIMEOUT = httpx2.Timeout(30.0, read=300.0)
#: After the client's input ends, answers still owed to it are awaited this long.
DRAIN_SECONDS = 5.0
#: The server's session is given this long to end (``DELETE``) before the bridge exits.
CLOSE_SECONDS = 5.0
#: The answer to each request inside a JSON-RPC batch.
NO_BATCHES = (
    "mcp-broker: JSON-RPC batches are not part of MCP (removed in 2025-06-18); "
    "send one message per line"
)


class Outstanding:
    """Ids of client requests not yet answered, and a way to wait until there are none."""

    def __init__(self) -> None:
        self._ids: set[Any] = set()
        self._idle = anyio.Event()
        self._idle.set()

    def sent(self, message: Message) -> None:
        if is_request(message) and _hashable(message["id"]):
            if self._idle.is_set():
                self._idle = anyio.Event()
            self._ids.add((type(message["id"]), message["id"]))

    def answered(self, message: Message) -> None:
        if is_answer(message) and _hashable(message.get("id")):
            self._ids.discard((type(message["id"]), message["id"]))
            if not self._ids:
                self._idle.set()

    async def drained(self) -> None:
        await self._idle.wait()

    def pending(self) -> list[Any]:
        return [request_id for _, request_id in self._ids]


async def relay(
    lines: AsyncIterable[bytes],
    write_line: Callable[[bytes], None],
    url: str,
    http: httpx2.AsyncClient,
) -> None:
    """Relay the client's ``lines`` to the MCP server at ``url`` and its messages back through
    ``write_line`` (one JSON-RPC message, no newline; must not block), until ``lines`` ends."""
    routing = RoutingHeaders()
    outstanding = Outstanding()

    async def to_client(message: Message, raw: bytes | None) -> None:
        relayed = routing.observe_server_message(message)
        write_line(one_line(raw) if raw is not None and relayed is message else encode(relayed))
        outstanding.answered(relayed)

    def answer(request_id: Any, code: int, text: str) -> None:
        error = error_message(request_id, code, text)
        write_line(encode(error))
        outstanding.answered(error)

    def answer_owed(code: int, text: str) -> None:
        for request_id in outstanding.pending():
            answer(request_id, code, text)

    try:
        async with anyio.create_task_group() as tg:
            server = StreamableHttp(url, http, to_client, tg)
            async for line in lines:
                body = line.strip()
                batched = batch_requests(body)
                if batched is not None:
                    logger.warning("refused a JSON-RPC batch from the client")
                    for request_id in batched:
                        answer(request_id, INVALID_REQUEST, NO_BATCHES)
                    continue
                message = decode(body)
                if message is None:
                    continue
                outstanding.sent(message)
                try:
                    await server.send(message, body, routing.for_client_message(message))
                except Exception as exc:
                    text = unexpected(logger, "while relaying a message from the client", exc)
                    if is_request(message):
                        answer(message["id"], BRIDGE_FAILED, text)
            logger.info("the client closed its input; ending the session")
            # A client piping requests in may close its input before the answers are out.
            with anyio.move_on_after(DRAIN_SECONDS):
                await outstanding.drained()
            tg.cancel_scope.cancel()  # no answer may follow the errors below
            answer_owed(CONNECTION_CLOSED, "mcp-broker: the client's input ended before the answer")
            with anyio.move_on_after(CLOSE_SECONDS, shield=True):
                await server.close()
    except BaseException:
        answer_owed(BRIDGE_FAILED, "mcp-broker: the bridge stopped; see its log (stderr)")
        raise


def decode(body: bytes) -> Message | None:
    """A line from the client as a JSON-RPC message; None (and a warning) for anything else."""
    if not body:
        return None
    try:
        message = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than Python parses
        logger.warning("dropped a line from the client that is not JSON")
        return None
    if not isinstance(message, dict) or not ("method" in message or is_answer(message)):
        logger.warning("dropped a line from the client that is not a JSON-RPC message")
        return None
    return message


def batch_requests(body: bytes) -> list[Any] | None:
    """The ids of the requests in ``body`` if it is a JSON-RPC batch (a JSON array), else None.

    MCP has no batches since 2025-06-18 and a server on a later version refuses them, so the
    bridge answers each request inside with an error rather than leave the client waiting;
    notifications and answers inside are dropped, as a server would.
    """
    if not body.startswith(b"["):
        return None
    try:
        batch = json.loads(body)
    except (ValueError, RecursionError):
        return None  # not JSON: decode() drops it
    if not isinstance(batch, list):
        return None
    if not batch:
        return [None]  # JSON-RPC 2.0 §6: an empty array is one invalid request, answered id null
    return [m["id"] for m in batch if isinstance(m, dict) and is_request(m)]


def one_line(raw: bytes) -> bytes:
    """A JSON text as one line, byte for byte otherwise: once it has been parsed, a CR or LF in
    it can only be whitespace between tokens (inside strings they must be escaped)."""
    return raw.strip().replace(b"\r", b" ").replace(b"\n", b" ")


def encode(message: Message) -> bytes:
    return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode()


def _hashable(value: Any) -> bool:
    return isinstance(value, str | int)


# -- stdio -------------------------------------------------------------------------------------


async def stdin_lines(stdin: BinaryIO) -> AsyncIterator[bytes]:
    """Lines from ``stdin`` until it ends (or cannot be read).

    Read by a daemon thread of its own, from the file descriptor: a pipe read blocks, and a
    bridge that must stop cannot wait for the client's next line. An anyio worker thread would
    be waited for at exit; a daemon thread in ``stdin``'s buffered reader would hold its lock,
    which the interpreter takes at exit (and aborts when it cannot).
    """
    send, receive = anyio.create_memory_object_stream[bytes](16)
    loop = anyio.lowlevel.current_token()
    fd = stdin.fileno()

    def read() -> None:
        try:
            for line in _lines_of(fd):
                anyio.from_thread.run(send.send, line, token=loop)
        except OSError as exc:
            logger.warning("reading stdin failed (%s); ending the session", type(exc).__name__)
        except (RuntimeError, anyio.BrokenResourceError):
            pass  # the relay is gone: nobody is reading
        finally:
            try:
                anyio.from_thread.run_sync(send.close, token=loop)
            except RuntimeError:  # the event loop is gone, and nothing else can use the stream
                send.close()

    threading.Thread(target=read, name="bridge-stdin", daemon=True).start()
    async with receive:
        async for line in receive:
            yield line


def _lines_of(fd: int) -> Iterator[bytes]:
    """The lines read from ``fd`` (each with its newline; the last one maybe without)."""
    parts: list[bytes] = []  # of the line not yet ended
    while chunk := os.read(fd, 65536):
        *ended, rest = chunk.split(b"\n")
        for piece in ended:
            yield b"".join([*parts, piece, b"\n"])
            parts = []
        if rest:
            parts.append(rest)
    if parts:
        yield b"".join(parts)


class LineWriter:
    """Writes lines to ``out`` from a thread of its own: writing never blocks the relay (a
    client that is slow to read must not stall the HTTP side), lines keep their order."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._lines: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="bridge-stdout", daemon=True)
        self._thread.start()

    def write(self, line: bytes) -> None:
        self._lines.put(line)

    def close(self) -> None:
        self._lines.put(None)
        self._thread.join(10)

    def _run(self) -> None:
        while (line := self._lines.get()) is not None:
            try:
                self._out.write(line + b"\n")
                self._out.flush()
            except (OSError, ValueError):  # the client is gone; stdin ends the session
                logger.info("stdout is closed; dropping the server's messages")
                return


async def serve_stdio(url: str, tokens: TokenSource) -> None:
    """Serve one MCP session on this process's stdin/stdout, relayed to ``url``."""
    writer = LineWriter(sys.stdout.buffer)
    http = httpx2.AsyncClient(
        transport=BrokerTokenTransport(tokens), timeout=HTTP_TIMEOUT, trust_env=False
    )
    try:
        async with http:
            await relay(stdin_lines(sys.stdin.buffer), writer.write, url, http)
    finally:
        writer.close()
