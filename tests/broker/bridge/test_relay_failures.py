"""Whatever fails, each request the client sends gets exactly one answer and the session goes
on: failures are injected under the relay (a token source with a bug, an answer whose body
raises while it is read, answers for the wrong request, a ``retry`` of years, a bug in the relay
itself), and the client, lines in and lines out as over stdio, gets an error for the request it
hit and a result for the next one. A notification gets no answer, failed or not."""

from __future__ import annotations

import json
import logging
import math
import os
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, BinaryIO

import anyio
import httpx2
import pytest

from broker.bridge import relay as relay_module
from broker.bridge import streamable
from broker.bridge.failures import (
    BRIDGE_FAILED,
    CONNECTION_CLOSED,
    INTERNAL_ERROR,
    INVALID_REQUEST,
    PARSE_ERROR,
)
from broker.bridge.headers import RoutingHeaders
from broker.bridge.relay import relay, stdin_lines
from broker.bridge.transport import BrokerTokenTransport
from tests.broker.bridge.fakes import FakeTokens

URL = FakeTokens.resource
#: How long a test waits for an answer before it fails (the bug is an answer that never comes).
WAIT = 10.0

Handler = Callable[[httpx2.Request], Awaitable[httpx2.Response]]


def result(request_id: Any, text: str = "fine") -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "result": {"content": [{"type": "text", "text": text}]},
    }


def call(request_id: Any, tool: str, **params: Any) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "tools/call",
        "params": {"name": tool, "arguments": {}, **params},
    }


class Client:
    """The stdio side: writes lines into the relay, collects the lines it writes back."""

    def __init__(self, send: anyio.abc.ObjectSendStream[bytes]) -> None:
        self._send = send
        self.received: list[dict[str, Any]] = []
        self._arrived = anyio.Event()

    def write_line(self, line: bytes) -> None:
        assert b"\n" not in line
        self.received.append(json.loads(line))
        self._arrived.set()
        self._arrived = anyio.Event()

    async def send(self, message: dict[str, Any]) -> None:
        await self._send.send(json.dumps(message).encode() + b"\n")

    async def answer_to(self, request_id: Any) -> dict[str, Any]:
        with anyio.fail_after(WAIT):
            while not (found := self.answers_to(request_id)):
                await self._arrived.wait()
        return found[0]

    async def ask(self, message: dict[str, Any]) -> dict[str, Any]:
        await self.send(message)
        return await self.answer_to(message["id"])

    def answers_to(self, request_id: Any) -> list[dict[str, Any]]:
        return [
            m
            for m in self.received
            if "method" not in m and m.get("id") == request_id and type(m["id"]) is type(request_id)
        ]

    async def end_input(self) -> None:
        await self._send.aclose()


@asynccontextmanager
async def relayed(handler: Handler, tokens: Any = None) -> AsyncIterator[Client]:
    """A relay to a scripted server (``handler``), under the bridge's transport; on leaving,
    the client's input ends and the relay must finish by itself."""
    send, lines = anyio.create_memory_object_stream[bytes](math.inf)
    client = Client(send)
    transport = BrokerTokenTransport(tokens or FakeTokens(), httpx2.MockTransport(handler))

    async def line_stream() -> AsyncIterator[bytes]:
        async with lines:
            async for line in lines:
                yield line

    async with httpx2.AsyncClient(transport=transport) as http, anyio.create_task_group() as tg:
        done = anyio.Event()

        async def run() -> None:
            await relay(line_stream(), client.write_line, URL, http)
            done.set()

        tg.start_soon(run)
        yield client
        await client.end_input()
        with anyio.fail_after(WAIT):
            await done.wait()


def json_answer(doc: Any, status: int = 200, **headers: str) -> httpx2.Response:
    return httpx2.Response(
        status, headers={"content-type": "application/json", **headers}, content=json.dumps(doc)
    )


