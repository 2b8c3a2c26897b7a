"""The authorization request (RFC 6749 §4.1.1) with PKCE (RFC 7636 §4.3), ``state``, and the
``resource`` indicator (RFC 8707 §2.1; MCP authorization, "Resource Parameter Implementation").

``resource`` is the identifier the server publishes in its PRM, sent exactly as published (an AS
such as Cognito binds audiences by exact identifier), or the canonical server URI
(:mod:`broker.oauth.resource`) for servers without PRM; a per-server opt-out passes
``resource=None`` for authorization servers that reject it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from broker.oauth.as_metadata import AuthServer, require_code_flow
from broker.oauth.pkce import Pkce, new_pkce, new_state
from broker.oauth.registration import ClientCredentials


@dataclass(frozen=True)
class AuthorizationRequest:
    """One pending authorization: everything needed to judge the callback and redeem the code.

    ``url`` and ``state`` are kept out of ``repr`` (SECURITY #44).
    """

    url: str = field(repr=False)
    state: str = field(repr=False)
    pkce: Pkce
    redirect_uri: str
    server: AuthServer
    client: ClientCredentials
    scope: str | None
    resource: str | None

    @property
    def issuer(self) -> str:
        return self.server.issuer

    @property
    def iss_required(self) -> bool:
        return self.server.iss_parameter_supported


def build_authorization_request(
    server: AuthServer,
    client: ClientCredentials,
    redirect_uri: str,
    scope: str | None,
    resource: str | None,
    pkce: Pkce | None = None,
    state: str | None = None,
) -> AuthorizationRequest:
    authorization_endpoint = require_code_flow(server)  # PKCE S256 or no sign-in (MCP)
    pkce = pkce or new_pkce()
    state = state or new_state()
    params = {
        "response_type": "code",
        "client_id": client.client_id,
        "redirect_uri": redirect_uri,
        "state": state,
        "code_challenge": pkce.challenge,
        "code_challenge_method": pkce.method,
    }
    if scope:
        params["scope"] = scope
    if resource:
        params["resource"] = resource
    endpoint = urlsplit(authorization_endpoint)
    # RFC 6749 §3.1: keep any query the endpoint already has.
    query = urlencode([*parse_qsl(endpoint.query, keep_blank_values=True), *params.items()])
    url = urlunsplit((endpoint.scheme, endpoint.netloc, endpoint.path, query, ""))
    return AuthorizationRequest(url, state, pkce, redirect_uri, server, client, scope, resource)
