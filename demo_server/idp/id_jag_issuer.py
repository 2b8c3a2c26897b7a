"""The local authorization server as an enterprise IdP: token exchange (RFC 8693) issuing Identity
Assertion JWT Authorization Grants (ID-JAG; draft-ietf-oauth-identity-assertion-authz-grant §4.3,
MCP extension SEP-990 "Enterprise-Managed Authorization" §4). On with ``--enterprise-idp``; not
Cognito behaviour (Cognito has no token exchange).

Request (at ``/oauth2/token``, the client authenticated as for its sign-in: public clients with
``client_id``, confidential ones with their secret)::

    grant_type=urn:ietf:params:oauth:grant-type:token-exchange
    requested_token_type=urn:ietf:params:oauth:token-type:id-jag
    subject_token=<an ID token this server issued to the same client>
    subject_token_type=urn:ietf:params:oauth:token-type:id_token
    audience=<issuer of the MCP server's authorization server>
    resource=<the MCP server's resource identifier>      (REQUIRED by SEP-990)
    scope=<scopes at the MCP server>                     (optional)

Checks: the ID token is this pool's (signature, ``iss``, ``token_use`` id, unexpired, its sign-in
not revoked) and its ``aud`` is the authenticated client (§4.1); the audience is allowed by
``--id-jag-audience`` (none given: any absolute URL); ``resource`` is one absolute URI without a
fragment; no ``actor_token`` (SEP-990 does not use it). Errors as RFC 6749 §5.2 / RFC 8693 §2.2.2:
``invalid_request``, ``invalid_grant`` (the ID token), ``invalid_target`` (audience, resource).

Response (RFC 8693 §2.2.1): ``access_token`` = the ID-JAG, ``issued_token_type`` id-jag,
``token_type`` ``N_A``, ``expires_in``, ``scope`` when one was asked; no refresh token. The ID-JAG
is RS256, signed with the ID-token key (published in this pool's JWKS), header ``typ``
``oauth-id-jag+jwt``; claims ``iss, sub, aud, client_id, jti, exp, iat, resource``, ``scope`` when
asked, ``auth_time`` and ``email`` when known. ``client_id`` is the client's id at the audience:
the mapping given with ``--id-jag-audience ISSUER=CLIENT_ID``, else the requesting client's id.
"""

from __future__ import annotations

import logging
import math
import uuid
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

from authlib.oauth2.rfc6749 import (
    BaseGrant,
    InvalidGrantError,
    InvalidRequestError,
    TokenEndpointMixin,
)
from joserfc import jwt
from joserfc.errors import JoseError

from demo_server.idp.errors import InvalidTargetError
from demo_server.idp.extension_settings import EnterpriseSettings, IdJagAudience
from demo_server.idp.models import Client, User

if TYPE_CHECKING:
    from demo_server.idp.authorization_server import IdpAuthorizationServer

logger = logging.getLogger(__name__)

# URNs of RFC 8693 §3 and the draft, not secrets
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"  # noqa: S105
ID_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token"  # noqa: S105
ID_JAG_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id-jag"  # noqa: S105
ID_JAG_TYP = "oauth-id-jag+jwt"
SIGNING_ALGORITHM = "RS256"


def metadata(settings: EnterpriseSettings) -> dict[str, Any]:
    """Discovery members (draft §"IdP Authorization Server Metadata")."""
    if not settings.issue_id_jags:
        return {}
    return {"identity_chaining_requested_token_types_supported": [ID_JAG_TOKEN_TYPE]}


def single(datalist: Any, name: str, required: bool = True) -> str | None:
    """One value of a request parameter; several, or a required one missing → invalid_request."""
    values = [v for v in datalist.get(name, []) if v]
    if len(values) > 1:
        raise InvalidRequestError(f"'{name}' must be sent once.")
    if not values:
        if required:
            raise InvalidRequestError(f"'{name}' is required.")
        return None
    return str(values[0])


def is_absolute_uri(value: str) -> bool:
    """An absolute URI without a fragment (RFC 8707 §2)."""
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme in ("https", "http") and bool(parts.netloc) and "#" not in value


def allowed_audience(settings: EnterpriseSettings, audience: str) -> IdJagAudience:
    """The configured target for ``audience``; any absolute URL when none is configured."""
    for target in settings.audiences:
        if target.issuer == audience:
            return target
    if not settings.audiences and is_absolute_uri(audience):
        return IdJagAudience(audience)
    raise InvalidTargetError("This IdP issues no ID-JAG for that audience.")


