"""Request guards of the local token API: what a request must look like before any view runs.

The API serves native local clients only. A web page in the user's browser can reach 127.0.0.1
(simple CORS requests, DNS rebinding), so every browser trait is refused outright rather than
negotiated (SECURITY #4–#11, #18):

- ``Host`` must be exactly ``127.0.0.1:PORT`` or ``localhost:PORT`` (DNS rebinding, #4/#5);
- any ``Origin``, ``Sec-Fetch-*`` or CORS preflight header, and any ``OPTIONS`` request → 403
  (#6, #7, #9); no response ever carries an ``Access-Control-*`` header;
- ``X-Forwarded-*``, ``Forwarded``, ``Via`` → 403: a relay via a local proxy or fetch tool (#10);
- ``X-MCP-Broker: 1`` is required (a browser cannot add it without a preflight, #11);
- a query string → 400 (a secret in a URL leaks into logs and history, #3);
- POST bodies must be ``application/json`` (#8) and at most 64 KiB (#18).

The guards read the WSGI environ directly: they run on every request, before routing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from broker.errors import InvalidRequest, PayloadTooLarge, RequestForbidden, UnsupportedMediaType
from broker.signin.loopback_hosts import allowed_hosts

__all__ = ["MAX_BODY_BYTES", "RELAY_HEADERS", "allowed_hosts", "bearer_secret", "check_request"]

MAX_BODY_BYTES = 64 * 1024
BROKER_HEADER = "X-MCP-Broker"

# WSGI names of request headers that only browsers and relays send (the relays' also refused
# by the control page, broker.ui.guards).
_BROWSER_HEADERS = (
    "HTTP_ORIGIN",
    "HTTP_SEC_FETCH_SITE",
    "HTTP_SEC_FETCH_MODE",
    "HTTP_SEC_FETCH_DEST",
    "HTTP_SEC_FETCH_USER",
    "HTTP_ACCESS_CONTROL_REQUEST_METHOD",
    "HTTP_ACCESS_CONTROL_REQUEST_HEADERS",
    "HTTP_ACCESS_CONTROL_REQUEST_PRIVATE_NETWORK",
)
RELAY_HEADERS = (
    "HTTP_FORWARDED",
    "HTTP_VIA",
    "HTTP_X_FORWARDED_FOR",
    "HTTP_X_FORWARDED_HOST",
    "HTTP_X_FORWARDED_PROTO",
    "HTTP_X_FORWARDED_PORT",
    "HTTP_X_REAL_IP",
)


def check_request(environ: Mapping[str, Any], hosts: frozenset[str]) -> None:
    """Raise the HTTP error for the first rule ``environ`` breaks; return if it breaks none."""
    if environ.get("HTTP_HOST") not in hosts:
        raise RequestForbidden("the Host header must be 127.0.0.1:PORT or localhost:PORT")
    for name in _BROWSER_HEADERS:
        if name in environ:
            raise RequestForbidden("browser requests are not served (Origin, Sec-Fetch-*, CORS)")
    for name in RELAY_HEADERS:
        if name in environ:
            raise RequestForbidden(
                "relayed requests are not served (Forwarded, X-Forwarded-*, Via)"
            )
    method = environ.get("REQUEST_METHOD")
    if method == "OPTIONS":
        raise RequestForbidden("OPTIONS and CORS preflight requests are not served")
    if environ.get("QUERY_STRING"):
        raise InvalidRequest("query strings are not accepted: never put a secret in a URL")
    if environ.get("HTTP_X_MCP_BROKER") != "1":
        raise RequestForbidden(f"the {BROKER_HEADER}: 1 header is required")
    if method == "POST":
        _check_body(environ)


def _check_body(environ: Mapping[str, Any]) -> None:
    media_type, _, params = str(environ.get("CONTENT_TYPE", "")).partition(";")
    if media_type.strip().lower() != "application/json":
        raise UnsupportedMediaType("the body must be application/json")
    charset = params.strip().lower()
    if charset and charset.replace(" ", "") not in ("charset=utf-8", 'charset="utf-8"'):
        raise UnsupportedMediaType("the body must be UTF-8 JSON")
    length = environ.get("CONTENT_LENGTH") or "0"
    if not length.isdigit():
        raise InvalidRequest("bad Content-Length")
    if int(length) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"the body is larger than {MAX_BODY_BYTES} bytes")


def bearer_secret(environ: Mapping[str, Any]) -> bytes | None:
    """The presented client secret as bytes (``b""`` for a malformed header), or None if absent.

    WSGI hands header values over as latin-1 decoded text; encoding back gives the wire bytes.
    """
    value = environ.get("HTTP_AUTHORIZATION")
    if value is None:
        return None
    scheme, _, secret = str(value).partition(" ")
    if scheme.lower() != "bearer":
        return b""
    return secret.strip().encode("latin-1", "replace")
