"""The token set the broker keeps per (issuer, client id, resource), with absolute expiry."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass(frozen=True, order=True)
class TokenKey:
    """Tokens are bound to the issuer and client that issued them and the resource they are for."""

    issuer: str
    client_id: str
    resource: str


CLIENT_CREDENTIALS = "client_credentials"
#: Tokens from an ID-JAG (enterprise-managed authorization), renewed with a new one.
ID_JAG = "id-jag"
#: Tokens from a workload's JWT (workload identity federation), renewed with it read anew.
WORKLOAD_JWT = "workload-jwt"


@dataclass(frozen=True)
class TokenSet:
    """Tokens from one sign-in. ``expires_at`` is absolute (epoch seconds) so it survives restarts.

    ``repr`` never shows a token value.
    """

    key: TokenKey
    access_token: str = field(repr=False)
    expires_at: float
    token_type: str = "Bearer"  # noqa: S105 - a token type, not a secret
    scope: str | None = None
    refresh_token: str | None = field(default=None, repr=False)
    obtained_at: float = field(default_factory=time.time)
    user: str | None = None
    """Who signed in, for display only (see ``broker.oauth.token_request.display_user``)."""
    id_token: str | None = field(default=None, repr=False)
    """The OpenID Connect ID token of the sign-in, sent only to a server set to ``send =
    "id-token"`` (a workaround for ID-token gateways)."""
    grant: str | None = None
    """``client_credentials`` for a machine identity's tokens, ``id-jag`` or ``workload-jwt``
    for tokens of an assertion grant: renewed with that grant (there is no refresh token); None
    for a person's sign-in."""
    dpop_key: str | None = field(default=None, repr=False)
    """The private DPoP key (a JWK, RFC 9449) the tokens are bound to when ``token_type`` is
    ``DPoP``: made for this sign-in, kept with the tokens in the keyring and nowhere else
    (:mod:`broker.tokens.dpop`)."""

    @property
    def renewable(self) -> bool:
        """Whether the broker can get the next token without the user."""
        return self.refresh_token is not None or self.grant is not None

    def seconds_left(self, now: float | None = None) -> float:
        return self.expires_at - (time.time() if now is None else now)

    def is_valid_for(self, seconds: float, now: float | None = None) -> bool:
        return self.seconds_left(now) > seconds
