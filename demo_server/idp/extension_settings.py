"""Settings of the optional, non-Cognito parts of the local authorization server.

- ``EnterpriseSettings``: acting as an enterprise IdP that issues ID-JAGs by token exchange
  (``--enterprise-idp``), and trusting other IdPs' ID-JAGs in the JWT bearer grant
  (``--trust-idp``); draft-ietf-oauth-identity-assertion-authz-grant, MCP SEP-990. Also trusting
  workload issuers' JWTs in the same grant (``--trust-workload``; workload identity federation,
  MCP SEP-1933).
- ``DpopSettings``: DPoP-bound tokens (RFC 9449; ``--dpop``, ``--dpop-nonce``).

Cognito does neither: it issues no DPoP-bound tokens and has no token exchange or JWT bearer
grant (it can be the enterprise IdP only through its OIDC sign-in, with another party issuing the
ID-JAG).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

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
    """An issuer whose JWTs this authorization server redeems (an IdP's ID-JAGs, or a workload
    platform's JWTs): its issuer and where its keys are (a JWKS URL, or a JWKS file read anew
    when a ``kid`` is unknown; neither: ``jwks_uri`` from the issuer's discovery document)."""

    issuer: str
    jwks_url: str | None = None
    jwks_file: str | None = None


def is_http_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc) and not parts.fragment


def trusted_workload(issuer: str, jwks: object = None, base: Path | None = None) -> TrustedIdp:
    """A workload issuer and its keys: ``jwks`` an http(s) JWKS URL, a JWKS file (relative to
    ``base``), or None (the issuer's discovery document names them: then it must be a URL)."""
    if not issuer or any(c.isspace() or not c.isprintable() for c in issuer):
        raise ValueError(f"{issuer!r} is not an issuer")
    if jwks is None or jwks == "":
        if not is_http_url(issuer):
            raise ValueError(f"{issuer!r} is not a URL: give its JWKS file or URL")
        return TrustedIdp(issuer)
    if not isinstance(jwks, str):
        raise ValueError("the JWKS must be a file name or a URL")
    if jwks.startswith(("http://", "https://")):
        if not is_http_url(jwks):
            raise ValueError(f"{jwks!r} is not a URL")
        return TrustedIdp(issuer, jwks_url=jwks)
    path = Path(jwks).expanduser()
    if base is not None and not path.is_absolute():
        path = base / path
    return TrustedIdp(issuer, jwks_file=str(path.absolute()))


@dataclass(frozen=True)
class EnterpriseSettings:
    issue_id_jags: bool = False
    audiences: tuple[IdJagAudience, ...] = ()
    """Empty: any absolute https/http URL may be the audience."""
    id_jag_ttl: int = ID_JAG_TTL
    trusted_idps: tuple[TrustedIdp, ...] = ()
    trusted_workloads: tuple[TrustedIdp, ...] = ()
    """Workload issuers (``--trust-workload``) whose JWTs clients allowed ``workload-jwt`` may
    redeem (:mod:`demo_server.idp.workload_grant`)."""

    def validate(self, own_issuer: str) -> None:
        if self.id_jag_ttl <= 0:
            raise ValueError("the ID-JAG lifetime must be positive")
        if any(idp.issuer == own_issuer for idp in self.trusted_idps):
            # draft "Cross-Domain Use": an IdP MUST NOT issue access tokens for its own ID-JAGs
            raise ValueError("--trust-idp cannot name this server's own issuer")
        if any(workload.issuer == own_issuer for workload in self.trusted_workloads):
            raise ValueError("--trust-workload cannot name this server's own issuer")
        workloads = {workload.issuer for workload in self.trusted_workloads}
        both = sorted(workloads & {idp.issuer for idp in self.trusted_idps})
        if both:
            # The grant tells an ID-JAG from a workload JWT by its issuer.
            raise ValueError(f"{both[0]} cannot be both a trusted IdP and a workload issuer")
        if len(workloads) != len(self.trusted_workloads):
            raise ValueError("a workload issuer is trusted twice")


@dataclass(frozen=True)
class DpopSettings:
    enabled: bool = False
    require_nonce: bool = False

    def validate(self) -> None:
        if self.require_nonce and not self.enabled:
            raise ValueError("--dpop-nonce needs --dpop")