def scripted(**tools: Callable[[httpx2.Request, dict[str, Any]], httpx2.Response]) -> Handler:
    """A server answering each tool by name, ``ok`` with a result, GET with 405."""

    async def handle(request: httpx2.Request) -> httpx2.Response:
        if request.method != "POST":
            return httpx2.Response(405)
        message = json.loads(request.content)
        if "id" not in message:
            return httpx2.Response(202)
        tool = message.get("params", {}).get("name", "")
        if tool in tools:
            return tools[tool](request, message)
        return json_answer(result(message["id"]))

    return handle


class RaisingBody(httpx2.AsyncByteStream):
    """A body whose reading fails half-way with an exception nobody expects."""

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b'{"jsonrpc": "2.0", '
        raise ValueError("the body broke")


def run(session: Callable[[], Awaitable[None]]) -> None:
    anyio.run(session)


def test_an_answer_whose_body_raises_while_read_fails_that_request_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(request: httpx2.Request, message: dict[str, Any]) -> httpx2.Response:
        return httpx2.Response(
            200, headers={"content-type": "application/json"}, stream=RaisingBody()
        )

    async def session() -> None:
        async with relayed(scripted(broken=broken)) as client:
            failed = await client.ask(call(1, "broken"))
            fine = await client.ask(call(2, "ok"))

        assert failed["error"]["code"] == BRIDGE_FAILED
        assert "ValueError" in failed["error"]["message"]
        assert fine["result"]["content"][0]["text"] == "fine"
        assert [len(client.answers_to(i)) for i in (1, 2)] == [1, 1]

    with caplog.at_level(logging.ERROR, logger="broker.bridge"):
        run(session)
    assert "Traceback" in caplog.text and "the body broke" in caplog.text


class OnceBrokenTokens(FakeTokens):
    """A token source with a bug that shows once: its first call raises RuntimeError."""

    def token(self) -> str:
        if not self.calls:
            self.calls.append(("token",))
            raise RuntimeError("the token source broke")
        return super().token()


def test_a_token_source_that_raises_fails_one_request_and_the_next_one_works() -> None:
    async def session() -> None:
        async with relayed(scripted(), OnceBrokenTokens(["t1"])) as client:
            failed = await client.ask(call(1, "ok"))
            fine = await client.ask(call(2, "ok"))

        assert failed["error"]["code"] == BRIDGE_FAILED
        assert "RuntimeError" in failed["error"]["message"]
        assert "result" in fine

    run(session)


def test_an_answer_to_another_request_leaves_none_unanswered() -> None:
    def stray(request: httpx2.Request, message: dict[str, Any]) -> httpx2.Response:
        return json_answer(result(999))

    async def session() -> None:
        async with relayed(scripted(stray=stray)) as client:
            own = await client.ask(call(1, "stray"))

        assert own["error"]["code"] == INTERNAL_ERROR
        assert "no answer" in own["error"]["message"]

    run(session)


def test_a_second_answer_to_the_same_request_is_dropped() -> None:
    def twice(request: httpx2.Request, message: dict[str, Any]) -> httpx2.Response:
        return json_answer([result(message["id"], "first"), result(message["id"], "second")])

    async def session() -> None:
        async with relayed(scripted(twice=twice)) as client:
            await client.ask(call(1, "twice"))
            await client.ask(call(2, "ok"))  # by now a second answer to 1 would be in

        (only,) = client.answers_to(1)
        assert only["result"]["content"][0]["text"] == "first"

    run(session)


def test_json_nested_deeper_than_python_parses_is_a_parse_error() -> None:
    def deep(request: httpx2.Request, message: dict[str, Any]) -> httpx2.Response:
        depth = 100_000
        return httpx2.Response(
            200, headers={"content-type": "application/json"}, content="[" * depth + "]" * depth
        )

    async def session() -> None:
        async with relayed(scripted(deep=deep)) as client:
            failed = await client.ask(call(1, "deep"))
            fine = await client.ask(call(2, "ok"))

        assert failed["error"]["code"] == PARSE_ERROR and "result" in fine

    run(session)


