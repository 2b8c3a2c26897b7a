"""The JWT verifier on its own: profiles, JWKS discovery and the refetch rate limit.

Keys come from a real JWKS server on 127.0.0.1; tokens are forged with the test key.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import pytest
from mcp.server.auth.provider import AccessToken

from demo_server.resource import ResourceSettings
from demo_server.resource.jwks import JwksCache
from demo_server.resource.verifier import JwtTokenVerifier
from tests.support.clock import FakeClock
from tests.support.jwt_issuer import JwksServer

pytestmark = pytest.mark.integration

RESOURCE = "http://127.0.0.1:8000/mcp"


def make_verifier(
    jwks: JwksServer, clock: FakeClock | None = None, **overrides: Any
) -> JwtTokenVerifier:
    options: dict[str, Any] = {"issuer": jwks.issuer, "jwks_url": jwks.jwks_url}
    options.update(overrides)
    settings = ResourceSettings(**options)
    keys = JwksCache(
        settings.issuer,
        settings.jwks_url,
        settings.jwks_refetch_interval,
        clock=clock or time.monotonic,
    )
    return JwtTokenVerifier(settings, keys)


def verify_all(verifier: JwtTokenVerifier, tokens: Sequence[str]) -> list[AccessToken | None]:
    """Verify in one event loop, as the server does."""

    async def run() -> list[AccessToken | None]:
        return [await verifier.verify_token(token) for token in tokens]

    return asyncio.run(run())


def token(jwks: JwksServer, **overrides: Any) -> str:
    return jwks.issuer_obj.token(RESOURCE, **overrides)


def test_cognito_token_becomes_an_access_token_with_its_claims(jwks: JwksServer) -> None:
    [access] = verify_all(make_verifier(jwks), [token(jwks)])
    assert access is not None
    assert access.client_id == "demo-broker"
    assert access.scopes == [f"{RESOURCE}/tools"]
    assert access.subject == "0f1e2d3c-demo-user"
    assert access.claims is not None and access.claims["username"] == "demo"
    assert access.resource is None  # no aud: Cognito without resource binding


OIDC_CASES = {
    "aud-is-resource": ({"aud": RESOURCE}, True),
    "aud-list-with-resource": ({"aud": ["other", RESOURCE]}, True),
    "no-aud": ({}, False),
    "aud-other": ({"aud": "http://127.0.0.1:1/mcp"}, False),
    "aud-trailing-slash": ({"aud": RESOURCE + "/"}, False),
    "azp-allowlisted": ({"aud": RESOURCE, "azp": "demo-broker", "client_id": None}, True),
    "azp-not-allowlisted": ({"aud": RESOURCE, "azp": "intruder", "client_id": None}, False),
    "no-client-claims": ({"aud": RESOURCE, "client_id": None}, True),
    "no-token-use": ({"aud": RESOURCE, "token_use": None}, True),
    "wrong-iss": ({"aud": RESOURCE, "iss": "http://127.0.0.1:1/x"}, False),
    "expired": ({"aud": RESOURCE, "exp": int(time.time()) - 3600}, False),
}


@pytest.mark.parametrize("case", sorted(OIDC_CASES))
def test_oidc_profile_audience_and_client_rules(case: str, jwks: JwksServer) -> None:
    overrides, accepted = OIDC_CASES[case]
    [access] = verify_all(make_verifier(jwks, profile="oidc"), [token(jwks, **overrides)])
    assert (access is not None) is accepted


def test_oidc_profile_reads_scp_list(jwks: JwksServer) -> None:
    claims = {"aud": RESOURCE, "scope": None, "scp": [f"{RESOURCE}/tools", "x"]}
    [access] = verify_all(make_verifier(jwks, profile="oidc"), [token(jwks, **claims)])
    assert access is not None and access.scopes == [f"{RESOURCE}/tools", "x"]


def test_cognito_profile_allowlist_takes_several_clients(jwks: JwksServer) -> None:
    verifier = make_verifier(jwks, client_ids=("demo-broker", "cli"))
    results = verify_all(verifier, [token(jwks, client_id="cli"), token(jwks, client_id="cli2")])
    assert [r is not None for r in results] == [True, False]


def test_cognito_machine_token_is_accepted_by_default_by_its_client_id(jwks: JwksServer) -> None:
    """A Cognito M2M (client_credentials) access token has no aud and no username, sub = the
    app client: accepted by default by ``client_id`` (``demo-m2m`` is allowed, as by ``serve``);
    another client's machine token is still refused."""
    machine = {"client_id": "demo-m2m", "sub": "demo-m2m", "username": None}
    intruder = {"client_id": "intruder", "sub": "intruder", "username": None}
    results = verify_all(make_verifier(jwks), [token(jwks, **machine), token(jwks, **intruder)])
    assert results[0] is not None and results[0].client_id == "demo-m2m"
    assert results[1] is None


