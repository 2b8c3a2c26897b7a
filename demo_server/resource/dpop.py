"""DPoP at the demo MCP server (RFC 9449 §7). Not Cognito behaviour: Cognito issues no bound tokens.

Always on, because a bound token that also worked as a bearer token would be bound to nothing:

- A token with ``cnf.jkt`` (§6.1) is accepted only as ``Authorization: DPoP <token>`` with one
  ``DPoP`` proof whose key has that thumbprint, ``htm`` = the method, ``htu`` = this request's URI,
  ``iat`` in the window, ``ath`` = the token's hash and a ``jti`` never seen before (replay cache).
  Sent as ``Bearer``, it is refused with 401 ``invalid_token``.
- A token without ``cnf`` is accepted only as ``Bearer`` (with ``--dpop-required``: not at all).

Options of ``serve``: ``--dpop`` adds a ``DPoP algs="ES256"`` challenge to every 401 and
``dpop_signing_alg_values_supported`` to the protected resource metadata (RFC 9728 §2);
``--dpop-required`` refuses unbound tokens and advertises ``dpop_bound_access_tokens_required``;
``--dpop-nonce`` demands a server nonce in every proof (401 ``use_dpop_nonce`` with ``DPoP-Nonce``,
§9). Proof errors are 401 with ``WWW-Authenticate: DPoP error="invalid_dpop_proof"``.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mcp.server.auth.provider import AccessToken
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse, Response

from demo_server.dpop import (
    DPOP_ALGORITHMS,
    DpopError,
    InvalidDpopProof,
    NonceSource,
    ProofChecker,
    ReplayCache,
    UseDpopNonce,
)
from demo_server.resource.challenges import BearerError, quote, www_authenticate
from demo_server.resource.settings import ResourceSettings

logger = logging.getLogger(__name__)

NONCE_HEADER = "DPoP-Nonce"


@dataclass(frozen=True)
class Presented:
    """The ``Authorization`` header's scheme (lower case) and token."""

    scheme: str
    token: str


def presented_token(conn: HTTPConnection) -> Presented | None:
    """``Bearer`` (RFC 6750 §2.1) or ``DPoP`` (RFC 9449 §7.1) credentials, else None."""
    scheme, _, token = conn.headers.get("authorization", "").partition(" ")
    scheme, token = scheme.lower(), token.strip()
    return Presented(scheme, token) if scheme in ("bearer", "dpop") and token else None


def bound_key(access: AccessToken) -> str | None:
    cnf = (access.claims or {}).get("cnf")
    jkt = cnf.get("jkt") if isinstance(cnf, dict) else None
    return jkt if isinstance(jkt, str) else None


def request_uri(conn: HTTPConnection) -> str:
    """The URI the client addressed: scheme, its Host header (allow-listed before) and the path."""
    scope = conn.scope
    path = scope.get("root_path", "") + scope["path"]
    return f"{scope['scheme']}://{conn.headers.get('host', '')}{path}"


def metadata(settings: ResourceSettings) -> dict[str, Any]:
    """RFC 9728 §2 members for DPoP."""
    doc: dict[str, Any] = {}
    if settings.dpop or settings.dpop_required:
        doc["dpop_signing_alg_values_supported"] = list(DPOP_ALGORITHMS)
    if settings.dpop_required:
        doc["dpop_bound_access_tokens_required"] = True
    return doc


class ResourceDpop:
    """Judges the credentials of one request after the token itself was validated."""

    def __init__(self, settings: ResourceSettings, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.nonces = NonceSource(clock) if settings.dpop_nonce else None
        self.checker = ProofChecker(clock, ReplayCache(clock), self.nonces)

    @property
    def advertised(self) -> bool:
        return self.settings.dpop or self.settings.dpop_required or self.settings.dpop_nonce

    def refusal(
        self, conn: HTTPConnection, presented: Presented, access: AccessToken
    ) -> Response | None:
        """None when the token may be used as presented, else the 401 to answer."""
        bound = bound_key(access)
        if presented.scheme == "bearer":
            if bound is not None:
                logger.info("refused a DPoP-bound token sent as a bearer token")
                description = "This token is DPoP-bound: send it with a DPoP proof."
                return self.challenge(BearerError.INVALID_TOKEN, description, bearer_too=True)
            if self.settings.dpop_required:
                description = "This server accepts DPoP-bound tokens only."
                return self.challenge(BearerError.INVALID_TOKEN, description)
            return None
        if bound is None:
            description = "This token is not DPoP-bound: send it as a Bearer token."
            return self.challenge(BearerError.INVALID_TOKEN, description)
        try:
            proof = self.checker.verify(
                conn.headers.getlist("dpop"),
                conn.scope["method"],
                request_uri(conn),
                presented.token,
            )
        except DpopError as error:
            logger.info("refused a DPoP request: %s (%s)", error.error, error)
            return self.challenge(error.error, str(error))
        if proof.jkt != bound:
            logger.info("refused a DPoP proof made with another key than the token's")
            return self.challenge(
                InvalidDpopProof.error, "The proof's key is not the key the token is bound to."
            )
        return None

    def challenge(self, error: str, description: str, bearer_too: bool = False) -> Response:
        """401 with a DPoP challenge naming the error; ``bearer_too`` (a Bearer request, DPoP not
        required): a Bearer ``invalid_token`` challenge first (RFC 9449 §7.2)."""
        params = {"error": error, "error_description": description}
        response = JSONResponse(params, status_code=401, headers={"Cache-Control": "no-store"})
        if bearer_too and not self.settings.dpop_required:
            bearer = {
                "error": BearerError.INVALID_TOKEN,
                "resource_metadata": self.settings.resource_metadata_url,
                "scope": self.settings.tools_scope,
            }
            response.headers.append("WWW-Authenticate", www_authenticate(bearer))
        response.headers.append("WWW-Authenticate", self.dpop_challenge(**params))
        if self.nonces is not None and error == UseDpopNonce.error:
            response.headers[NONCE_HEADER] = self.nonces.current()
        return response

    def dpop_challenge(self, **params: str) -> str:
        """``DPoP algs="ES256", ...`` (RFC 9449 §7.1) with the RFC 9728 ``resource_metadata``."""
        values = {
            "algs": " ".join(DPOP_ALGORITHMS),
            **params,
            "resource_metadata": self.settings.resource_metadata_url,
            "scope": self.settings.tools_scope,
        }
        return "DPoP " + ", ".join(f"{name}={quote(value)}" for name, value in values.items())

    def with_challenge(self, response: Response) -> Response:
        """A 401 of the bearer gate with the DPoP challenge added when DPoP is advertised."""
        if self.advertised:
            if self.settings.dpop_required:
                del response.headers["WWW-Authenticate"]
            response.headers.append("WWW-Authenticate", self.dpop_challenge())
        return response


def add_dpop_options(parser: argparse.ArgumentParser) -> None:
    """``serve`` options; bound tokens are checked without any of them."""
    add = parser.add_argument
    add(
        "--dpop",
        action="store_true",
        help='advertise DPoP (RFC 9449): a DPoP algs="ES256" challenge on 401s and '
        "dpop_signing_alg_values_supported in the resource metadata (not Cognito behaviour)",
    )
    add(
        "--dpop-required",
        action="store_true",
        help="accept DPoP-bound tokens only (dpop_bound_access_tokens_required)",
    )
    add(
        "--dpop-nonce",
        action="store_true",
        help="demand a server nonce in every DPoP proof (401 use_dpop_nonce + DPoP-Nonce)",
    )
