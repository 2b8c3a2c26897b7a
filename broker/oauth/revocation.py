"""Token revocation (RFC 7009), used on sign-out to revoke the refresh token (SECURITY #51).

A request builder and a response handler, no I/O. Cognito's ``/oauth2/revoke`` takes refresh
tokens only and answers 200 with an empty body, also for tokens it does not know (RFC 7009 §2.2).
"""

from __future__ import annotations

import httpx2

from broker.errors import ServerUnreachable, TokenRequestFailed
from broker.oauth.as_metadata import AuthServer
from broker.oauth.registration import ClientCredentials, client_authentication


def build_revocation_request(
    server: AuthServer, client: ClientCredentials, refresh_token: str
) -> httpx2.Request:
    if server.revocation_endpoint is None:
        raise ValueError(f"{server.issuer} has no revocation endpoint")
    headers, auth_fields = client_authentication(server, client)
    fields = {"token": refresh_token, "token_type_hint": "refresh_token", **auth_fields}
    return httpx2.Request(
        "POST",
        server.revocation_endpoint,
        data=fields,
        headers={"Accept": "application/json", **headers},
    )


def handle_revocation_response(response: httpx2.Response) -> None:
    """Return on success (RFC 7009 §2.2); raise on a refusal or a server error (§2.2.1)."""
    if response.status_code == 200:
        return
    if response.status_code >= 500 or response.status_code == 429:
        raise ServerUnreachable(f"the revocation endpoint answered HTTP {response.status_code}")
    raise TokenRequestFailed(
        f"the revocation endpoint refused (HTTP {response.status_code})",
        status_code=response.status_code,
    )
