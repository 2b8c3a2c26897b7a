"""The enterprise part of ``mcp-demo-server stack --enterprise-idp-port N`` (not Cognito
behaviour): a second local authorization server as the organisation's IdP, issuing ID-JAGs by
token exchange (``--enterprise-idp``) for the stack's authorization server, which redeems them
with the JWT bearer grant (``--trust-idp``) for the confidential client ``demo-enterprise``.

So that each can name the other, the IdP's socket is bound first (the stack's authorization
server trusts its issuer), and the IdP starts last (it issues ID-JAGs for the authorization
server's issuer, with ``demo-enterprise`` as their ``client_id``). The user signs in at the IdP
as ``demo`` with the seeded public client ``demo-broker``.
"""

from __future__ import annotations

import secrets
import socket
from typing import Any

from demo_server import idp
from demo_server.idp.extension_settings import EnterpriseSettings, IdJagAudience, TrustedIdp
from demo_server.idp.running import bind_loopback
from demo_server.idp.settings import ClientConfig, IdpSettings

ENTERPRISE_CLIENT_ID = "demo-enterprise"


class EnterpriseIdp:
    """The IdP's bound socket and what the stack's authorization server needs to trust it."""

    def __init__(self, port: int, pool_id: str, secret: str | None) -> None:
        self.sock: socket.socket = bind_loopback("127.0.0.1", port)
        self.pool_id = pool_id
        self.issuer = f"http://127.0.0.1:{self.sock.getsockname()[1]}/{pool_id}"
        self.secret = secret or secrets.token_urlsafe(24)

    def auth_server_fields(self, mcp_url: str) -> dict[str, Any]:
        """``IdpSettings`` fields of the MCP server's authorization server: the enterprise
        client and the trust in this IdP."""
        client = ClientConfig(
            client_id=ENTERPRISE_CLIENT_ID,
            client_secret=self.secret,
            callback_urls=(),
            allowed_scopes=(f"{mcp_url}/tools", f"{mcp_url}/admin"),
            allowed_flows=("jwt-bearer",),
        )
        trust = EnterpriseSettings(trusted_idps=(TrustedIdp(self.issuer),))
        return {"clients": (client,), "enterprise": trust}

    def start(self, auth_server_issuer: str, **fields: Any) -> idp.RunningIdp:
        """Serve the IdP (``fields``: more ``IdpSettings``, e.g. the demo password)."""
        audience = IdJagAudience(auth_server_issuer, ENTERPRISE_CLIENT_ID)
        settings = IdpSettings(
            port=int(self.sock.getsockname()[1]),
            pool_id=self.pool_id,
            enterprise=EnterpriseSettings(issue_id_jags=True, audiences=(audience,)),
            **fields,
        )
        return idp.start(settings, sock=self.sock)

    def close(self) -> None:
        self.sock.close()
