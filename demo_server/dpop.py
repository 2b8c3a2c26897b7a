"""DPoP proof checking (RFC 9449 §4.3), shared by the local authorization server's token endpoint
and the demo MCP server. No I/O: callers pass the header values, the request's method and URI,
the clock, the replay cache and the nonce source.

A proof is accepted only when: exactly one ``DPoP`` header; a compact JWS with ``typ`` ``dpop+jwt``
and ``alg`` ES256 (the one algorithm advertised, never ``none`` or a MAC); a public ``jwk`` header
(no private part) that verifies the signature; ``jti``, ``htm``, ``htu`` and ``iat`` present;
``htm`` = the method; ``htu`` = the request URI without query and fragment (after RFC 3986 §6.2.2
and §6.2.3 normalisation; a ``htu`` that carries a query or fragment is malformed, §4.2); ``iat``
within the window; ``nonce`` = a current server nonce when one is demanded (§8, §9); ``ath`` = the
SHA-256 of the access token when one is presented (§4.3 item 11, §7); and a ``jti`` not seen before
within the window (§11.1). Failures raise ``InvalidDpopProof`` (wire code ``invalid_dpop_proof``)
or ``UseDpopNonce`` (``use_dpop_nonce``); the message says why and never contains the proof.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey

DPOP_ALGORITHMS = ("ES256",)
PROOF_TYPE = "dpop+jwt"
MAX_PROOF_LENGTH = 8 * 1024
MAX_AGE = 300  # seconds a proof is accepted after its iat (and its jti remembered)
MAX_FUTURE = 60  # seconds a proof's iat may be ahead of our clock
REPLAY_CACHE_SIZE = 100_000
NONCE_LIFETIME = 300
DEFAULT_PORTS = {"http": 80, "https": 443}


class DpopError(Exception):
    """A DPoP proof is refused; ``error`` is the RFC 9449 wire code."""

    error = "invalid_dpop_proof"


class InvalidDpopProof(DpopError):
    """RFC 9449 §5.1 / §7.1 ``invalid_dpop_proof``."""


class UseDpopNonce(DpopError):
    """RFC 9449 §8 / §9 ``use_dpop_nonce``: retry with the nonce sent in ``DPoP-Nonce``."""

    error = "use_dpop_nonce"


@dataclass(frozen=True)
class VerifiedProof:
    """What a valid proof tells: the key's RFC 7638 thumbprint (``cnf.jkt``) and its ``jti``."""

    jkt: str
    jti: str


