"""What the status and sign-out commands, the tray and ``GET /v1/status`` show: value types with
never a token in them."""

from __future__ import annotations

from dataclasses import dataclass

from broker.config import server_label


@dataclass(frozen=True)
class ServerStatus:
    """One configured server as ``status`` shows it: never a token."""

    url: str
    state: str
    issuer: str | None = None
    client_id: str | None = None
    provider: str = "auto"
    reason: str | None = None
    expires_at: float | None = None
    scope: str | None = None
    user: str | None = None
    """Who is signed in (display only; from the ID token or a Cognito access token)."""
    machine: bool = False
    """A machine identity (client credentials): ``client_id`` is who, there is no user."""
    name: str | None = None
    """The server's own name, its PRM ``resource_name`` (sanitised), once signed in."""
    dpop_bound: bool = False
    """Its tokens are DPoP-bound (RFC 9449): only the broker's bridge and ``call`` can use them,
    the token API and ``headers`` refuse them. Never any key material: only this flag."""

    @property
    def display_name(self) -> str:
        """``name``, else host[:port] and path."""
        return server_label(self.url, self.name)


@dataclass(frozen=True)
class IdpStatus:
    """An enterprise IdP's sign-in as ``status``, ``idp list`` and the tray show it: never a
    token. ``servers``: the URLs of the servers that get their tokens from it."""

    name: str
    issuer: str
    state: str
    user: str | None = None
    expires_at: float | None = None
    reason: str | None = None
    servers: tuple[str, ...] = ()


@dataclass(frozen=True)
class SignOutResult:
    """What a sign-out did: stored entries removed, refresh tokens revoked (and whether the
    authorization server offers revocation at all), and what went wrong, if anything."""

    removed: int
    revoked: int
    revocation_supported: bool
    problem: str | None = None
