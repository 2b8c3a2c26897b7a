"""Settings of the optional, non-Cognito parts of the local authorization server.

- ``EnterpriseSettings``: acting as an enterprise IdP that issues ID-JAGs by token exchange
  (``--enterprise-idp``), and trusting other IdPs' ID-JAGs in the JWT bearer grant
  (``--trust-idp``); draft-ietf-oauth-identity-assertion-authz-grant, MCP SEP-990.
- ``DpopSettings``: DPoP-bound tokens (RFC 9449; ``--dpop``, ``--dpop-nonce``).

Cognito does neither: it issues no DPoP-bound tokens and has no token exchange or JWT bearer
grant (it can be the enterprise IdP only through its OIDC sign-in, with another party issuing the
ID-JAG).
"""

from __future__ import annotations

from dataclasses import dataclass

ID_JAG_TTL = 300


@dataclass(frozen=True)
class IdJagAudience:
    """An authorization server this IdP issues ID-JAGs for (its issuer, the ``audience``), and the
    ``client_id`` the MCP client has there (draft §"Cross-Domain Client ID Handling"; None: the
    same id as at this IdP)."""

    issuer: str
    client_id: str | None = None


@dataclass(frozen=True)
class TrustedIdp:
    """An IdP whose ID-JAGs this authorization server redeems: its issuer and where its keys are
    (a JWKS URL; None: ``jwks_uri`` from the issuer's discovery document)."""

    issuer: str
    jwks_url: str | None = None


@dataclass(frozen=True)
class EnterpriseSettings:
    issue_id_jags: bool = False
    audiences: tuple[IdJagAudience, ...] = ()
    """Empty: any absolute https/http URL may be the audience."""
    id_jag_ttl: int = ID_JAG_TTL
    trusted_idps: tuple[TrustedIdp, ...] = ()

    def validate(self, own_issuer: str) -> None:
        if self.id_jag_ttl <= 0:
            raise ValueError("the ID-JAG lifetime must be positive")
        if any(idp.issuer == own_issuer for idp in self.trusted_idps):
            # draft "Cross-Domain Use": an IdP MUST NOT issue access tokens for its own ID-JAGs
            raise ValueError("--trust-idp cannot name this server's own issuer")


@dataclass(frozen=True)
class DpopSettings:
    enabled: bool = False
    require_nonce: bool = False

    def validate(self) -> None:
        if self.require_nonce and not self.enabled:
            raise ValueError("--dpop-nonce needs --dpop")
