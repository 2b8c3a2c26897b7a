"""DPoP proof checking (RFC 9449 §4.3) in demo_server/dpop.py, one defect per refused proof, with
proofs from a real ES256 key (tests/support/enterprise_client.py)."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import OctKey, RSAKey

from demo_server.dpop import (
    InvalidDpopProof,
    NonceSource,
    ProofChecker,
    ReplayCache,
    UseDpopNonce,
    normalized_uri,
)
from tests.support.enterprise_client import DpopKey, ath

URL = "http://127.0.0.1:9000/oauth2/token"


class Clock:
    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def key() -> DpopKey:
    return DpopKey()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def checker(clock: Clock) -> ProofChecker:
    return ProofChecker(clock, ReplayCache(clock))


def proof_at(key: DpopKey, clock: Clock, **overrides: Any) -> str:
    overrides.setdefault("iat", int(clock.now))
    return key.proof("POST", URL, **overrides)


def test_a_good_proof_yields_the_keys_thumbprint(
    key: DpopKey, clock: Clock, checker: ProofChecker
) -> None:
    verified = checker.verify([proof_at(key, clock)], "POST", URL)
    assert verified.jkt == key.jkt
    assert len(verified.jkt) == 43  # base64url SHA-256, RFC 7638


def test_a_replayed_proof_is_refused(key: DpopKey, clock: Clock, checker: ProofChecker) -> None:
    proof = proof_at(key, clock)
    checker.verify([proof], "POST", URL)
    with pytest.raises(InvalidDpopProof, match="used before"):
        checker.verify([proof], "POST", URL)


def test_a_jti_is_forgotten_only_after_the_window(
    key: DpopKey, clock: Clock, checker: ProofChecker
) -> None:
    proof = proof_at(key, clock)
    checker.verify([proof], "POST", URL)
    clock.now += 301  # the proof is now too old anyway: refused for its iat, not accepted
    with pytest.raises(InvalidDpopProof, match="iat"):
        checker.verify([proof], "POST", URL)


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"htm": "GET"}, "htm"),
        ({"htu": "http://127.0.0.1:9000/oauth2/other"}, "htu"),
        ({"htu": "http://127.0.0.1:9001/oauth2/token"}, "htu"),
        ({"htu": URL + "?a=b"}, "htu"),
        ({"htu": URL + "#f"}, "htu"),
        ({"jti": None}, "jti"),
        ({"htm": None}, "htm"),
        ({"htu": None}, "htu"),
        ({"iat": None}, "iat"),
        ({"iat": "now"}, "iat"),
        ({"header_typ": "JWT"}, "typ"),
        ({"header_typ": None}, "typ"),
        ({"header_jwk": None}, "jwk"),
    ],
)
def test_a_proof_with_one_defect_is_refused(
    key: DpopKey, clock: Clock, checker: ProofChecker, overrides: dict[str, Any], reason: str
) -> None:
    with pytest.raises(InvalidDpopProof, match=reason):
        checker.verify([proof_at(key, clock, **overrides)], "POST", URL)


@pytest.mark.parametrize("age", [-61, 301])
def test_a_proof_outside_the_iat_window_is_refused(
    key: DpopKey, clock: Clock, checker: ProofChecker, age: int
) -> None:
    with pytest.raises(InvalidDpopProof, match="iat"):
        checker.verify([proof_at(key, clock, iat=int(clock.now) - age)], "POST", URL)


def test_the_window_edges_are_accepted(key: DpopKey, clock: Clock, checker: ProofChecker) -> None:
    for age in (-60, 300):
        checker.verify([proof_at(key, clock, iat=int(clock.now) - age)], "POST", URL)


def test_a_proof_with_the_private_key_embedded_is_refused(
    key: DpopKey, clock: Clock, checker: ProofChecker
) -> None:
    private = dict(key.key.as_dict(private=True))
    with pytest.raises(InvalidDpopProof, match="public jwk"):
        checker.verify([proof_at(key, clock, header_jwk=private)], "POST", URL)


def test_a_proof_signed_by_another_key_than_its_jwk_is_refused(
    key: DpopKey, clock: Clock, checker: ProofChecker
) -> None:
    other = DpopKey()
    forged = proof_at(other, clock, header_jwk=key.public_jwk())
    with pytest.raises(InvalidDpopProof, match="signature"):
        checker.verify([forged], "POST", URL)


def test_a_tampered_proof_is_refused(key: DpopKey, clock: Clock, checker: ProofChecker) -> None:
    header, payload, signature = proof_at(key, clock).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["htu"] = "http://127.0.0.1:9000/elsewhere"
    swapped = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(InvalidDpopProof, match="signature"):
        checker.verify([f"{header}.{swapped}.{signature}"], "POST", URL)


def test_symmetric_rsa_and_unsigned_proofs_are_refused(
    key: DpopKey, clock: Clock, checker: ProofChecker
) -> None:
    claims = {"jti": "j1", "htm": "POST", "htu": URL, "iat": int(clock.now)}
    secret = OctKey.generate_key(256)
    hs = jwt.encode({"typ": "dpop+jwt", "alg": "HS256", "jwk": key.public_jwk()}, claims, secret)
    rsa = RSAKey.generate_key(2048)
    rs_header = {"typ": "dpop+jwt", "alg": "RS256", "jwk": rsa.as_dict(private=False)}
    rs = jwt.encode(rs_header, claims, rsa, algorithms=["RS256"])
    none_header = {"typ": "dpop+jwt", "alg": "none", "jwk": key.public_jwk()}
    unsigned = (
        ".".join(
            base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=").decode()
            for part in (none_header, claims)
        )
        + "."
    )
    for proof in (hs, rs, unsigned):
        with pytest.raises(InvalidDpopProof, match=r"alg|compact JWS"):
            checker.verify([proof], "POST", URL)


def test_exactly_one_dpop_header_is_required(
    key: DpopKey, clock: Clock, checker: ProofChecker
) -> None:
    for headers in ([], [proof_at(key, clock), proof_at(key, clock)]):
        with pytest.raises(InvalidDpopProof, match="one DPoP header"):
            checker.verify(headers, "POST", URL)


def test_garbage_is_refused_without_echoing_it(clock: Clock, checker: ProofChecker) -> None:
    with pytest.raises(InvalidDpopProof) as caught:
        checker.verify(["canary-not-a-jws-7d1f"], "POST", URL)
    assert "canary" not in str(caught.value)


def test_ath_must_be_the_hash_of_the_presented_token(
    key: DpopKey, clock: Clock, checker: ProofChecker
) -> None:
    good = proof_at(key, clock, access_token="token-A")
    assert checker.verify([good], "POST", URL, access_token="token-A").jkt == key.jkt
    for proof in (proof_at(key, clock, access_token="token-B"), proof_at(key, clock)):
        with pytest.raises(InvalidDpopProof, match="ath"):
            checker.verify([proof], "POST", URL, access_token="token-A")
    assert json.loads(base64.urlsafe_b64decode(good.split(".")[1] + "=="))["ath"] == ath("token-A")


def test_a_nonce_is_demanded_and_then_accepted(key: DpopKey, clock: Clock) -> None:
    nonces = NonceSource(clock, lifetime=300)
    checker = ProofChecker(clock, ReplayCache(clock), nonces)
    with pytest.raises(UseDpopNonce):
        checker.verify([proof_at(key, clock)], "POST", URL)
    with pytest.raises(UseDpopNonce):
        checker.verify([proof_at(key, clock, nonce="made-up")], "POST", URL)
    nonce = nonces.current()
    checker.verify([proof_at(key, clock, nonce=nonce)], "POST", URL)
    clock.now += 300  # still valid in the next slot
    checker.verify([proof_at(key, clock, nonce=nonce)], "POST", URL)
    clock.now += 300  # not in the one after
    with pytest.raises(UseDpopNonce):
        checker.verify([proof_at(key, clock, nonce=nonce)], "POST", URL)


def test_a_nonce_challenged_proof_is_not_burnt(key: DpopKey, clock: Clock) -> None:
    """The replay cache records only proofs that passed every other check."""
    nonces = NonceSource(clock)
    checker = ProofChecker(clock, ReplayCache(clock), nonces)
    with pytest.raises(UseDpopNonce):
        checker.verify([proof_at(key, clock, jti="same")], "POST", URL)
    checker.verify([proof_at(key, clock, jti="same", nonce=nonces.current())], "POST", URL)


def test_the_replay_cache_fails_closed_when_full(clock: Clock) -> None:
    cache = ReplayCache(clock, size=2)
    assert cache.first_use("a", clock.now + 10) and cache.first_use("b", clock.now + 10)
    assert not cache.first_use("c", clock.now + 10)
    clock.now += 11
    assert cache.first_use("c", clock.now + 10)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("HTTP://LocalHost:80/mcp", "http://localhost/mcp"),
        ("https://example.com:443", "https://EXAMPLE.com/"),
    ],
)
def test_uris_are_compared_after_normalisation(a: str, b: str) -> None:
    assert normalized_uri(a) == normalized_uri(b)
