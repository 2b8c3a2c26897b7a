"""DPoP proofs (RFC 9449 §4) and the judging of nonce answers (§8, §9), as pure functions.

Every proof is also checked by the demo server's own verifier (``demo_server/dpop.py``, an
independent implementation of §4.3), so a proof the broker makes is one a real server accepts.
"""

from __future__ import annotations

import base64
import hashlib
import json

import httpx2
import pytest
from joserfc import jws, jwt
from joserfc.jwk import ECKey

from broker.oauth import dpop
from broker.oauth.as_metadata import AuthServer
from broker.oauth.providers import GENERIC
from broker.oauth.www_authenticate import parse_bearer_challenge
from demo_server.dpop import InvalidDpopProof, ProofChecker, ReplayCache

NOW = 1_800_000_000.0
TOKEN = "CANARY-dpop-access-token"
URL = "https://mcp.example/mcp"


def decoded(proof: str) -> tuple[dict[str, object], dict[str, object]]:
    """Header and claims, the signature verified with the public key the header carries."""
    header = dict(jws.extract_compact(proof.encode()).headers())
    public = ECKey.import_key(header["jwk"])  # type: ignore[arg-type]
    claims = dict(jwt.decode(proof, public, algorithms=["ES256"]).claims)
    return header, claims


def checker(now: float = NOW) -> ProofChecker:
    return ProofChecker(lambda: now, ReplayCache(lambda: now))


def test_a_proof_has_the_header_and_claims_of_rfc9449_and_verifies_with_its_public_jwk() -> None:
    key = dpop.new_key()
    proof = dpop.build_proof(key, "post", URL, NOW)
    header, claims = decoded(proof)
    assert header["typ"] == "dpop+jwt" and header["alg"] == "ES256"
    assert header["jwk"] == dpop.public_jwk(key)
    assert set(header["jwk"]) == {"kty", "crv", "x", "y"}  # type: ignore[arg-type]
    assert set(claims) == {"jti", "htm", "htu", "iat"}
    assert claims["htm"] == "POST" and claims["htu"] == URL and claims["iat"] == int(NOW)
    assert len(str(claims["jti"])) >= 32
    verified = checker().verify([proof], "POST", URL)
    assert verified.jkt == dpop.thumbprint(key)


def test_a_proof_never_carries_the_private_key() -> None:
    key = dpop.new_key()
    private_d = key.as_dict(private=True)["d"]
    proof = dpop.build_proof(key, "GET", URL, NOW, access_token=TOKEN, nonce="n-1")
    header, _ = decoded(proof)
    assert "d" not in header["jwk"]  # type: ignore[operator]
    assert str(private_d) not in proof
    for part in proof.split(".")[:2]:
        assert str(private_d) not in base64.urlsafe_b64decode(part + "==").decode()


def test_every_proof_has_a_new_jti() -> None:
    key = dpop.new_key()
    jtis = {decoded(dpop.build_proof(key, "POST", URL, NOW))[1]["jti"] for _ in range(20)}
    assert len(jtis) == 20


def test_ath_is_the_base64url_sha256_of_the_access_token() -> None:
    key = dpop.new_key()
    _, claims = decoded(dpop.build_proof(key, "POST", URL, NOW, access_token=TOKEN))
    expected = base64.urlsafe_b64encode(hashlib.sha256(TOKEN.encode()).digest()).rstrip(b"=")
    assert claims["ath"] == expected.decode()
    assert dpop.access_token_hash(TOKEN) == expected.decode()
    # The demo server binds the proof to the token it came with.
    proof = dpop.build_proof(key, "POST", URL, NOW, access_token=TOKEN)
    checker().verify([proof], "POST", URL, TOKEN)
    with pytest.raises(InvalidDpopProof, match="ath"):
        checker().verify([proof], "POST", URL, TOKEN + "x")


def test_the_nonce_is_sent_only_when_given() -> None:
    key = dpop.new_key()
    assert "nonce" not in decoded(dpop.build_proof(key, "POST", URL, NOW))[1]
    assert decoded(dpop.build_proof(key, "POST", URL, NOW, nonce="abc"))[1]["nonce"] == "abc"


@pytest.mark.parametrize(
    ("url", "htu"),
    [
        ("https://mcp.example/mcp?session=1", "https://mcp.example/mcp"),
        ("https://mcp.example/mcp#frag", "https://mcp.example/mcp"),
        ("https://mcp.example/mcp?a=1#b", "https://mcp.example/mcp"),
        ("https://mcp.example", "https://mcp.example/"),
        ("http://127.0.0.1:8000/t/oauth2/token", "http://127.0.0.1:8000/t/oauth2/token"),
    ],
)
def test_htu_is_the_uri_without_query_and_fragment(url: str, htu: str) -> None:
    assert dpop.htu(url) == htu
    proof = dpop.build_proof(dpop.new_key(), "POST", url, NOW)
    assert decoded(proof)[1]["htu"] == htu
    checker().verify([proof], "POST", url)  # the server compares with its own request URI


