"""A minimal HTTP/1.1 client (RFC 9112) for the broker's own token API on 127.0.0.1.

``mcp-broker headers`` runs for every connection a client makes, so what it imports is most of
what it costs. ``http.client`` brings the ``email`` package and ``ssl`` with it: about half of the
helper's start-up, for a call that never leaves the machine. This client needs only ``socket``:

- one request per connection (``Connection: close``), to ``127.0.0.1:PORT`` directly (no proxy
  can divert the client secret; DNS is never asked);
- the answer is read to the end of the connection, at most :data:`MAX_ANSWER` bytes; a
  ``Content-Length`` must match what arrived; chunked coding (which the API never uses for a
  JSON answer that waitress can frame by length) is refused;
- header values with CR or LF are refused before anything is sent.

Errors are :class:`OSError` (connection refused, timeout, reset) or :class:`LoopbackHttpError`.
"""

from __future__ import annotations

import socket

HOST = "127.0.0.1"
MAX_ANSWER = 1024 * 1024  # a token answer is a few KiB
TIMEOUT = 10.0


class LoopbackHttpError(Exception):
    """The answer was not HTTP this client accepts, or a header value was unsafe to send."""


def request(
    port: int,
    method: str,
    path: str,
    headers: dict[str, str],
    body: bytes | None = None,
    timeout: float = TIMEOUT,
) -> tuple[int, bytes]:
    """(status, body) of one request to ``127.0.0.1:port``."""
    message = _request_bytes(port, method, path, headers, body)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect((HOST, port))
        sock.sendall(message)
        return parse_response(_read_all(sock))


def _request_bytes(
    port: int, method: str, path: str, headers: dict[str, str], body: bytes | None
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}:{port}", "Connection: close"]
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    for name, value in headers.items():
        if any(ch in value for ch in "\r\n\0") or any(ch in name for ch in "\r\n\0: "):
            raise LoopbackHttpError(f"refusing to send an unsafe {name!r} header")
        lines.append(f"{name}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


def _read_all(sock: socket.socket) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while chunk := sock.recv(65536):
        size += len(chunk)
        if size > MAX_ANSWER:
            raise LoopbackHttpError("the answer is too large")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_response(raw: bytes) -> tuple[int, bytes]:
    """(status, body) of a complete HTTP/1.x response read to the end of the connection."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    status = rest[:3]
    if not sep or not version.startswith("HTTP/1.") or not status.isdigit():
        raise LoopbackHttpError("the answer is not HTTP/1.x")
    fields = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon:
            raise LoopbackHttpError("a header line of the answer is malformed")
        fields[name.strip().lower()] = value.strip()
    if "transfer-encoding" in fields:
        raise LoopbackHttpError("the answer uses a transfer coding")
    length = fields.get("content-length")
    if length is not None and (not length.isdigit() or int(length) != len(body)):
        raise LoopbackHttpError("the answer's length does not match its Content-Length")
    return int(status), body
