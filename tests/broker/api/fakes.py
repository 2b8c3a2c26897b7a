"""A fake token provider and raw-socket HTTP for the API tests: the API's own logic is what
these tests put under test, so the token side is a fake that records every call."""

from __future__ import annotations

import http.client
import socket
import threading
import time
from dataclasses import dataclass

from broker.errors import BrokerError, ConfigError
from broker.oauth.resource import canonical_resource
from broker.tokens.status import ServerStatus
from broker.tokens.tokenset import TokenKey, TokenSet

ISSUER = "https://idp.example/pool"
SERVER_A = "https://a.example/mcp"
SERVER_B = "https://b.example/mcp"
CANARY_ACCESS = "canary-access-6f1d2c"
CANARY_REFRESH = "canary-refresh-93ab77"


def token_set(url: str, access: str = CANARY_ACCESS, lifetime: float = 3600.0) -> TokenSet:
    now = time.time()
    return TokenSet(
        key=TokenKey(ISSUER, "client-1", canonical_resource(url)),
        access_token=f"{access}-{url}",
        expires_at=now + lifetime,
        scope="openid mcp/read",
        refresh_token=CANARY_REFRESH,
        obtained_at=now,
    )


class FakeProvider:
    """Serves fixed token sets; ``failures`` raise, ``gate`` blocks calls until set."""

    def __init__(self, urls: tuple[str, ...] = (SERVER_A, SERVER_B)) -> None:
        self.tokens = {canonical_resource(u): token_set(u) for u in urls}
        self.failures: dict[str, BrokerError] = {}
        self.gate: threading.Event | None = None
        self.gated: set[str] | None = None  # None: every call waits on the gate
        self.calls: list[tuple[str, float | None]] = []
        self.names: dict[str, str] = {}  # url -> PRM resource_name
        self.machines: set[str] = set()  # urls of machine identities
        self._lock = threading.Lock()

    def token(self, url: str, min_valid: float | None = None) -> TokenSet:
        with self._lock:
            self.calls.append((url, min_valid))
        if self.gate is not None and (self.gated is None or url in self.gated):
            self.gate.wait(30)
        if url in self.failures:
            raise self.failures[url]
        if url not in self.tokens:
            raise ConfigError(f"{url} is not configured; add it with: mcp-broker add {url}")
        return self.tokens[url]

    def status(self) -> list[ServerStatus]:
        return [
            ServerStatus(
                url,
                "valid",
                ISSUER,
                "client-1",
                expires_at=t.expires_at,
                scope=t.scope,
                machine=url in self.machines,
                name=self.names.get(url),
                dpop_bound=t.token_type == "DPoP",
            )
            for url, t in self.tokens.items()
        ]

    def calls_for(self, url: str) -> int:
        with self._lock:
            return sum(1 for u, _ in self.calls if u == url)


@dataclass
class RawResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    def header_names(self) -> set[str]:
        return {k.lower() for k, _ in self.headers}


def raw_request(port: int, data: bytes, timeout: float = 15.0) -> RawResponse:
    """Send exactly ``data`` and parse the response: for requests httpx would not send."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        method = data.split(b" ", 1)[0].decode("latin-1")
        response = http.client.HTTPResponse(sock, method=method)
        response.begin()
        return RawResponse(response.status, response.getheaders(), response.read())


def build_request(
    method: str,
    path: str,
    port: int,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    host: str | None = "default",
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1"]
    if host == "default":
        lines.append(f"Host: 127.0.0.1:{port}")
    elif host is not None:
        lines.append(f"Host: {host}")
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


#: The fields of a ``POST /v1/token`` answer (DESIGN.md §3): no refresh or ID token, ever.
TOKEN_RESPONSE_FIELDS = {
    "access_token",
    "token_type",
    "expires_in",
    "expires_at",
    "scope",
    "resource",
}