def test_a_proof_for_one_url_is_refused_for_another() -> None:
    proof = dpop.build_proof(dpop.new_key(), "POST", URL, NOW)
    with pytest.raises(InvalidDpopProof, match="htu"):
        checker().verify([proof], "POST", "https://other.example/mcp")
    with pytest.raises(InvalidDpopProof, match="htm"):
        checker().verify([proof], "GET", URL)


def test_the_key_round_trips_as_text_and_a_public_or_broken_key_is_refused() -> None:
    key = dpop.new_key()
    again = dpop.key_from_text(dpop.key_to_text(key))
    assert dpop.thumbprint(again) == dpop.thumbprint(key) and again.is_private
    public_only = json.dumps(dpop.public_jwk(key))
    for text in (public_only, "not json", "{}", json.dumps({"kty": "oct", "k": "AAAA"})):
        with pytest.raises(ValueError) as caught:
            dpop.key_from_text(text)
        assert text not in str(caught.value)


def auth_server(algs: tuple[str, ...] | None) -> AuthServer:
    return AuthServer(
        "https://as.example",
        "https://as.example/a",
        "https://as.example/t",
        GENERIC,
        dpop_signing_alg_values_supported=algs,
    )


def test_dpop_is_used_when_the_authorization_server_lists_es256() -> None:
    assert dpop.supports_dpop(auth_server(("RS256", "ES256")))
    assert not dpop.supports_dpop(auth_server(("RS256",)))
    assert not dpop.supports_dpop(auth_server(()))
    assert not dpop.supports_dpop(auth_server(None))


def response(status: int, body: object = None, **headers: str) -> httpx2.Response:
    content = json.dumps(body).encode() if body is not None else b""
    return httpx2.Response(status, content=content, headers=headers)


def test_the_token_endpoints_use_dpop_nonce_answer_is_a_nonce_challenge() -> None:
    challenge = response(400, {"error": "use_dpop_nonce"}, **{"DPoP-Nonce": "n-1"})
    assert dpop.is_nonce_challenge(challenge)
    assert dpop.answered_nonce(challenge) == "n-1"
    # Another error, or no nonce to retry with: not a challenge.
    assert not dpop.is_nonce_challenge(
        response(400, {"error": "invalid_grant"}, **{"DPoP-Nonce": "n"})
    )
    assert not dpop.is_nonce_challenge(response(400, {"error": "use_dpop_nonce"}))
    assert not dpop.is_nonce_challenge(
        response(200, {"error": "use_dpop_nonce"}, **{"DPoP-Nonce": "n"})
    )


def test_the_resource_servers_use_dpop_nonce_401_is_a_nonce_challenge() -> None:
    header = 'DPoP error="use_dpop_nonce", error_description="x", algs="ES256"'
    challenge = response(401, None, **{"WWW-Authenticate": header, "DPoP-Nonce": "rs-1"})
    assert dpop.is_nonce_challenge(challenge)
    invalid = 'DPoP error="invalid_token"'
    assert not dpop.is_nonce_challenge(
        response(401, None, **{"WWW-Authenticate": invalid, "DPoP-Nonce": "rs-1"})
    )
    bearer = 'Bearer error="use_dpop_nonce"'  # only a DPoP challenge names it (§9)
    assert not dpop.is_nonce_challenge(
        response(401, None, **{"WWW-Authenticate": bearer, "DPoP-Nonce": "rs-1"})
    )


@pytest.mark.parametrize("bad", ['a"b', "a\\b", "with space", "x" * 600, ""])
def test_a_malformed_nonce_is_not_taken(bad: str) -> None:
    assert dpop.answered_nonce(response(200, {}, **{"DPoP-Nonce": bad})) is None


def test_a_dpop_only_challenge_still_names_the_metadata_and_scope() -> None:
    header = (
        'DPoP algs="ES256", resource_metadata="https://mcp.example/.well-known/prm", scope="a b"'
    )
    challenge = parse_bearer_challenge([header])
    assert challenge is not None
    assert challenge.resource_metadata == "https://mcp.example/.well-known/prm"
    assert challenge.scope == "a b"
    both = ['DPoP algs="ES256", scope="d"', 'Bearer scope="b"']
    assert parse_bearer_challenge(both).scope == "b"  # type: ignore[union-attr]
