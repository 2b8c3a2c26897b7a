"""Assertion grants: the Identity Assertion JWT Authorization Grant (ID-JAG) of enterprise-managed
authorization, and workload identity federation. No I/O: requests are built and responses judged
here; :mod:`broker.tokens.enterprise` and :mod:`broker.tokens.workload` send them.

Enterprise-managed authorization (MCP extension SEP-990,
draft-ietf-oauth-identity-assertion-authz-grant) is two steps:

1. **Token exchange at the organisation's IdP** (RFC 8693 §2.1): the user's ID token (from one
   OIDC sign-in at the IdP) for an ID-JAG naming one MCP server::

       grant_type=urn:ietf:params:oauth:grant-type:token-exchange
       requested_token_type=urn:ietf:params:oauth:token-type:id-jag
       subject_token=<ID token>  subject_token_type=urn:ietf:params:oauth:token-type:id_token
       audience=<issuer of the MCP server's authorization server>
       resource=<the MCP server>   scope=<optional>

   The answer (RFC 8693 §2.2.1) carries the ID-JAG in ``access_token`` with ``issued_token_type``
   id-jag and ``token_type`` ``N_A`` (it is not an access token): :func:`handle_exchange_response`.
2. **JWT bearer grant at the MCP server's authorization server** (RFC 7523 §2.1)::

       grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer   assertion=<ID-JAG>
       scope=...  resource=...                                   (optional)

   with the client's authentication (the draft: confidential clients). The answer is an ordinary
   token response (RFC 6749 §5.1) without a refresh token: the next access token needs a new
   ID-JAG (each one is single-use).

Workload identity federation (SEP-1933) is step 2 alone: the assertion is a JWT the environment
provides (a Kubernetes projected service-account token, a CI OIDC token), read from a file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import httpx2

from broker.errors import TokenRequestFailed
from broker.oauth.as_metadata import AuthServer
from broker.oauth.jwt_peek import jwt_exp
from broker.oauth.registration import ClientCredentials
from broker.oauth.token_request import token_endpoint_request, token_error

# URNs of RFC 8693 §3, RFC 7523 §2.1 and the ID-JAG draft, not secrets.
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"  # noqa: S105
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ID_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token"  # noqa: S105
ID_JAG_TYPE = "urn:ietf:params:oauth:token-type:id-jag"
#: An assertion bigger than this is not a JWT anyone issues (and is not sent on).
MAX_ASSERTION_LENGTH = 16 * 1024


@dataclass(frozen=True)
class IdJag:
    """An ID-JAG as the IdP issued it; ``repr`` never shows it."""

    assertion: str
    expires_at: float | None

    def __repr__(self) -> str:
        return f"IdJag(expires_at={self.expires_at!r})"


def build_exchange_request(
    idp: AuthServer,
    client: ClientCredentials,
    id_token: str,
    audience: str,
    resource: str,
    scope: str | None,
) -> httpx2.Request:
    """RFC 8693 §2.1 at the IdP's token endpoint: ``id_token`` for an ID-JAG for ``audience``
    (the MCP server's authorization server issuer) and ``resource`` (SEP-990: required)."""
    fields = {
        "grant_type": TOKEN_EXCHANGE,
        "requested_token_type": ID_JAG_TYPE,
        "subject_token": id_token,
        "subject_token_type": ID_TOKEN_TYPE,
        "audience": audience,
        "resource": resource,
    }
    if scope:
        fields["scope"] = scope
    return token_endpoint_request(idp, client, fields)


def handle_exchange_response(response: httpx2.Response) -> IdJag:
    """The ID-JAG of a successful exchange; :class:`TokenRequestFailed` (``InvalidGrant`` for
    an ID token the IdP no longer takes) otherwise."""
    if response.status_code != 200:
        raise token_error(response)
    try:
        body = json.loads(response.content)
    except (ValueError, RecursionError):
        body = None
    if not isinstance(body, dict):
        raise TokenRequestFailed("the IdP's token exchange answer is not a JSON object")
    issued = body.get("issued_token_type")
    if issued != ID_JAG_TYPE:
        # RFC 8693 §2.2.1: issued_token_type is required; anything else is not an ID-JAG.
        raise TokenRequestFailed("the IdP's token exchange answer is not an ID-JAG")
    assertion = body.get("access_token")
    if not isinstance(assertion, str) or not assertion or len(assertion) > MAX_ASSERTION_LENGTH:
        raise TokenRequestFailed("the IdP's token exchange answer has no usable ID-JAG")
    return IdJag(assertion, jwt_exp(assertion))


def build_jwt_bearer_request(
    server: AuthServer,
    client: ClientCredentials,
    assertion: str,
    scope: str | None,
    resource: str | None,
) -> httpx2.Request:
    """RFC 7523 §2.1 at ``server``'s token endpoint, with ``client``'s authentication (a client
    without a secret or key sends its ``client_id`` only, RFC 7523 §3.1 makes authentication
    optional). The answer is an ordinary token response
    (:func:`broker.oauth.token_request.handle_token_response`)."""
    if len(assertion) > MAX_ASSERTION_LENGTH:
        raise TokenRequestFailed("the assertion is too long to be a JWT")
    fields = {"grant_type": JWT_BEARER, "assertion": assertion}
    if scope:
        fields["scope"] = scope
    if resource:
        fields["resource"] = resource
    return token_endpoint_request(server, client, fields)


def id_token_fresh(id_token: str | None, now: float, margin: float) -> bool:
    """Whether ``id_token`` (read, not verified: the IdP judges it) is a JWT that lives at least
    ``margin`` more seconds. One without a readable ``exp`` is taken as fresh: the IdP decides."""
    if not id_token:
        return False
    exp = jwt_exp(id_token)
    return exp is None or exp - now > margin
