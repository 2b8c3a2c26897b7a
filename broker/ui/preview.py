"""What the "Add a server" page shows before anything is saved: the result of discovery, in
words (no I/O here; :meth:`broker.app.Broker.discover` fetches)."""

from __future__ import annotations

from dataclasses import dataclass

from broker.oauth.as_metadata import require_code_flow
from broker.oauth.discovery import Discovered
from broker.oauth.www_authenticate import BearerChallenge
from broker.safetext import safe_text

PROFILE_WORDS = {
    "cognito": "Amazon Cognito (PKCE S256 assumed, fixed callback ports 53682–53684, scopes "
    "named by resource server)",
    "generic": "standard OAuth 2.1 / OpenID Connect",
}


@dataclass(frozen=True)
class Preview:
    """Discovery's findings for one server URL, safe to show (server text is sanitised)."""

    url: str
    provider: str
    """The profile asked for: ``auto``, ``cognito`` or ``oidc``."""
    resource: str
    resource_name: str | None
    issuer: str
    authorization_endpoint: str
    profile: str
    profile_note: str
    scopes: tuple[str, ...]
    scopes_source: str
    registration: str | None
    """How the broker gets a client id by itself, or None: the user must give one."""

    @property
    def client_id_needed(self) -> bool:
        return self.registration is None


def preview_of(
    url: str, provider: str, found: Discovered, challenge: BearerChallenge | None
) -> Preview:
    server = found.auth_server
    # The page adds servers a person signs in to in the browser: refused now, not at sign-in,
    # when the authorization server offers no PKCE S256 or no authorization endpoint.
    authorization_endpoint = require_code_flow(server)
    profile = server.profile.name
    if provider == "auto":
        how = "detected from the issuer's host" if profile == "cognito" else "not a Cognito issuer"
    else:
        how = "chosen"
    prm_scopes = found.prm.scopes_supported if found.prm is not None else None
    if challenge is not None and challenge.scope:
        scopes, source = tuple(challenge.scope.split()), "the server's 401 challenge"
    elif prm_scopes:
        scopes, source = tuple(prm_scopes), "the server's resource metadata"
    else:
        scopes, source = (), "none named: the authorization server's default"
    # A Client ID Metadata Document needs a URL the user hosts (add --client-metadata-url):
    # only dynamic registration gets the broker a client id with nothing from the user.
    registration = "dynamic client registration" if server.registration_endpoint else None
    return Preview(
        url=found.server_url,
        provider=provider,
        resource=safe_text(found.resource, 300),
        resource_name=found.prm.resource_name if found.prm is not None else None,
        issuer=safe_text(server.issuer, 300),
        authorization_endpoint=safe_text(authorization_endpoint, 300),
        profile=profile,
        profile_note=f"{PROFILE_WORDS.get(profile, profile)}; {how}",
        scopes=tuple(safe_text(s, 120) for s in scopes),
        scopes_source=source,
        registration=registration,
    )
