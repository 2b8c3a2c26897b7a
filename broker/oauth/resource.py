"""Canonical resource URIs (RFC 8707 §2; MCP authorization, "Canonical Server URI").

The one rule: lowercase scheme and host, drop the default port, drop the fragment, drop
trailing slashes from the path (``https://mcp.example.com/`` becomes ``https://mcp.example.com``),
keep the query. Only ``http`` and ``https`` URLs without user info are accepted.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from broker.errors import ConfigError
from broker.safetext import has_control_characters

_DEFAULT_PORTS = {"http": 80, "https": 443}


def canonical_resource(url: str) -> str:
    """Return the canonical form of an MCP server URL, or raise :class:`ConfigError`."""
    if has_control_characters(url.strip()):
        # Shown in the tray and the terminal later: no escape sequences (and no sense in a URL).
        raise ConfigError(f"server URLs must not contain control characters: {url!r}")
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ConfigError(f"not an http(s) server URL: {url!r}")
    if parts.username is not None or parts.password is not None:
        raise ConfigError("server URLs must not carry user info")
    try:
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"bad port in server URL: {url!r}") from exc
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port in (None, _DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    return urlunsplit((scheme, netloc, parts.path.rstrip("/"), parts.query, ""))


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of a URL, canonicalised."""
    parts = urlsplit(canonical_resource(url))
    return f"{parts.scheme}://{parts.netloc}"


def resource_covers(resource: str, server_url: str) -> bool:
    """Whether a PRM ``resource`` identifies ``server_url`` (RFC 9728 §3.3).

    Equal after canonicalisation, or the same origin with a path that is a whole-segment prefix
    of the server's path (a PRM served at the root names the origin as the resource).
    """
    try:
        res, srv = urlsplit(canonical_resource(resource)), urlsplit(canonical_resource(server_url))
    except ConfigError:
        return False
    if (res.scheme, res.netloc) != (srv.scheme, srv.netloc) or res.query:
        return False
    return srv.path == res.path or srv.path.startswith(res.path + "/")