class TokenExchangeGrant(BaseGrant, TokenEndpointMixin):  # type: ignore[misc]
    """RFC 8693 token exchange: this pool's ID token → an ID-JAG for another authorization
    server."""

    GRANT_TYPE = TOKEN_EXCHANGE
    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = [
        "client_secret_basic",
        "client_secret_post",
        "none",
    ]

    @property
    def idp(self) -> IdpAuthorizationServer:
        server: IdpAuthorizationServer = self.server
        return server

    def validate_token_request(self) -> None:
        client: Client = self.authenticate_token_endpoint_client()
        self.request.client = client
        data = self.request.payload.datalist
        if single(data, "requested_token_type") != ID_JAG_TOKEN_TYPE:
            raise InvalidRequestError(f"'requested_token_type' must be {ID_JAG_TOKEN_TYPE}.")
        if single(data, "subject_token_type") != ID_TOKEN_TYPE:
            raise InvalidRequestError(f"'subject_token_type' must be {ID_TOKEN_TYPE}.")
        if single(data, "actor_token", required=False) is not None:
            raise InvalidRequestError("'actor_token' is not supported.")
        subject_token = single(data, "subject_token") or ""
        target = allowed_audience(self.idp.settings.enterprise, single(data, "audience") or "")
        resource = single(data, "resource") or ""
        if not is_absolute_uri(resource):
            raise InvalidTargetError("'resource' must be an absolute URI without a fragment.")
        claims = self.verified_id_token(subject_token)
        if claims.get("aud") != client.client_id:
            raise InvalidGrantError("The ID token was not issued to this client.")
        user = self.idp.users.get(str(claims.get("cognito:username")))
        if user is None:
            raise InvalidGrantError("The ID token's user does not exist.")
        self.request.user = user
        self.exchange = (target, resource, single(data, "scope", required=False), claims)

    def verified_id_token(self, token: str) -> dict[str, Any]:
        """Claims of a current ID token of this pool whose sign-in is not revoked (§4.1)."""
        keys = self.idp.settings.keys
        assert keys is not None
        try:
            claims = dict(jwt.decode(token, keys.id, algorithms=[SIGNING_ALGORITHM]).claims)
        except (JoseError, ValueError, TypeError, UnicodeError) as error:
            raise InvalidGrantError("The subject token is not an ID token of this IdP.") from error
        exp = claims.get("exp")
        if claims.get("iss") != self.idp.settings.issuer or claims.get("token_use") != "id":
            raise InvalidGrantError("The subject token is not an ID token of this IdP.")
        if not isinstance(exp, int) or exp <= self.idp.clock():
            raise InvalidGrantError("The ID token has expired.")
        if self.idp.store.is_origin_revoked(str(claims.get("origin_jti"))):
            raise InvalidGrantError("The sign-in of this ID token was revoked.")
        return claims

    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        target, resource, scope, id_claims = self.exchange
        user: User = self.request.user
        client_id = target.client_id or self.request.client.client_id
        ttl = self.idp.settings.enterprise.id_jag_ttl
        claims = id_jag_claims(self.idp, user, target.issuer, client_id, resource, scope)
        if isinstance(id_claims.get("auth_time"), int):
            claims["auth_time"] = id_claims["auth_time"]
        grant = self.sign(claims)
        logger.info(
            "issued an ID-JAG for %s to %s (resource %s)", user.username, target.issuer, resource
        )
        body: dict[str, Any] = {
            "access_token": grant,
            "issued_token_type": ID_JAG_TOKEN_TYPE,
            "token_type": "N_A",
            "expires_in": ttl,
        }
        if scope:
            body["scope"] = scope
        return 200, body, self.TOKEN_RESPONSE_HEADER

    def sign(self, claims: dict[str, Any]) -> str:
        keys = self.idp.settings.keys
        assert keys is not None
        header = {"typ": ID_JAG_TYP, "alg": SIGNING_ALGORITHM, "kid": keys.id.kid}
        return jwt.encode(
            header, claims, keys.id, algorithms=[SIGNING_ALGORITHM], default_type=None
        )


def id_jag_claims(
    idp: IdpAuthorizationServer,
    user: User,
    audience: str,
    client_id: str,
    resource: str,
    scope: str | None,
) -> dict[str, Any]:
    """The ID-JAG's claims (draft §3 "ID-JAG Claims", SEP-990 §4.3)."""
    now = math.floor(idp.clock())
    claims: dict[str, Any] = {
        "iss": idp.settings.issuer,
        "sub": user.sub,
        "aud": audience,
        "client_id": client_id,
        "jti": str(uuid.uuid4()),
        "exp": now + idp.settings.enterprise.id_jag_ttl,
        "iat": now,
        "resource": resource,
    }
    if scope:
        claims["scope"] = scope
    if user.email:
        claims["email"] = user.email
    return claims
