"""The demo MCP server's DPoP options (``--dpop``, ``--dpop-required``) over real HTTP, with
tokens from a test issuer whose JWKS a real server on 127.0.0.1 publishes and proofs from a real
ES256 key."""

from __future__ import annotations

from collections.abc import Iterator

import httpx2
import pytest

from demo_server.resource import RunningResourceServer
from tests.support.enterprise_client import DpopKey
from tests.support.jwt_issuer import JwksServer
from tests.support.resource_server import initialize_body, post_mcp, running_resource

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def jwks() -> Iterator[JwksServer]:
    with JwksServer() as server:
        yield server


@pytest.fixture(scope="module")
def advertising(jwks: JwksServer) -> Iterator[RunningResourceServer]:
    with running_resource(jwks, dpop=True) as server:
        yield server


@pytest.fixture(scope="module")
def requiring(jwks: JwksServer) -> Iterator[RunningResourceServer]:
    with running_resource(jwks, dpop_required=True) as server:
        yield server


def challenges(response: httpx2.Response) -> list[str]:
    return response.headers.get_list("www-authenticate")


def dpop_headers(url: str, token: str, key: DpopKey, scheme: str = "DPoP") -> dict[str, str]:
    return {
        "Authorization": f"{scheme} {token}",
        "DPoP": key.proof("POST", url, access_token=token),
    }


def test_dpop_is_advertised_in_challenges_and_metadata(
    advertising: RunningResourceServer, requiring: RunningResourceServer
) -> None:
    first = post_mcp(advertising.url, initialize_body())
    assert first.status_code == 401
    assert challenges(first)[0].startswith("Bearer ")
    assert challenges(first)[1].startswith('DPoP algs="ES256"')
    prm = httpx2.get(advertising.settings.resource_metadata_url, timeout=10.0).json()
    assert prm["dpop_signing_alg_values_supported"] == ["ES256"]
    assert "dpop_bound_access_tokens_required" not in prm
    required = httpx2.get(requiring.settings.resource_metadata_url, timeout=10.0).json()
    assert required["dpop_bound_access_tokens_required"] is True
    only_dpop = post_mcp(requiring.url, initialize_body())
    assert [c.split(" ")[0] for c in challenges(only_dpop)] == ["DPoP"]


def test_a_bound_token_works_with_a_proof_under_either_spelling_of_the_scheme(
    jwks: JwksServer, advertising: RunningResourceServer
) -> None:
    key = DpopKey()
    resource = advertising.settings.resource_id
    for scheme in ("DPoP", "dpop"):
        token = jwks.issuer_obj.token(resource, cnf={"jkt": key.jkt})
        headers = dpop_headers(advertising.url, token, key, scheme)
        response = post_mcp(advertising.url, initialize_body(), headers=headers)
        assert response.status_code == 200, response.text


def test_an_unbound_token_is_refused_with_the_dpop_scheme(
    jwks: JwksServer, advertising: RunningResourceServer
) -> None:
    token = jwks.issuer_obj.token(advertising.settings.resource_id)
    headers = dpop_headers(advertising.url, token, DpopKey())
    response = post_mcp(advertising.url, initialize_body(), headers=headers)
    assert response.status_code == 401
    assert 'DPoP algs="ES256", error="invalid_token"' in challenges(response)[0]
    assert post_mcp(advertising.url, initialize_body(), token).status_code == 200


def test_dpop_required_refuses_bearer_tokens(
    jwks: JwksServer, requiring: RunningResourceServer
) -> None:
    resource = requiring.settings.resource_id
    unbound = jwks.issuer_obj.token(resource)
    refused = post_mcp(requiring.url, initialize_body(), unbound)
    assert refused.status_code == 401
    assert '"result"' not in refused.text and unbound not in refused.text
    key = DpopKey()
    bound = jwks.issuer_obj.token(resource, cnf={"jkt": key.jkt})
    headers = dpop_headers(requiring.url, bound, key)
    assert post_mcp(requiring.url, initialize_body(), headers=headers).status_code == 200
