"""Configuration of the protected demo MCP server, and the values derived from it.

The resource identifier (RFC 8707 §2, RFC 9728 §1.2) defaults to the server's own MCP endpoint
URL, and it doubles as the Cognito resource server identifier, so the custom scopes are
``<resource>/tools`` and ``<resource>/admin`` (Cognito: ``<resource server identifier>/<name>``).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Literal

Profile = Literal["cognito", "oidc"]
PROFILES: tuple[Profile, ...] = ("cognito", "oidc")

DEFAULT_ISSUER = "http://127.0.0.1:9000/us-east-1_Demo00001"
DEFAULT_CLIENT_ID = "demo-broker"
M2M_CLIENT_ID = "demo-m2m"  # the local authorization server's machine client (client_credentials)
DEFAULT_CLIENT_IDS = (DEFAULT_CLIENT_ID, M2M_CLIENT_ID)
MCP_PATH = "/mcp"
PRM_WELL_KNOWN = "/.well-known/oauth-protected-resource"


def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` and loopback IP literals: the only addresses this server binds."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ResourceSettings:
    """Everything ``create_app`` and ``start`` need; ``port=0`` picks a free port at bind time."""

    host: str = "127.0.0.1"
    port: int = 8000
    issuer: str = DEFAULT_ISSUER
    client_ids: tuple[str, ...] = DEFAULT_CLIENT_IDS
    """Allowed app clients (Cognito ``client_id``): the demo user's client and the machine client,
    as ``serve`` allows them by default."""
    resource: str | None = None
    jwks_url: str | None = None
    profile: Profile = "cognito"
    no_auth: bool = False
    clock_skew: int = 60
    jwks_refetch_interval: float = 30.0
    resource_name: str = "mcp-oauth-broker demo server"
    dpop: bool = False
    """Advertise DPoP (RFC 9449): a DPoP challenge on 401s, algs in the metadata. Bound tokens
    are checked either way (demo_server/resource/dpop.py)."""
    dpop_required: bool = False
    dpop_nonce: bool = False
    require_id_token: bool = False
    """Accept only ID tokens (``token_use=id``, ``aud`` an allowed client id), refuse access
    tokens: how AWS Bedrock AgentCore Gateway behaves when its allowed audience is the Cognito
    app client. ID tokens carry no scopes: a valid one is granted ``<resource>/tools`` only."""

    def __post_init__(self) -> None:
        if not is_loopback_host(self.host):
            raise ValueError(f"refusing to bind {self.host!r}: only loopback addresses are allowed")
        if self.profile not in PROFILES:
            raise ValueError(f"unknown profile {self.profile!r}; choose one of {PROFILES}")
        if self.clock_skew < 0 or self.clock_skew > 300:
            raise ValueError("clock skew must be between 0 and 300 seconds")

    @property
    def base_url(self) -> str:
        """``http://host:port`` as clients reach this server (IPv6 literals in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def mcp_url(self) -> str:
        return self.base_url + MCP_PATH

    @property
    def resource_id(self) -> str:
        """The canonical resource identifier: ``--resource`` or the MCP endpoint URL."""
        return (self.resource or self.mcp_url).rstrip("/")

    @property
    def tools_scope(self) -> str:
        return f"{self.resource_id}/tools"

    @property
    def admin_scope(self) -> str:
        return f"{self.resource_id}/admin"

    @property
    def scopes_supported(self) -> list[str]:
        return [self.tools_scope, self.admin_scope]

    @property
    def resource_metadata_url(self) -> str:
        """The path-inserted PRM URL of RFC 9728 §3.1, sent in every challenge."""
        return self.base_url + PRM_WELL_KNOWN + MCP_PATH

    @property
    def allowed_hosts(self) -> list[str]:
        """Exact ``Host`` values accepted (DNS-rebinding defence): loopback names, this port."""
        names = {"127.0.0.1", "localhost", self.host}
        return sorted(f"[{n}]:{self.port}" if ":" in n else f"{n}:{self.port}" for n in names)

    @property
    def allowed_origins(self) -> list[str]:
        return [f"http://{host}" for host in self.allowed_hosts]
