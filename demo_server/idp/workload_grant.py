"""Redeeming workload JWTs of trusted issuers: workload identity federation (MCP SEP-1933) with the
JWT bearer grant (RFC 7523 §2.1, §3). On with ``--trust-workload ISSUER[=JWKS_FILE_OR_URL]`` (or
``[[trusted_workloads]]`` in the config file); NOT Cognito behaviour (Cognito has no JWT bearer
grant).

Request (at ``/oauth2/token``)::

    grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer
    assertion=<the workload's JWT>
    client_id=<a client allowed "workload-jwt">     (a confidential one authenticates as usual)
    resource=...   scope=...                         (both optional)

The client is one of the config file with ``workload-jwt`` in ``allowed_flows``; a public one
sends only its ``client_id`` (RFC 7523 §3.1: the assertion is the credential), a confidential one
its secret too. ``workload_subjects`` limits the JWT ``sub`` values it accepts. The assertion must
(RFC 7523 §3, each failure 400 ``invalid_grant`` with a description):

- have an asymmetric ``alg`` (RS*, PS*, ES*: never ``none`` or HS*), and no ``typ`` or ``JWT``
  (an ID-JAG or an access token is not a workload's credential: RFC 8725 §3.11);
- come from a trusted workload issuer (``iss``) and verify against one of its keys;
- carry a non-empty ``sub``, and ``aud`` naming this server: its issuer or its token endpoint (a
  string, or an array with one of them);
- carry ``exp``, not past, and any ``nbf`` or ``iat`` not in the future, with ``LEEWAY`` seconds
  of clock skew;
- carry a ``jti`` never presented before (item 7: remembered until ``exp`` + ``LEEWAY``), so each
  workload JWT is redeemed once, and a copy of one already used is worthless here. A presentation
  refused for another reason does not use it up.

The access token is a machine's (like ``client_credentials``, Cognito M2M): scope = the requested
custom resource-server scopes of the client, or all of them (anything else → ``invalid_scope``),
``aud`` = a requested ``resource`` of this pool (RFC 8707; another → ``invalid_target``), no
``username``, no refresh or ID token. Its ``sub`` is stable per (pool, workload issuer, JWT
``sub``), so two issuers' equal subjects never meet, and ``workload`` = ``{"iss", "sub"}`` of the
JWT names the workload; ``client_id`` is the client. The response carries ``scope``.

With ``--trust-idp`` too, one grant serves both: an assertion whose ``iss`` is a trusted IdP, or
whose ``typ`` is an ID-JAG's, goes to :mod:`demo_server.idp.id_jag_grant`.
"""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING, Any, ClassVar

from authlib.oauth2.rfc6749 import (
    BaseGrant,
    InvalidGrantError,
    TokenEndpointMixin,
    UnauthorizedClientError,
)

from demo_server.dpop import ReplayCache
from demo_server.idp.grants import machine_scope
from demo_server.idp.id_jag_grant import (
    ALGORITHMS,
    JWT_BEARER,
    MAX_ASSERTION_LENGTH,
    read_unverified,
)
from demo_server.idp.id_jag_issuer import ID_JAG_TYP, single
from demo_server.idp.models import Client
from demo_server.idp.resource_indicators import requested_resource
from demo_server.idp.settings import WORKLOAD_JWT_FLOW
from demo_server.idp.tokens import Grant, new_origin_jti
from demo_server.idp.trusted_idps import TrustedIdps

if TYPE_CHECKING:
    from demo_server.idp.authorization_server import IdpAuthorizationServer

logger = logging.getLogger(__name__)

LEEWAY = 30
"""Seconds of clock skew allowed on ``exp``, ``nbf`` and ``iat``."""
WORKLOAD_TYP = "jwt"


class WorkloadRedemption:
    """What the grant needs beyond authlib's request: the trusted issuers and the used ``jti``s."""

    def __init__(self, trusted: TrustedIdps, replay: ReplayCache) -> None:
        self.trusted = trusted
        self.replay = replay


def unverified_issuer_and_typ(datalist: Any) -> tuple[object, object]:
    """The ``iss`` and header ``typ`` of the request's assertion, unverified (None, None when it
    is not a readable JWT): only to pick the rules it is judged by."""
    values = datalist.get("assertion", [])
    if len(values) != 1 or not isinstance(values[0], str):
        return None, None
    if len(values[0]) > MAX_ASSERTION_LENGTH:
        return None, None
    try:
        header, claims = read_unverified(values[0])
    except InvalidGrantError:
        return None, None
    return claims.get("iss"), header.get("typ")


