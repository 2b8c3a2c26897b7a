"""Which endpoint URLs the broker will talk to or open in a browser (SECURITY #38).

Only ``https``, or ``http`` on a loopback host (RFC 8252 §8.3). Everything else (``javascript:``,
``file:``, ``data:``, plain ``http`` to another host) is refused before any use.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from broker.errors import UnsafeEndpoint


def is_loopback_host(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_endpoint(url: object, what: str) -> str:
    """Return ``url`` if it is safe to use as ``what``; raise :class:`UnsafeEndpoint` otherwise."""
    if not isinstance(url, str) or not url or any(ord(c) < 0x21 for c in url):
        raise UnsafeEndpoint(f"{what} is missing or malformed")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "https" and parts.hostname:
        return url
    if scheme == "http" and is_loopback_host(parts.hostname):
        return url
    raise UnsafeEndpoint(
        f"{what} must be https (or http on loopback); refusing a {scheme or '?'}: URL"
    )
