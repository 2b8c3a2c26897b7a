"""Command-line options and discovery members of the non-Cognito parts of ``mcp-demo-server idp``:
enterprise-managed authorization (ID-JAG, SEP-990), workload identity federation (SEP-1933) and
DPoP (RFC 9449)."""

from __future__ import annotations

import argparse
from typing import Any

from demo_server.idp import dpop, id_jag_grant, id_jag_issuer
from demo_server.idp.extension_settings import (
    ID_JAG_TTL,
    DpopSettings,
    EnterpriseSettings,
    IdJagAudience,
    TrustedIdp,
    trusted_workload,
)
from demo_server.idp.models import DEVICE_CODE_GRANT_TYPE
from demo_server.idp.settings import IdpSettings

COGNITO_GRANTS = ["authorization_code", "refresh_token", "client_credentials"]


def add_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "not Cognito behaviour",
        "Cognito issues no DPoP-bound tokens and has no token exchange or JWT bearer grant "
        "(so no ID-JAGs and no workload identity federation); it can be the enterprise IdP of "
        "an ID-JAG flow only through its OIDC sign-in.",
    )
    add = group.add_argument
    add(
        "--enterprise-idp",
        action="store_true",
        help="act as an enterprise IdP: RFC 8693 token exchange of this server's ID tokens for "
        "ID-JAGs (requested_token_type urn:ietf:params:oauth:token-type:id-jag; SEP-990)",
    )
    add(
        "--id-jag-audience",
        action="append",
        type=audience,
        metavar="ISSUER[=CLIENT_ID]",
        help="an authorization server the IdP issues ID-JAGs for, repeatable, with the client id "
        "the MCP client has there (default: its id here); none given: any absolute URL",
    )
    add(
        "--id-jag-ttl",
        type=int,
        default=ID_JAG_TTL,
        metavar="SECONDS",
        help="lifetime of an ID-JAG (default %(default)s)",
    )
    add(
        "--trust-idp",
        action="append",
        type=trusted_idp,
        metavar="ISSUER[=JWKS_URL]",
        help="redeem ID-JAGs of this IdP with the JWT bearer grant (RFC 7523), repeatable; keys "
        "from JWKS_URL or the issuer's discovery document. Clients need a secret and "
        'allowed_flows with "jwt-bearer" (--config)',
    )
    add(
        "--trust-workload",
        action="append",
        type=workload,
        metavar="ISSUER[=JWKS_FILE_OR_URL]",
        help="workload identity federation (SEP-1933): redeem JWTs of this workload issuer (a "
        "Kubernetes cluster, a CI's OIDC issuer) with the JWT bearer grant (RFC 7523), "
        "repeatable; keys from a JWKS file, a JWKS URL or the issuer's discovery document. "
        'Clients need allowed_flows with "workload-jwt" (--config); each JWT is redeemed once',
    )
    add(
        "--dpop",
        action="store_true",
        help="issue DPoP-bound tokens (RFC 9449) for token requests with a DPoP proof; "
        "advertise dpop_signing_alg_values_supported [ES256]",
    )
    add(
        "--dpop-nonce",
        action="store_true",
        help="with --dpop: demand a server nonce in every proof (use_dpop_nonce + DPoP-Nonce)",
    )


def audience(value: str) -> IdJagAudience:
    issuer, _, client_id = value.partition("=")
    if not id_jag_issuer.is_absolute_uri(issuer):
        raise argparse.ArgumentTypeError(f"{issuer!r} is not an absolute URL")
    return IdJagAudience(issuer, client_id or None)


def trusted_idp(value: str) -> TrustedIdp:
    issuer, _, jwks_url = value.partition("=")
    for url in filter(None, (issuer, jwks_url)):
        if not id_jag_issuer.is_absolute_uri(url):
            raise argparse.ArgumentTypeError(f"{url!r} is not an absolute URL")
    return TrustedIdp(issuer, jwks_url or None)


def workload(value: str) -> TrustedIdp:
    issuer, _, jwks = value.partition("=")
    try:
        return trusted_workload(issuer, jwks or None)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def settings_from_args(
    args: argparse.Namespace, trusted_workloads: tuple[TrustedIdp, ...] = ()
) -> dict[str, Any]:
    """The ``IdpSettings`` fields these options set; ``trusted_workloads``: more, from --config."""
    return {
        "enterprise": EnterpriseSettings(
            issue_id_jags=args.enterprise_idp,
            audiences=tuple(args.id_jag_audience or ()),
            id_jag_ttl=args.id_jag_ttl,
            trusted_idps=tuple(args.trust_idp or ()),
            trusted_workloads=(*(args.trust_workload or ()), *trusted_workloads),
        ),
        "dpop": DpopSettings(enabled=args.dpop, require_nonce=args.dpop_nonce),
    }


def extension_metadata(settings: IdpSettings) -> dict[str, Any]:
    """Discovery members of the enabled extensions; with an extra grant, ``grant_types_supported``
    lists every grant (RFC 8414 §2; the ID-JAG profile requires jwt-bearer there)."""
    enterprise = settings.enterprise
    extra_grants = [
        grant
        for grant, enabled in (
            (id_jag_issuer.TOKEN_EXCHANGE, enterprise.issue_id_jags),
            (
                id_jag_grant.JWT_BEARER,
                bool(enterprise.trusted_idps or enterprise.trusted_workloads),
            ),
            (DEVICE_CODE_GRANT_TYPE, settings.device_flow),
        )
        if enabled
    ]
    doc: dict[str, Any] = {}
    if extra_grants:
        doc["grant_types_supported"] = COGNITO_GRANTS + extra_grants
    doc.update(id_jag_issuer.metadata(enterprise))
    doc.update(id_jag_grant.metadata(bool(enterprise.trusted_idps)))
    doc.update(dpop.metadata(settings.dpop))
    return doc
