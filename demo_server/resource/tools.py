"""The demo MCP server and its tools: ``whoami``, ``echo``, ``add`` and ``admin_report``.

Every tool needs ``<resource>/tools``; ``admin_report`` also needs ``<resource>/admin``, so a client
can be seen stepping up (the bearer gate answers 403 ``insufficient_scope`` before the call reaches
the tool; the tool checks again, in case a request ever bypasses the gate). Identity comes only from
the validated token (``get_access_token()``); the token itself is never returned or passed on.
"""

from __future__ import annotations

import time
from typing import Any

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

from demo_server.resource.settings import ResourceSettings

SERVER_NAME = "mcp-oauth-broker-demo"
ADMIN_TOOL = "admin_report"


def tool_scopes(settings: ResourceSettings) -> dict[str, list[str]]:
    """Scopes a tool needs beyond ``<resource>/tools``, by tool name."""
    return {ADMIN_TOOL: [settings.admin_scope]}


def identity() -> dict[str, Any]:
    """Who called, from the validated access token's claims (never the token)."""
    token = get_access_token()
    if token is None:
        return {"authenticated": False}
    claims = token.claims or {}
    username = claims.get("username", claims.get("cognito:username"))
    # A machine client (client_credentials) has no user: the client is who called; a workload
    # (workload identity federation) is named by its platform's issuer and subject.
    workload = claims.get("workload")
    if not isinstance(workload, dict) or not all(
        isinstance(workload.get(name), str) for name in ("iss", "sub")
    ):
        workload = None
    if username:
        principal = f"user {username}"
    elif workload is not None:
        principal = f"workload {workload['sub']} of {workload['iss']}"
    else:
        principal = f"machine client {token.client_id}"
    return {
        "authenticated": True,
        "principal": principal,
        **({"workload": {"iss": workload["iss"], "sub": workload["sub"]}} if workload else {}),
        "subject": token.subject,
        "username": username,
        "client_id": token.client_id,
        "scopes": token.scopes,
        "expires_at": token.expires_at,
        "groups": claims.get("cognito:groups", []),
        "issuer": claims.get("iss"),
        "token_use": claims.get("token_use"),
    }


def build_mcp_server(settings: ResourceSettings) -> MCPServer:
    """A fresh ``MCPServer`` with the demo tools."""
    mcp: MCPServer = MCPServer(
        SERVER_NAME,
        instructions="Demo server for mcp-oauth-broker: whoami shows what your token says.",
    )

    @mcp.tool()
    def whoami() -> dict[str, Any]:
        """Subject, username, client, scopes, expiry and groups of the caller's access token."""
        return identity()

    @mcp.tool()
    def echo(text: str) -> str:
        """Return the text unchanged."""
        return text

    @mcp.tool()
    def add(a: float, b: float) -> float:
        """Add two numbers."""
        return a + b

    @mcp.tool(name=ADMIN_TOOL)
    def admin_report() -> dict[str, Any]:
        """A report for administrators; needs the extra ``<resource>/admin`` scope."""
        if not settings.no_auth:
            token = get_access_token()
            if token is None or settings.admin_scope not in token.scopes:
                raise ToolError(f"admin_report needs the scope {settings.admin_scope}")
        return {"resource": settings.resource_id, "generated_at": int(time.time()), "status": "ok"}

    return mcp
