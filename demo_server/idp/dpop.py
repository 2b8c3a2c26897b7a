"""DPoP at the local authorization server (RFC 9449), on with ``--dpop``. Not Cognito behaviour:
Cognito issues no DPoP-bound tokens.

- Discovery advertises ``dpop_signing_alg_values_supported: ["ES256"]`` (§5.1).
- A token request may carry one ``DPoP`` proof (§5); it is checked (``htm`` POST, ``htu`` the
  token endpoint, ``iat`` window, ``jti`` replay, signature; no ``ath`` here) before the grant
  runs, and a bad one is refused with 400 ``invalid_dpop_proof``. With ``--dpop-nonce`` a proof
  without a current server nonce gets 400 ``use_dpop_nonce`` and a ``DPoP-Nonce`` header (§8);
  every token response then carries a fresh ``DPoP-Nonce``.
- The access tokens issued for a request with a proof are bound to its key: ``cnf.jkt`` (§6.1)
  and ``token_type: DPoP`` (§5). A refresh token issued to a public client is bound to the key
  too and refused (``invalid_grant``) with a proof of any other key or none (§5); a confidential
  client's is not (it is sender-constrained by the client's credentials).
- A request without a proof gets Bearer tokens, as before.
- ``/oauth2/userInfo`` accepts a bound token only as ``Authorization: DPoP`` with a proof for it
  (§7) and refuses it as ``Bearer``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from flask import Response, g, has_request_context, jsonify, request

from demo_server.dpop import (
    DPOP_ALGORITHMS,
    DpopError,
    NonceSource,
    ProofChecker,
    ReplayCache,
)
from demo_server.idp.extension_settings import DpopSettings

logger = logging.getLogger(__name__)

NONCE_HEADER = "DPoP-Nonce"
_JKT = "dpop_jkt"


def metadata(settings: DpopSettings) -> dict[str, Any]:
    """The discovery members for DPoP (RFC 9449 §5.1)."""
    return {"dpop_signing_alg_values_supported": list(DPOP_ALGORITHMS)} if settings.enabled else {}


def current_jkt() -> str | None:
    """The thumbprint of the key the current token request proved, if it carried a proof."""
    if not has_request_context():
        return None
    value = g.get(_JKT)
    return value if isinstance(value, str) else None


def confirmation(claims: dict[str, Any]) -> str | None:
    """A token's ``cnf.jkt`` (RFC 9449 §6.1), or None for an unbound token."""
    cnf = claims.get("cnf")
    jkt = cnf.get("jkt") if isinstance(cnf, dict) else None
    return jkt if isinstance(jkt, str) else None


class TokenEndpointDpop:
    """Checks the proof of a token request and remembers its key for the token issuer."""

    def __init__(self, settings: DpopSettings, clock: Callable[[], float]) -> None:
        self.nonces = NonceSource(clock) if settings.require_nonce else None
        self.checker = ProofChecker(clock, ReplayCache(clock), self.nonces)

    def around(self, respond: Callable[[], Response]) -> Response:
        """Run the token endpoint (``respond``) behind the proof check."""
        proofs = request.headers.getlist("DPoP")
        if proofs:
            try:
                proof = self.checker.verify(proofs, request.method, request.base_url)
            except DpopError as error:
                logger.info("token request refused: %s (%s)", error.error, error)
                return self.with_nonce(refusal(400, error))
            g.setdefault(_JKT, proof.jkt)
        return self.with_nonce(respond())

    def verify_resource_request(self, token: str) -> str | None:
        """The proved key of a protected-resource request with ``token``, else None (§7)."""
        try:
            proof = self.checker.verify(
                request.headers.getlist("DPoP"), request.method, request.base_url, token
            )
        except DpopError as error:
            logger.info("resource request refused: %s (%s)", error.error, error)
            return None
        return proof.jkt

    def with_nonce(self, response: Response) -> Response:
        if self.nonces is not None:
            response.headers[NONCE_HEADER] = self.nonces.current()
        return response


def refusal(status: int, error: DpopError) -> Response:
    response = jsonify({"error": error.error, "error_description": str(error)})
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    return response


def refresh_binding_ok(bound_jkt: str | None) -> bool:
    """Whether a refresh token bound to ``bound_jkt`` (None: unbound) may be used now (§5)."""
    return bound_jkt is None or bound_jkt == current_jkt()


def presented_claims(
    verify: Callable[[str], dict[str, Any] | None], dpop: TokenEndpointDpop | None
) -> dict[str, Any] | None:
    """Claims of the access token of a protected-resource request, else None: an unbound token
    as ``Bearer`` (RFC 6750 §2.1), a bound one only as ``DPoP`` with a proof of its key (§7.1)."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    scheme, token = scheme.lower(), token.strip()
    claims = verify(token) if token and scheme in ("bearer", "dpop") else None
    if claims is None:
        return None
    bound = confirmation(claims)
    if scheme == "bearer":
        return claims if bound is None else None
    if dpop is None or bound is None:
        return None
    return claims if dpop.verify_resource_request(token) == bound else None
