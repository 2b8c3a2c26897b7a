"""Redeeming ID-JAGs of trusted IdPs: the JWT bearer grant (RFC 7523 §2.1, RFC 7521 §4.1) with
the ID-JAG processing rules (draft-ietf-oauth-identity-assertion-authz-grant §4.4.1, MCP SEP-990
§5.1). On with ``--trust-idp ISSUER[=JWKS_URL]``; not Cognito behaviour (Cognito has no JWT bearer
grant).

Request (at ``/oauth2/token``)::

    grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer
    assertion=<the ID-JAG>
    resource=...   scope=...                       (both optional)

Only confidential clients whose ``allowed_flows`` include ``jwt-bearer`` (config file) may use it,
authenticated by their secret (draft §"Client Authentication": confidential clients only; others
get ``invalid_client`` / ``unauthorized_client``). The assertion must: have header ``typ``
``oauth-id-jag+jwt`` (RFC 8725 §3.11) and an asymmetric ``alg``; come from a trusted ``iss`` (never
this server's own issuer: draft §"Cross-Domain Use") and verify against that IdP's JWKS; carry
``sub``, ``jti``, ``iat`` and an unexpired ``exp`` (60 s leeway, RFC 7523 §3); have ``aud`` = this
server's issuer (a string, or an array of exactly that one element); have ``client_id`` = the
authenticated client; name in ``resource`` a resource server of this pool (SEP-990: REQUIRED);
and not have been redeemed before (its ``iss`` + ``jti`` are remembered until it expires, RFC
7523 §3 item 7: each ID-JAG is single-use here, so a client gets a new one from the IdP for each
access token). Any failure → 400 ``invalid_grant`` (a ``resource`` parameter naming another
resource than the ID-JAG → ``invalid_target``; a scope beyond it → ``invalid_scope``).

The access token: ``sub`` is a pairwise id of (IdP issuer, ID-JAG ``sub``), ``username`` the ID-JAG
``sub``, ``client_id`` the client, ``aud`` the resource, ``scope`` the ID-JAG's scope (or, without
one, the client's allowed scopes for that resource) narrowed to the client's allowed scopes and
to a ``scope`` parameter; ``openid`` scopes are dropped (no ID token). No refresh token (draft
§"Refresh Token"). The response carries ``scope``. A DPoP proof binds it like any grant.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import TYPE_CHECKING, Any, ClassVar

from authlib.oauth2.rfc6749 import (
    BaseGrant,
    InvalidGrantError,
    InvalidScopeError,
    TokenEndpointMixin,
    UnauthorizedClientError,
)
from joserfc import jws
from joserfc.errors import JoseError

from demo_server.dpop import ReplayCache
from demo_server.idp.errors import InvalidTargetError
from demo_server.idp.id_jag_issuer import ID_JAG_TYP, single
from demo_server.idp.models import Client, User
from demo_server.idp.settings import JWT_BEARER_FLOW, STANDARD_SCOPES
from demo_server.idp.tokens import Grant, new_origin_jti
from demo_server.idp.trusted_idps import TrustedIdps

if TYPE_CHECKING:
    from demo_server.idp.authorization_server import IdpAuthorizationServer

logger = logging.getLogger(__name__)

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ID_JAG_PROFILE = "urn:ietf:params:oauth:grant-profile:id-jag"
ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"]
LEEWAY = 60
MAX_ASSERTION_LENGTH = 16 * 1024


def metadata(trusting: bool) -> dict[str, Any]:
    """Discovery members (draft §"Resource Authorization Server Metadata"); the trusted issuers
    are not disclosed (draft §"Metadata Disclosure")."""
    return {"authorization_grant_profiles_supported": [ID_JAG_PROFILE]} if trusting else {}


class IdJagRedemption:
    """What the grant needs beyond authlib's request: the trusted IdPs and the used ``jti``s."""

    def __init__(self, trusted: TrustedIdps, replay: ReplayCache) -> None:
        self.trusted = trusted
        self.replay = replay


