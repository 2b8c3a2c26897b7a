"""OAuth 2.0 Protected Resource Metadata (RFC 9728) for the demo MCP server.

Served at the path-inserted URL of RFC 9728 §3.1 (``/.well-known/oauth-protected-resource/mcp``,
which the ``resource_metadata`` challenge parameter points to) and, for clients that only try the
root, at ``/.well-known/oauth-protected-resource``. Built on the mcp SDK's model and handler.
"""

from __future__ import annotations

from mcp.server.auth.handlers.metadata import ProtectedResourceMetadataHandler
from mcp.shared.auth import ProtectedResourceMetadata
from starlette.routing import Route

from demo_server.resource.dpop import metadata as dpop_metadata
from demo_server.resource.settings import MCP_PATH, PRM_WELL_KNOWN, ResourceSettings

PRM_PATHS = (PRM_WELL_KNOWN + MCP_PATH, PRM_WELL_KNOWN)


def build_metadata(settings: ResourceSettings) -> ProtectedResourceMetadata:
    """RFC 9728 §2: resource, authorization_servers, scopes_supported, bearer methods, name."""
    # Validated from strings so the model keeps path-less URLs as given (no added "/"): clients
    # compare the issuer character for character (RFC 8414 §3.3).
    return ProtectedResourceMetadata.model_validate(
        {
            "resource": settings.resource_id,
            "authorization_servers": [settings.issuer],
            "scopes_supported": settings.scopes_supported,
            "bearer_methods_supported": ["header"],
            "resource_name": settings.resource_name,
            **dpop_metadata(settings),
        }
    )


def metadata_routes(settings: ResourceSettings) -> list[Route]:
    """GET routes serving the same document at both well-known paths (no CORS: loopback only)."""
    handler = ProtectedResourceMetadataHandler(build_metadata(settings))
    return [Route(path, endpoint=handler.handle, methods=["GET"]) for path in PRM_PATHS]