def test_clock_skew_is_configurable(jwks: JwksServer) -> None:
    late = token(jwks, exp=int(time.time()) - 30)
    assert verify_all(make_verifier(jwks, clock_skew=60), [late]) != [None]
    assert verify_all(make_verifier(jwks, clock_skew=0), [late]) == [None]


def test_jwks_url_comes_from_oidc_discovery_lazily_and_once(jwks: JwksServer) -> None:
    before = (jwks.discovery_requests, jwks.jwks_requests)
    verifier = make_verifier(jwks, jwks_url=None)
    assert (jwks.discovery_requests, jwks.jwks_requests) == before  # nothing at construction
    results = verify_all(verifier, [token(jwks), token(jwks)])
    assert all(r is not None for r in results)
    assert jwks.discovery_requests == before[0] + 1
    assert jwks.jwks_requests == before[1] + 1


def test_discovery_document_for_another_issuer_is_refused(jwks: JwksServer) -> None:
    """OIDC Discovery §4.3: the document's issuer must equal the configured one exactly."""
    issuer = jwks.issuer + "/"
    verifier = make_verifier(jwks, jwks_url=None, issuer=issuer)
    assert verify_all(verifier, [token(jwks, iss=issuer)]) == [None]


@pytest.mark.parametrize(
    "jwks_uri", ["http://example.com/jwks.json", "file:///etc/passwd", "ftp://127.0.0.1/k"]
)
def test_discovered_jwks_uri_must_be_https_or_loopback(jwks_uri: str) -> None:
    with JwksServer() as own:
        own.discovery_overrides = {"jwks_uri": jwks_uri}
        verifier = make_verifier(own, jwks_url=None)
        assert verify_all(verifier, [own.issuer_obj.token(RESOURCE)]) == [None]
        assert own.jwks_requests == 0


def test_unknown_kid_refetch_is_rate_limited_per_window() -> None:
    """#56 with a controlled clock: one refetch per 30 s window, however many forged kids."""
    clock = FakeClock()
    with JwksServer() as own:
        verifier = make_verifier(own, clock)
        issuer = own.issuer_obj
        forged = [issuer.sign(issuer.claims(RESOURCE), kid=f"kid-{i}") for i in range(5)]
        assert verify_all(verifier, [issuer.token(RESOURCE), *forged])[0] is not None
        assert own.jwks_requests == 1
        clock.now += 29.0
        assert verify_all(verifier, forged) == [None] * 5
        assert own.jwks_requests == 1
        clock.now += 1.0
        assert verify_all(verifier, forged) == [None] * 5
        assert own.jwks_requests == 2


def test_concurrent_unknown_kids_share_one_fetch() -> None:
    with JwksServer() as own:
        verifier = make_verifier(own)
        issuer = own.issuer_obj
        tokens = [issuer.sign(issuer.claims(RESOURCE), kid=f"kid-{i}") for i in range(20)]

        async def run() -> list[AccessToken | None]:
            return list(await asyncio.gather(*(verifier.verify_token(t) for t in tokens)))

        assert asyncio.run(run()) == [None] * 20
        assert own.jwks_requests == 1


def test_jwks_without_usable_keys_rejects_everything() -> None:
    with JwksServer() as own:
        own.issuer_obj.jwks = lambda: {
            "keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "test-kid-1"}]
        }  # type: ignore[method-assign]
        verifier = make_verifier(own)
        assert verify_all(verifier, [own.issuer_obj.token(RESOURCE)]) == [None]


def test_validation_cache_never_outlives_exp_and_never_holds_failures(jwks: JwksServer) -> None:
    now = [int(time.time())]
    settings = ResourceSettings(issuer=jwks.issuer, jwks_url=jwks.jwks_url)
    keys = JwksCache(settings.issuer, settings.jwks_url, settings.jwks_refetch_interval)
    verifier = JwtTokenVerifier(settings, keys, clock=lambda: now[0])
    good = token(jwks, exp=now[0] + 30)
    head, body, signature = good.split(".")
    forged = f"{head}.{body}.{signature[:-4]}AAAA"

    assert verify_all(verifier, [good, good, forged]) == [
        verify_all(verifier, [good])[0],
    ] * 2 + [None]
    assert len(verifier.cache) == 1  # the good token once; the forged one is not remembered

    now[0] += 30  # at exp: the cached entry is no longer used (full validation, within skew)
    assert verify_all(verifier, [good])[0] is not None
    now[0] += settings.clock_skew + 1  # past exp and the skew: refused, cache or not
    assert verify_all(verifier, [good]) == [None]
    assert len(verifier.cache) == 0