class IdJagBearerGrant(BaseGrant, TokenEndpointMixin):  # type: ignore[misc]
    """JWT bearer grant for ID-JAGs (RFC 7523 §2.1 + the ID-JAG profile)."""

    GRANT_TYPE = JWT_BEARER
    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = ["client_secret_basic", "client_secret_post"]

    @property
    def idp(self) -> IdpAuthorizationServer:
        server: IdpAuthorizationServer = self.server
        return server

    def validate_token_request(self) -> None:
        client: Client = self.authenticate_token_endpoint_client()
        self.request.client = client
        if client.is_public or JWT_BEARER_FLOW not in client.config.allowed_flows:
            raise UnauthorizedClientError("This client may not use the JWT bearer grant.")
        data = self.request.payload.datalist
        assertion = single(data, "assertion") or ""
        claims = self.verified_claims(assertion)
        check_audience(claims.get("aud"), self.idp.settings.issuer)
        if claims.get("client_id") != client.client_id:
            raise InvalidGrantError("The ID-JAG was issued for another client.")
        resource = self.granted_resource(claims.get("resource"), data.get("resource", []))
        scope = self.granted_scope(client, claims.get("scope"), single(data, "scope", False))
        self.consume(claims)
        self.redeemed = (claims, resource, scope)

    def verified_claims(self, assertion: str) -> dict[str, Any]:
        """Claims of a validly signed, current ID-JAG from a trusted IdP (RFC 7523 §3)."""
        if len(assertion) > MAX_ASSERTION_LENGTH:
            raise InvalidGrantError("The assertion is too long.")
        header, unverified = read_unverified(assertion)
        if str(header.get("typ", "")).lower().removeprefix("application/") != ID_JAG_TYP:
            raise InvalidGrantError(f"The assertion's typ must be {ID_JAG_TYP}.")
        if header.get("alg") not in ALGORITHMS:
            raise InvalidGrantError("The assertion's alg is not accepted.")
        claims = self.signed_claims(assertion, header, unverified.get("iss"))
        check_times(claims, self.idp.clock())
        for name in ("sub", "jti"):
            if not isinstance(claims.get(name), str) or not claims[name]:
                raise InvalidGrantError(f"The ID-JAG has no {name}.")
        return claims

    def signed_claims(
        self, assertion: str, header: dict[str, Any], issuer: object
    ) -> dict[str, Any]:
        if issuer == self.idp.settings.issuer:
            raise InvalidGrantError("This server does not redeem its own ID-JAGs.")
        return self.redemption.trusted.verify(assertion, header, issuer, "ID-JAG", "trusted IdP")

    @property
    def redemption(self) -> IdJagRedemption:
        redemption = self.idp.id_jag_redemption
        assert redemption is not None
        return redemption

    def granted_resource(self, claim: object, requested: list[str]) -> str:
        """The resource of the access token (RFC 8707 §2; SEP-990 requires the claim)."""
        offered = [claim] if isinstance(claim, str) else claim if isinstance(claim, list) else []
        ours = [r for r in offered if isinstance(r, str) and r in self.idp.resources]
        if not ours:
            raise InvalidGrantError(
                "The ID-JAG names no resource server of this authorization server."
            )
        if len(requested) > 1:
            raise InvalidTargetError("Only one 'resource' is supported.")
        if requested:
            if requested[0] not in ours:
                raise InvalidTargetError("The 'resource' is not one the ID-JAG grants.")
            return requested[0]
        if len(ours) > 1:
            raise InvalidTargetError("The ID-JAG names several resources: send 'resource'.")
        return ours[0]

    def granted_scope(self, client: Client, claim: object, requested: str | None) -> str:
        """The ID-JAG's scopes (or the client's), narrowed by the request and the client."""
        allowed = [s for s in client.config.allowed_scopes if s not in STANDARD_SCOPES]
        offered = claim.split() if isinstance(claim, str) else allowed
        if requested is not None:
            wanted = requested.split()
            if any(s not in offered for s in wanted):
                raise InvalidScopeError("The scope exceeds what the ID-JAG grants.")
            offered = wanted
        granted = [s for s in dict.fromkeys(offered) if s in allowed]
        if not granted:
            raise InvalidScopeError("No scope of the ID-JAG is allowed for this client.")
        return " ".join(granted)

    def consume(self, claims: dict[str, Any]) -> None:
        """Refuse an ID-JAG presented before (RFC 7523 §3 item 7)."""
        until = float(claims["exp"]) + LEEWAY
        if not self.redemption.replay.first_use(f"{claims['iss']} {claims['jti']}", until):
            raise InvalidGrantError("This ID-JAG has already been used.")

    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        claims, resource, scope = self.redeemed
        user = federated_user(self.idp.settings.pool_id, claims)
        auth_time = claims.get("auth_time")
        grant = Grant(
            client=self.request.client,
            user=user,
            scope=scope,
            auth_time=auth_time if isinstance(auth_time, int) else int(claims["iat"]),
            origin_jti=new_origin_jti(),
            resource=resource,
        )
        body = self.idp.tokens.token_response(grant, include_refresh_token=False)
        body["scope"] = scope
        logger.info("redeemed an ID-JAG of %s for %s", claims["iss"], resource)
        return 200, body, self.TOKEN_RESPONSE_HEADER


def read_unverified(assertion: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims before the signature is checked: only to pick the issuer's keys."""
    try:
        compact = jws.extract_compact(assertion.encode("ascii"))
        header, claims = dict(compact.headers()), json.loads(compact.payload)
    except (JoseError, ValueError, TypeError, UnicodeError) as error:
        raise InvalidGrantError("The assertion is not a JWT.") from error
    if not isinstance(claims, dict):
        raise InvalidGrantError("The assertion is not a JWT.")
    return header, claims


def check_audience(aud: object, issuer: str) -> None:
    """``aud`` is this issuer, or an array of exactly that one element (draft §4.4.1)."""
    if isinstance(aud, list) and len(aud) == 1:
        aud = aud[0]
    if aud != issuer:
        raise InvalidGrantError("The ID-JAG is for another authorization server.")


def check_times(claims: dict[str, Any], now: float) -> None:
    """``exp`` required and in the future, ``iat`` required and not in the future, ``nbf``."""
    exp, iat, nbf = claims.get("exp"), claims.get("iat"), claims.get("nbf", 0)
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (exp, iat, nbf)):
        raise InvalidGrantError("The ID-JAG needs numeric exp and iat.")
    if float(exp) <= now - LEEWAY:  # type: ignore[arg-type]
        raise InvalidGrantError("The ID-JAG has expired.")
    if float(iat) > now + LEEWAY or float(nbf) > now + LEEWAY:  # type: ignore[arg-type]
        raise InvalidGrantError("The ID-JAG is not valid yet.")


def federated_user(pool_id: str, claims: dict[str, Any]) -> User:
    """The user an ID-JAG speaks for, with a sub stable per (pool, IdP issuer, IdP sub)."""
    sub = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{pool_id}/{claims['iss']}/{claims['sub']}"))
    email = claims.get("email")
    return User(
        username=str(claims["sub"]),
        password_hash="",
        email=email if isinstance(email, str) else "",
        groups=(),
        sub=sub,
    )
