"""HTTP with limits: every metadata, registration, token and revocation exchange of the broker.

:class:`LimitedSender` never follows redirects and aborts a response that is larger than
``max_bytes`` or takes longer than ``total_seconds`` in all, headers included, however slowly it
trickles in (SECURITY #39).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx2

from broker.errors import ResponseLimitExceeded, ServerUnreachable
from broker.net.deadline import watched_client, within

Sender = Callable[[httpx2.Request], httpx2.Response]

_DROP_HEADERS = ("content-encoding", "content-length", "transfer-encoding")


@dataclass(frozen=True)
class HttpLimits:
    max_bytes: int = 256 * 1024
    total_seconds: float = 20.0
    connect_seconds: float = 10.0


class LimitedSender:
    """Send one request and read its whole body within the limits; a closable callable.

    The total time limit covers the whole exchange, headers included (:mod:`broker.net.deadline`)
    when the sender makes its own client; a client passed in bounds only the body's time.
    """

    def __init__(self, client: httpx2.Client | None = None, limits: HttpLimits | None = None):
        self.limits = limits or HttpLimits()
        self._own = client is None
        self._client = client or watched_client()

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        return self._exchange(request, read_body=True)

    def head_of(self, request: httpx2.Request) -> httpx2.Response:
        """Status and headers only, within the same limits (the body might be a stream)."""
        return self._exchange(request, read_body=False)

    def _exchange(self, request: httpx2.Request, read_body: bool) -> httpx2.Response:
        limits = self.limits
        deadline = time.monotonic() + limits.total_seconds
        request.extensions["timeout"] = httpx2.Timeout(
            limits.total_seconds, connect=min(limits.connect_seconds, limits.total_seconds)
        ).as_dict()
        with within(limits.total_seconds) as exchange:
            try:
                response = self._client.send(request, stream=True, follow_redirects=False)
            except httpx2.TimeoutException as exc:
                raise ResponseLimitExceeded(f"{_where(request)} did not answer in time") from exc
            except httpx2.TransportError as exc:
                if exchange.expired:
                    raise ResponseLimitExceeded(_too_long(request, limits)) from exc
                raise ServerUnreachable(f"{_where(request)} could not be reached") from exc
            try:
                body = (
                    _read_limited(response, request, limits.max_bytes, deadline)
                    if read_body
                    else b""
                )
            except ServerUnreachable as exc:
                if exchange.expired:
                    raise ResponseLimitExceeded(_too_long(request, limits)) from exc
                raise
            finally:
                exchange.finish()
                response.close()
        headers = [(k, v) for k, v in response.headers.multi_items() if k not in _DROP_HEADERS]
        return httpx2.Response(response.status_code, headers=headers, content=body, request=request)

    def close(self) -> None:
        if self._own:
            self._client.close()


def _too_long(request: httpx2.Request, limits: HttpLimits) -> str:
    return f"{_where(request)} took longer than {limits.total_seconds:g} s to answer"


def _where(request: httpx2.Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc.decode()}{request.url.path}"


def _read_limited(
    response: httpx2.Response, request: httpx2.Request, max_bytes: int, deadline: float
) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise ResponseLimitExceeded(f"{_where(request)} sent more than {max_bytes} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > max_bytes:
                raise ResponseLimitExceeded(f"{_where(request)} sent more than {max_bytes} bytes")
            if time.monotonic() > deadline:
                raise ResponseLimitExceeded(f"{_where(request)} took too long to answer")
            chunks.append(chunk)
    except httpx2.TimeoutException as exc:
        raise ResponseLimitExceeded(f"{_where(request)} took too long to answer") from exc
    except httpx2.TransportError as exc:
        raise ServerUnreachable(f"{_where(request)} broke off its answer") from exc
    return b"".join(chunks)
