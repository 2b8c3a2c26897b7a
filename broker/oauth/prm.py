"""OAuth 2.0 Protected Resource Metadata (RFC 9728) as MCP uses it.

Discovery order (MCP authorization, "Protected Resource Metadata Discovery"): the
``resource_metadata`` URL from the 401 challenge; else
``/.well-known/oauth-protected-resource/<path of the MCP endpoint>``; else the root document.
The document's ``resource`` must identify the server it was fetched for (RFC 9728 §3.3).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx2
from pydantic import ValidationError

from broker.errors import ResourceMismatch, UnsafeEndpoint
from broker.oauth.endpoints import check_endpoint
from broker.oauth.resource import canonical_resource, origin_of, resource_covers
from broker.safetext import safe_text

if TYPE_CHECKING:
    from mcp.shared.auth import ProtectedResourceMetadata

logger = logging.getLogger(__name__)

WELL_KNOWN = "/.well-known/oauth-protected-resource"
JSON_HEADERS = {"Accept": "application/json"}


@dataclass(frozen=True)
class ResourceInfo:
    """A validated PRM document. ``resource`` and ``authorization_servers`` are kept exactly as
    published: they are sent and compared verbatim, never normalised."""

    resource: str
    authorization_servers: tuple[str, ...]
    scopes_supported: tuple[str, ...] | None
    metadata: ProtectedResourceMetadata
    resource_name: str | None = None
    """``resource_name`` (RFC 9728 §2), for display: from the network, so control and escape
    characters are made visible and the length is capped; None when absent or blank."""


def prm_urls(server_url: str, resource_metadata: str | None = None) -> list[str]:
    """The URLs to try, in order."""
    urls: list[str] = []
    if resource_metadata:
        try:
            urls.append(check_endpoint(resource_metadata, "resource_metadata"))
        except UnsafeEndpoint:
            logger.warning("ignoring an unsafe resource_metadata URL in a challenge")
    origin = origin_of(server_url)
    path = canonical_resource(server_url)[len(origin) :]
    if path and path != "/":
        urls.append(f"{origin}{WELL_KNOWN}{path}")
    urls.append(f"{origin}{WELL_KNOWN}")
    return list(dict.fromkeys(urls))


def build_prm_request(url: str) -> httpx2.Request:
    return httpx2.Request("GET", url, headers=JSON_HEADERS)


def _json_object(response: httpx2.Response) -> dict[str, Any] | None:
    try:
        body = json.loads(response.content)
    except (ValueError, RecursionError):
        return None
    return body if isinstance(body, dict) else None


def handle_prm_response(response: httpx2.Response, server_url: str) -> ResourceInfo | None:
    """A validated document, or None to try the next URL.

    Raises :class:`ResourceMismatch` when the document names another resource.
    """
    if response.status_code != 200:
        return None
    body = _json_object(response)
    if body is None:
        return None
    from mcp.shared.auth import ProtectedResourceMetadata  # heavy: only when discovering

    try:
        metadata = ProtectedResourceMetadata.model_validate(body)
    except ValidationError:
        logger.info("PRM at %s is not valid metadata", response.request.url)
        return None
    resource = body["resource"]
    if not isinstance(resource, str) or not resource_covers(resource, server_url):
        raise ResourceMismatch(
            f"the server's metadata names resource {str(resource)[:200]!r}, not {server_url!r}"
        )
    servers = tuple(s for s in body["authorization_servers"] if isinstance(s, str))
    scopes = metadata.scopes_supported
    return ResourceInfo(
        resource=resource,
        authorization_servers=servers,
        scopes_supported=tuple(scopes) if scopes is not None else None,
        metadata=metadata,
        resource_name=display_name(body.get("resource_name")),
    )


RESOURCE_NAME_LIMIT = 80


def display_name(value: object) -> str | None:
    """A published ``resource_name`` made safe to show, or None."""
    if not isinstance(value, str):
        return None
    return safe_text(value, RESOURCE_NAME_LIMIT) or None