def access_token_hash(access_token: str) -> str:
    """``ath``: base64url SHA-256 of the ASCII access token (RFC 9449 §4.2)."""
    digest = hashlib.sha256(access_token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def normalized_uri(uri: str) -> str:
    """Scheme and host lower-cased, default port dropped, empty path as ``/`` (RFC 3986 §6.2)."""
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    netloc = host if port is None or port == DEFAULT_PORTS.get(scheme) else f"{host}:{port}"
    return f"{scheme}://{netloc}{parts.path or '/'}"


class ReplayCache:
    """``jti`` values seen within the acceptance window, thread-safe and bounded (RFC 9449 §11.1).

    When full of still-live entries it refuses new proofs (fails closed) rather than forgetting
    one that could then be replayed.
    """

    def __init__(self, clock: Callable[[], float], size: int = REPLAY_CACHE_SIZE) -> None:
        self._clock = clock
        self._size = size
        self._lock = threading.Lock()
        self._seen: OrderedDict[str, float] = OrderedDict()

    def first_use(self, key: str, until: float) -> bool:
        """Record ``key`` until ``until``; False when it was already recorded (a replay)."""
        with self._lock:
            now = self._clock()
            while self._seen and next(iter(self._seen.values())) <= now:
                self._seen.popitem(last=False)
            if key in self._seen or len(self._seen) >= self._size:
                return False
            self._seen[key] = until
            return True


class NonceSource:
    """Server nonces (RFC 9449 §8, §9): an HMAC of the current time slot, valid for this slot and
    the previous one, so nothing is stored and a nonce lives between one and two slots."""

    def __init__(self, clock: Callable[[], float], lifetime: int = NONCE_LIFETIME) -> None:
        self._clock = clock
        self._lifetime = lifetime
        self._secret = secrets.token_bytes(32)

    def current(self) -> str:
        return self._for_slot(int(self._clock() // self._lifetime))

    def is_valid(self, nonce: object) -> bool:
        if not isinstance(nonce, str):
            return False
        slot = int(self._clock() // self._lifetime)
        return any(
            hmac.compare_digest(nonce.encode(), self._for_slot(s).encode())
            for s in (slot, slot - 1)
        )

    def _for_slot(self, slot: int) -> str:
        mac = hmac.new(self._secret, str(slot).encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac[:24]).decode("ascii")


@dataclass(frozen=True)
class ProofChecker:
    """Everything a proof is judged against except the request itself."""

    clock: Callable[[], float]
    replay: ReplayCache
    nonces: NonceSource | None = None

    def verify(
        self,
        headers: Sequence[str],
        method: str,
        uri: str,
        access_token: str | None = None,
    ) -> VerifiedProof:
        """The proof of one request (``headers``: every ``DPoP`` header value it carried)."""
        if len(headers) != 1:
            raise InvalidDpopProof("Exactly one DPoP header is required.")
        _, claims, key = decode_proof(headers[0])
        check_claims(claims, method, uri, self.clock())
        if access_token is not None and not _equal(
            claims.get("ath"), access_token_hash(access_token)
        ):
            raise InvalidDpopProof("The proof's ath does not match the access token.")
        if self.nonces is not None and not self.nonces.is_valid(claims.get("nonce")):
            raise UseDpopNonce("A DPoP nonce from the DPoP-Nonce header is required.")
        jkt = key.thumbprint()
        if not self.replay.first_use(f"{jkt}:{claims['jti']}", claims["iat"] + MAX_AGE):
            raise InvalidDpopProof("This DPoP proof has been used before.")
        return VerifiedProof(jkt=jkt, jti=str(claims["jti"]))


def decode_proof(proof: str) -> tuple[dict[str, Any], dict[str, Any], ECKey]:
    """Header, claims and the embedded public key of a validly signed proof (§4.3 items 2-7)."""
    if len(proof) > MAX_PROOF_LENGTH:
        raise InvalidDpopProof("The DPoP proof is too long.")
    try:
        header = dict(jws.extract_compact(proof.encode("ascii")).headers())
    except (JoseError, ValueError, UnicodeError) as error:
        raise InvalidDpopProof("The DPoP proof is not a compact JWS.") from error
    if str(header.get("typ", "")).lower() != PROOF_TYPE:
        raise InvalidDpopProof("The DPoP proof's typ must be dpop+jwt.")
    if header.get("alg") not in DPOP_ALGORITHMS:
        raise InvalidDpopProof("The DPoP proof's alg must be ES256.")
    jwk = header.get("jwk")
    if not isinstance(jwk, dict) or "d" in jwk:
        raise InvalidDpopProof("The DPoP proof must carry a public jwk.")
    try:
        key = ECKey.import_key(jwk)
        claims = dict(jwt.decode(proof, key, algorithms=list(DPOP_ALGORITHMS)).claims)
    except (JoseError, ValueError, TypeError) as error:
        raise InvalidDpopProof("The DPoP proof's signature does not verify.") from error
    if key.is_private:
        raise InvalidDpopProof("The DPoP proof must carry a public jwk.")
    return header, claims, key


def check_claims(claims: dict[str, Any], method: str, uri: str, now: float) -> None:
    """``jti``, ``htm``, ``htu`` and ``iat`` (§4.2, §4.3 items 8-12)."""
    jti, htm, htu, iat = (claims.get(name) for name in ("jti", "htm", "htu", "iat"))
    if not isinstance(jti, str) or not jti or len(jti) > 256:
        raise InvalidDpopProof("The DPoP proof needs a jti.")
    if htm != method:
        raise InvalidDpopProof("The DPoP proof's htm does not match the request method.")
    if not isinstance(htu, str) or "?" in htu or "#" in htu:
        raise InvalidDpopProof("The DPoP proof's htu must be a URI without query or fragment.")
    try:
        same_uri = normalized_uri(htu) == normalized_uri(uri)
    except ValueError:
        same_uri = False
    if not same_uri:
        raise InvalidDpopProof("The DPoP proof's htu does not match the request URI.")
    if isinstance(iat, bool) or not isinstance(iat, int | float):
        raise InvalidDpopProof("The DPoP proof needs a numeric iat.")
    if not now - MAX_AGE <= iat <= now + MAX_FUTURE:
        raise InvalidDpopProof("The DPoP proof's iat is outside the accepted window.")


def _equal(value: object, expected: str) -> bool:
    return isinstance(value, str) and hmac.compare_digest(value.encode(), expected.encode())
