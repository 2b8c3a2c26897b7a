"""Provider profiles: what the broker knows about an authorization server beyond its metadata.

``cognito`` (Amazon Cognito user pools, see DESIGN.md §5): supports PKCE S256 without advertising
``code_challenge_methods_supported``, matches redirect URIs exactly (so the broker uses the fixed,
pre-registered callback ports) and has no registration endpoint. Its access tokens are JWTs whose
``exp`` (whole seconds, counted from a whole-second ``iat``) is the exact expiry, which
``expires_in`` overstates by up to a second. Its custom scopes are named
``<resource server identifier>/<name>``, so a scope names the server it belongs to. Chosen by
configuration or by an issuer host ``cognito-idp.<region>.amazonaws.com`` /
``issuer-cognito-idp.<region>.amazonaws.com``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from broker.errors import ConfigError

#: The broker's fixed callback ports, in order of preference (DESIGN.md §3).
FIXED_CALLBACK_PORTS: tuple[int, ...] = (53682, 53683, 53684)

_COGNITO_HOST = re.compile(r"^(issuer-)?cognito-idp\.[a-z0-9-]+\.amazonaws\.com$")


@dataclass(frozen=True)
class ProviderProfile:
    name: str
    #: The provider supports S256 even though its metadata does not say so.
    pkce_s256_implied: bool = False
    #: Callback ports to try in order; empty means an ephemeral port.
    callback_ports: tuple[int, ...] = ()
    #: Access tokens are JWTs: their ``exp`` claim is read (never verified) for the exact expiry.
    jwt_access_tokens: bool = False
    #: Resource-server scopes are named ``<resource server identifier>/<name>``: one user pool
    #: serves many servers, so only this server's own are ever requested for it.
    scopes_named_by_resource: bool = False


GENERIC = ProviderProfile("generic")
COGNITO = ProviderProfile(
    "cognito",
    pkce_s256_implied=True,
    callback_ports=FIXED_CALLBACK_PORTS,
    jwt_access_tokens=True,
    scopes_named_by_resource=True,
)
PROFILES = {p.name: p for p in (GENERIC, COGNITO)}


def is_cognito_issuer(issuer: str) -> bool:
    host = urlsplit(issuer).hostname or ""
    return urlsplit(issuer).scheme == "https" and bool(_COGNITO_HOST.match(host.lower()))


def profile_for(issuer: str, configured: str | None = None) -> ProviderProfile:
    """The configured profile if any, else ``cognito`` for a Cognito issuer, else ``generic``."""
    if configured is not None:
        try:
            return PROFILES[configured]
        except KeyError:
            raise ConfigError(f"unknown provider profile {configured!r}") from None
    return COGNITO if is_cognito_issuer(issuer) else GENERIC