def test_a_retry_of_years_is_capped_so_the_request_is_answered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(streamable, "MAX_RETRY_MS", 10)

    def parked(request: httpx2.Request, message: dict[str, Any]) -> httpx2.Response:
        # An event id makes the stream resumable, the retry asks for 30 years, and it ends.
        stream = b"id: 1\nretry: 999999999999\ndata: \n\n"
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=stream)

    async def session() -> None:
        async with relayed(scripted(parked=parked)) as client:
            failed = await client.ask(call(1, "parked"))

        assert failed["error"]["code"] == CONNECTION_CLOSED
        assert "reconnection" in failed["error"]["message"]

    run(session)


def test_a_protocol_version_no_header_can_carry_is_not_sent_as_one() -> None:
    seen: list[str | None] = []

    async def handle(request: httpx2.Request) -> httpx2.Response:
        seen.append(request.headers.get("mcp-protocol-version"))
        return json_answer(result(json.loads(request.content)["id"]))

    async def session() -> None:
        async with relayed(handle) as client:
            meta = {"_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28\u00e9\n"}}
            answered = await client.ask(call(1, "ok", **meta))

        assert "result" in answered
        assert seen == [None]

    run(session)


def test_a_session_id_no_request_could_carry_fails_the_initialize() -> None:
    async def handle(request: httpx2.Request) -> httpx2.Response:
        message = json.loads(request.content)
        headers = [(b"content-type", b"application/json"), (b"mcp-session-id", b"caf\xc3\xa9")]
        return httpx2.Response(200, headers=headers, content=json.dumps(result(message["id"])))

    async def session() -> None:
        async with relayed(handle) as client:
            hello = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {}}
            refused = await client.ask(
                {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": hello}
            )

        assert refused["error"]["code"] == INVALID_REQUEST
        assert "session id" in refused["error"]["message"]

    run(session)


def test_a_bug_in_the_relay_fails_that_request_and_the_session_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    derive = RoutingHeaders.for_client_message

    def buggy(self: RoutingHeaders, message: Any) -> dict[str, str]:
        if message.get("params", {}).get("name") == "trigger":
            raise TypeError("a bug in the header rules")
        return derive(self, message)

    monkeypatch.setattr(RoutingHeaders, "for_client_message", buggy)

    async def session() -> None:
        async with relayed(scripted()) as client:
            failed = await client.ask(call(1, "trigger"))
            fine = await client.ask(call(2, "ok"))

        assert failed["error"]["code"] == BRIDGE_FAILED
        assert "TypeError" in failed["error"]["message"]
        assert "result" in fine

    run(session)


def test_a_notification_gets_no_answer_even_when_sending_it_fails() -> None:
    async def handle(request: httpx2.Request) -> httpx2.Response:
        message = json.loads(request.content)
        if "id" not in message:
            raise ValueError("the server cannot take notifications")
        return json_answer(result(message["id"]))

    async def session() -> None:
        async with relayed(handle) as client:
            await client.send({"jsonrpc": "2.0", "method": "notifications/progress"})
            fine = await client.ask(call(1, "ok"))

        assert client.received == [fine]

    run(session)


def test_requests_still_owed_when_the_input_ends_are_answered_with_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(relay_module, "DRAIN_SECONDS", 0.2)

    async def never(request: httpx2.Request) -> httpx2.Response:
        await anyio.sleep_forever()
        raise AssertionError

    async def session() -> None:
        async with relayed(never) as client:
            await client.send(call(1, "slow"))
        # leaving ended the input, and the relay has finished

        (owed,) = client.answers_to(1)
        assert owed["error"]["code"] == CONNECTION_CLOSED

    run(session)


def test_when_the_relay_fails_as_a_whole_each_request_owed_is_answered_first() -> None:
    received: list[dict[str, Any]] = []
    sent = anyio.Event()

    async def never(request: httpx2.Request) -> httpx2.Response:
        sent.set()
        await anyio.sleep_forever()
        raise AssertionError

    async def lines() -> AsyncIterator[bytes]:
        yield json.dumps(call(1, "slow")).encode()
        await sent.wait()
        raise RuntimeError("reading the client's input broke")

    async def session() -> None:
        transport = BrokerTokenTransport(FakeTokens(), httpx2.MockTransport(never))
        async with httpx2.AsyncClient(transport=transport) as http:
            with anyio.fail_after(WAIT):
                await relay(lines(), lambda line: received.append(json.loads(line)), URL, http)

    with pytest.raises(BaseException) as raised:
        run(session)

    assert "reading the client's input broke" in repr(raised.value)
    assert [(m["id"], m["error"]["code"]) for m in received] == [(1, BRIDGE_FAILED)]


def test_reading_stdin_can_be_abandoned_while_the_client_sends_nothing() -> None:
    # A bridge that must stop does not wait for the client's next line: the process could not
    # exit while a worker thread blocks on the pipe.
    read_end, write_end = os.pipe()
    finished = threading.Event()

    async def stop_while_reading(stdin: BinaryIO) -> None:
        async with anyio.create_task_group() as tg:

            async def consume() -> None:
                async for _ in stdin_lines(stdin):
                    pass

            tg.start_soon(consume)
            await anyio.sleep(0.1)
            tg.cancel_scope.cancel()
        finished.set()

    with open(read_end, "rb") as stdin, open(write_end, "wb") as client:
        thread = threading.Thread(target=anyio.run, args=(stop_while_reading, stdin), daemon=True)
        thread.start()
        thread.join(WAIT)
        stopped = finished.is_set()
        client.write(b"{}\n")  # sets a stuck reader free, so that this test leaves no thread
    thread.join(WAIT)

    assert stopped


def test_stdin_lines_are_the_lines_as_sent_across_reads() -> None:
    read_end, write_end = os.pipe()
    sent = [b'{"a": 1}\n', b"x" * 200_000 + b"\n", b"\n", b"last without newline"]

    def write() -> None:
        with open(write_end, "wb") as client:
            for line in sent:
                client.write(line)
                client.flush()

    async def read_all(stdin: BinaryIO) -> list[bytes]:
        with anyio.fail_after(WAIT):
            return [line async for line in stdin_lines(stdin)]

    writer = threading.Thread(target=write)
    with open(read_end, "rb") as stdin:
        writer.start()
        got = anyio.run(read_all, stdin)
    writer.join()

    assert got == sent


def test_a_batch_gets_an_error_for_each_request_in_it_and_the_session_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    posted: list[Any] = []

    async def handle(request: httpx2.Request) -> httpx2.Response:
        posted.append(json.loads(request.content))
        return await scripted()(request)

    batch = [call(1, "ok"), {"jsonrpc": "2.0", "method": "notifications/progress"}, call("b", "ok")]

    async def session() -> None:
        async with relayed(handle) as client:
            await client._send.send(json.dumps(batch).encode() + b"\n")
            await client._send.send(b"[]\n")
            notified = [{"jsonrpc": "2.0", "method": "notifications/progress"}]
            await client._send.send(json.dumps(notified).encode() + b"\n")  # no answer
            refused = [await client.answer_to(1), await client.answer_to("b")]
            empty = await client.answer_to(None)
            fine = await client.ask(call(3, "ok"))

        for answer in refused:
            assert answer["error"]["code"] == INVALID_REQUEST
            assert "batches are not part of MCP" in answer["error"]["message"]
        assert fine["result"]["content"][0]["text"] == "fine"
        assert empty["error"]["code"] == INVALID_REQUEST  # JSON-RPC 2.0: [] is invalid
        assert [len(client.answers_to(i)) for i in (1, "b", None, 3)] == [1, 1, 1, 1]
        assert len(client.received) == 4  # nothing for the notifications

    with caplog.at_level(logging.WARNING, logger="broker.bridge"):
        run(session)
    assert all(not isinstance(doc, list) for doc in posted)  # the batch never reached the server
    assert [doc.get("id") for doc in posted if "id" in doc] == [3]
    assert "refused a JSON-RPC batch" in caplog.text
