"""The HTTP server's own refusals (requests waitress answers before the app sees them) keep the
API's promise for every response: a JSON ``{"error", "error_description"}`` body,
``Cache-Control: no-store`` and ``X-Content-Type-Options: nosniff``, and no CORS header.
"""

from __future__ import annotations

import json
import socket

import pytest

from broker.api.guards import MAX_BODY_BYTES
from tests.broker.api.conftest import Api

pytestmark = pytest.mark.integration

HOST = "Host: 127.0.0.1:{port}\r\n"

REQUESTS = {
    "400 bad request": "POST /v1/token HTTP/1.1\r\n{host}Content-Length: -5\r\n\r\n",
    "413 body too large": (
        "POST /v1/token HTTP/1.1\r\n{host}Content-Type: application/json\r\n"
        f"Content-Length: {MAX_BODY_BYTES + 1}\r\n\r\n"
    ),
    "431 headers too large": "GET /v1/hello HTTP/1.1\r\n{host}X-Big: " + "a" * 16500 + "\r\n\r\n",
    "501 unknown transfer coding": (
        "POST /v1/token HTTP/1.1\r\n{host}Transfer-Encoding: gzip\r\n\r\n"
    ),
}


def raw_exchange(port: int, request: str) -> tuple[int, dict[str, str], bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request.format(host=HOST.format(port=port)).encode())
        data = b""
        try:
            while chunk := sock.recv(65536):
                data += chunk
        except ConnectionResetError:
            pass  # the server hung up with part of an oversized request unread: a reset
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, body


@pytest.mark.parametrize("case", sorted(REQUESTS))
def test_the_http_servers_own_errors_are_json_and_never_cached(api: Api, case: str) -> None:
    status, headers, body = raw_exchange(api.port, REQUESTS[case])

    assert status == int(case.split()[0])
    assert headers["content-type"] == "application/json"
    assert headers["cache-control"] == "no-store"
    assert headers["x-content-type-options"] == "nosniff"
    assert not any(name.startswith("access-control-") for name in headers)
    document = json.loads(body)
    assert set(document) == {"error", "error_description"}
    assert document["error"] == "invalid_request"
    assert int(headers["content-length"]) == len(body)