def is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class WorkloadBearerGrant(BaseGrant, TokenEndpointMixin):  # type: ignore[misc]
    """JWT bearer grant for workload JWTs (RFC 7523 §2.1, SEP-1933)."""

    GRANT_TYPE = JWT_BEARER
    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = [
        "none",
        "client_secret_basic",
        "client_secret_post",
    ]

    @property
    def idp(self) -> IdpAuthorizationServer:
        server: IdpAuthorizationServer = self.server
        return server

    @property
    def redemption(self) -> WorkloadRedemption:
        redemption = self.idp.workload_redemption
        assert redemption is not None
        return redemption

    def is_for_workload(self) -> bool:
        """Whether the assertion is not an ID-JAG (by its issuer, or its ``typ``)."""
        issuer, typ = unverified_issuer_and_typ(self.request.payload.datalist)
        if self.redemption.trusted.keys_of(issuer) is not None:
            return True
        id_jags = self.idp.id_jag_redemption
        if id_jags is not None and id_jags.trusted.keys_of(issuer) is not None:
            return False
        return str(typ).lower().removeprefix("application/") != ID_JAG_TYP

    def validate_token_request(self) -> None:
        client: Client = self.authenticate_token_endpoint_client()
        self.request.client = client
        if WORKLOAD_JWT_FLOW not in client.config.allowed_flows:
            raise UnauthorizedClientError("This client may not redeem workload JWTs.")
        data = self.request.payload.datalist
        claims = self.verified_claims(single(data, "assertion") or "")
        subjects = client.config.workload_subjects
        if subjects and claims["sub"] not in subjects:
            raise InvalidGrantError("This client does not accept the workload JWT's subject.")
        resource = requested_resource(data.get("resource", []), self.idp.resources)
        scope = machine_scope(self.idp, client, single(data, "scope", False), "A workload JWT")
        self.consume(claims)
        self.redeemed = (claims, resource, scope)

    def verified_claims(self, assertion: str) -> dict[str, Any]:
        """Claims of a validly signed, current workload JWT of a trusted issuer (RFC 7523 §3)."""
        if len(assertion) > MAX_ASSERTION_LENGTH:
            raise InvalidGrantError("The assertion is too long.")
        header, unverified = read_unverified(assertion)
        typ = header.get("typ")
        if typ is not None and str(typ).lower().removeprefix("application/") != WORKLOAD_TYP:
            raise InvalidGrantError(
                "The assertion's typ is not JWT: an ID-JAG or an access token is not a "
                "workload's credential."
            )
        if header.get("alg") not in ALGORITHMS:
            raise InvalidGrantError(
                "The assertion's alg is not accepted (RS256/384/512, PS256/384/512, "
                "ES256/384/512 only)."
            )
        claims = self.signed_claims(assertion, header, unverified.get("iss"))
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise InvalidGrantError("The workload JWT has no sub.")
        self.check_audience(claims.get("aud"))
        check_times(claims, self.idp.clock())
        if not isinstance(claims.get("jti"), str) or not claims["jti"]:
            raise InvalidGrantError("The workload JWT has no jti, so its replay could not be seen.")
        return claims

    def signed_claims(
        self, assertion: str, header: dict[str, Any], issuer: object
    ) -> dict[str, Any]:
        return self.redemption.trusted.verify(
            assertion, header, issuer, "workload JWT", "workload issuer"
        )

    def check_audience(self, aud: object) -> None:
        """``aud`` names this server: its issuer or its token endpoint (RFC 7523 §3 item 3)."""
        ours = (self.idp.settings.issuer, f"{self.idp.settings.base_url}/oauth2/token")
        values = aud if isinstance(aud, list) else [aud]
        if not any(isinstance(value, str) and value in ours for value in values):
            raise InvalidGrantError(
                f"The workload JWT's aud must be {ours[0]} (this authorization server) or "
                f"{ours[1]}."
            )

    def consume(self, claims: dict[str, Any]) -> None:
        """Refuse a workload JWT presented before (RFC 7523 §3 item 7)."""
        until = float(claims["exp"]) + LEEWAY
        if not self.redemption.replay.first_use(f"{claims['iss']} {claims['jti']}", until):
            raise InvalidGrantError(
                "This workload JWT has already been used: each is redeemed once; present a new one."
            )

    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        claims, resource, scope = self.redeemed
        client: Client = self.request.client
        grant = Grant(
            client=client,
            user=None,
            scope=scope,
            auth_time=int(self.idp.clock()),
            origin_jti=new_origin_jti(),
            resource=resource,
            subject=workload_sub(self.idp.settings.pool_id, claims),
            extra_claims={"workload": {"iss": claims["iss"], "sub": claims["sub"]}},
        )
        body = self.idp.tokens.token_response(grant, include_refresh_token=False)
        body["scope"] = scope
        logger.info("redeemed a workload JWT of %s for client %s", claims["iss"], client.client_id)
        return 200, body, self.TOKEN_RESPONSE_HEADER


def check_times(claims: dict[str, Any], now: float) -> None:
    """``exp`` required and not past; ``nbf`` and ``iat``, when present, not in the future."""
    exp = claims.get("exp")
    if not is_number(exp):
        raise InvalidGrantError("The workload JWT has no numeric exp.")
    if float(exp) <= now - LEEWAY:  # type: ignore[arg-type]
        raise InvalidGrantError("The workload JWT has expired.")
    for name in ("nbf", "iat"):
        value = claims.get(name)
        if value is None:
            continue
        if not is_number(value):
            raise InvalidGrantError(f"The workload JWT's {name} is not a number.")
        if float(value) > now + LEEWAY:
            raise InvalidGrantError(f"The workload JWT is not valid yet ({name} is in the future).")


def workload_sub(pool_id: str, claims: dict[str, Any]) -> str:
    """The access token's ``sub``: stable per (pool, workload issuer, JWT ``sub``)."""
    return str(
        uuid.uuid5(uuid.NAMESPACE_URL, f"{pool_id}/workload/{claims['iss']}/{claims['sub']}")
    )
