"""``create_app``: the demo MCP server as one Starlette app (Streamable HTTP at ``/mcp``).

Middleware, outermost first: ``LoopbackGuard`` (Host/Origin allowlist on every path), then
``BearerGate`` (401/403 challenges, RFC 6750 §3), then the SDK's ``AuthContextMiddleware`` (so tools
read the token with ``get_access_token()``), then the SDK's app, which checks Host/Origin again.
"""

from __future__ import annotations

import logging

from mcp.server.auth.middleware.auth_context import AuthContextMiddleware
from mcp.server.auth.provider import TokenVerifier
from mcp.server.transport_security import TransportSecurityMiddleware, TransportSecuritySettings
from starlette.applications import Starlette

from demo_server.resource.gate import BearerGate, LoopbackGuard
from demo_server.resource.jwks import JwksCache
from demo_server.resource.metadata import PRM_PATHS, metadata_routes
from demo_server.resource.settings import MCP_PATH, ResourceSettings
from demo_server.resource.tools import build_mcp_server, tool_scopes
from demo_server.resource.verifier import JwtTokenVerifier

logger = logging.getLogger(__name__)


def transport_security(settings: ResourceSettings) -> TransportSecuritySettings:
    """DNS-rebinding protection: exact loopback Host and Origin values for this port."""
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=settings.allowed_hosts,
        allowed_origins=settings.allowed_origins,
    )


def default_verifier(settings: ResourceSettings) -> JwtTokenVerifier:
    keys = JwksCache(settings.issuer, settings.jwks_url, settings.jwks_refetch_interval)
    return JwtTokenVerifier(settings, keys)


def create_app(settings: ResourceSettings, verifier: TokenVerifier | None = None) -> Starlette:
    """A fresh ASGI app for ``settings`` (its ``port`` must be the real one: it is in the URLs)."""
    mcp = build_mcp_server(settings)
    security = transport_security(settings)
    app = mcp.streamable_http_app(
        streamable_http_path=MCP_PATH, transport_security=security, host=settings.host
    )
    if not settings.no_auth:
        app.router.routes.extend(metadata_routes(settings))
        app.add_middleware(AuthContextMiddleware)
        app.add_middleware(
            BearerGate,
            settings=settings,
            verifier=verifier or default_verifier(settings),
            public_paths=PRM_PATHS,
            tool_scopes=tool_scopes(settings),
        )
    app.add_middleware(LoopbackGuard, security=TransportSecurityMiddleware(security))
    return app
