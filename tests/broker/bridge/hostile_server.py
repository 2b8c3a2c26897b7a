"""A hostile MCP server on 127.0.0.1: it does the handshake properly, then answers each tool call
the way its name says, mostly badly (``http.server``, so that every byte and every early close
is the test's to choose; a real framework would not send most of these).

Tools, by ``params.name`` of a ``tools/call``:

- ``ok``: a proper result, ``fine``;
- ``html_500``: 500 with an HTML page;
- ``garbage_json``: 200 ``application/json`` that is not JSON;
- ``deep_json``: 200 JSON nested deeper than Python's parser goes;
- ``wrong_content_type``: 200 ``text/plain`` carrying a proper answer;
- ``bad_gzip``: 200 JSON whose ``content-encoding: gzip`` body is not gzip;
- ``cut_body``: 200 JSON whose connection closes half-way through the promised body;
- ``no_response``: the connection closes before any response;
- ``truncated_sse``: an SSE stream that ends in the middle of its only event;
- ``notification_only_sse``: an SSE stream with a notification and no answer;
- ``wrong_id``: an answer to another request;
- ``twice``: two answers to the request, in one batch;
- ``slow``: an answer after :data:`SLOW_SECONDS`.

``GET`` is 405 (no server stream), notifications and answers are 202, ``DELETE`` is 200; a
notification whose method is ``notifications/hostile`` is answered 500.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SLOW_SECONDS = 60.0
SESSION_ID = "hostile-session-1"
TOOLS = [
    "ok",
    "html_500",
    "garbage_json",
    "deep_json",
    "wrong_content_type",
    "bad_gzip",
    "cut_body",
    "no_response",
    "truncated_sse",
    "notification_only_sse",
    "wrong_id",
    "twice",
    "slow",
]


def result(request_id: Any, value: dict[str, Any]) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": request_id, "result": value}).encode()


def text_result(request_id: Any, text: str) -> bytes:
    return result(request_id, {"content": [{"type": "text", "text": text}], "isError": False})


class Hostile(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._send(405, "text/plain", b"no stream here")

    def do_DELETE(self) -> None:
        self._send(200, "text/plain", b"")

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        message = json.loads(body)
        method = message.get("method")
        if "id" not in message or method is None:
            status = 500 if method == "notifications/hostile" else 202
            self._send(status, "text/html", b"<html>no</html>" if status == 500 else b"")
        elif method == "initialize":
            hello = {
                "protocolVersion": message["params"]["protocolVersion"],
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "hostile", "version": "0"},
            }
            answer = result(message["id"], hello)
            self._send(200, "application/json", answer, {"mcp-session-id": SESSION_ID})
        elif method == "tools/list":
            schema = {"type": "object", "properties": {}}
            tools = [{"name": name, "inputSchema": schema} for name in TOOLS]
            self._send(200, "application/json", result(message["id"], {"tools": tools}))
        elif method == "tools/call":
            getattr(self, "tool_" + message["params"]["name"])(message["id"])
        else:
            error = {"code": -32601, "message": f"no {method}"}
            doc = {"jsonrpc": "2.0", "id": message["id"], "error": error}
            self._send(200, "application/json", json.dumps(doc).encode())

    # -- the tools ----------------------------------------------------------------------------

    def tool_ok(self, request_id: Any) -> None:
        self._send(200, "application/json", text_result(request_id, "fine"))

    def tool_html_500(self, request_id: Any) -> None:
        self._send(500, "text/html", b"<html><h1>Internal Server Error</h1></html>")

    def tool_garbage_json(self, request_id: Any) -> None:
        self._send(200, "application/json", b'{"jsonrpc": "2.0", "id": oops')

    def tool_deep_json(self, request_id: Any) -> None:
        self._send(200, "application/json", b"[" * 200_000 + b"]" * 200_000)

    def tool_wrong_content_type(self, request_id: Any) -> None:
        self._send(200, "text/plain", text_result(request_id, "fine, but as text"))

    def tool_bad_gzip(self, request_id: Any) -> None:
        self._send(200, "application/json", b"this is not gzip", {"content-encoding": "gzip"})

    def tool_cut_body(self, request_id: Any) -> None:
        body = text_result(request_id, "x" * 1000)
        self._start(200, "application/json", {"content-length": str(len(body))})
        self.wfile.write(body[: len(body) // 2])
        self._hang_up()

    def tool_no_response(self, request_id: Any) -> None:
        self._hang_up()

    def tool_truncated_sse(self, request_id: Any) -> None:
        self._start(200, "text/event-stream", {"connection": "close"})
        self.wfile.write(b'event: message\ndata: {"jsonrpc": "2.0", "id": ')
        self._hang_up()

    def tool_notification_only_sse(self, request_id: Any) -> None:
        note = {"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": "info"}}
        self._start(200, "text/event-stream", {"connection": "close"})
        self.wfile.write(b"event: message\ndata: " + json.dumps(note).encode() + b"\n\n")
        self._hang_up()

    def tool_wrong_id(self, request_id: Any) -> None:
        self._send(200, "application/json", text_result(424242, "for someone else"))

    def tool_twice(self, request_id: Any) -> None:
        both = b"[" + text_result(request_id, "first") + b"," + text_result(request_id, "second")
        self._send(200, "application/json", both + b"]")

    def tool_slow(self, request_id: Any) -> None:
        time.sleep(SLOW_SECONDS)
        self.tool_ok(request_id)

    # -- plumbing -------------------------------------------------------------------------------

    def _start(self, status: int, content_type: str, headers: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()

    def _send(
        self, status: int, content_type: str, body: bytes, headers: dict[str, str] | None = None
    ) -> None:
        self._start(status, content_type, {"content-length": str(len(body)), **(headers or {})})
        self.wfile.write(body)

    def _hang_up(self) -> None:
        self.wfile.flush()
        self.close_connection = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients hanging up on a hostile server are no news


@contextmanager
def hostile_server() -> Iterator[str]:
    """Serve on a free loopback port; yields the MCP URL."""
    server = _Server(("127.0.0.1", 0), Hostile)
    thread = threading.Thread(target=server.serve_forever, name="hostile-mcp", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/mcp"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
