"""The local stack end to end over real HTTP on 127.0.0.1: one idp as the enterprise IdP
(``--enterprise-idp``), one as the MCP servers' authorization server trusting it (``--trust-idp``,
``--dpop``), two demo MCP servers behind it; one sign-in at the IdP, then DPoP-bound access tokens
for both servers with no further sign-in, and the attacks on each step refused with nothing leaked.
The client is tests/support/enterprise_client.py (real ES256 DPoP key, real HTTP)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest

from demo_server.idp import ClientConfig, IdpSettings, ResourceServerConfig, RunningIdp
from demo_server.idp import start as start_idp
from demo_server.idp.extension_settings import (
    DpopSettings,
    EnterpriseSettings,
    IdJagAudience,
    TrustedIdp,
)
from demo_server.resource import ResourceSettings, RunningResourceServer
from demo_server.resource import start as start_resource
from demo_server.resource.server import bind_loopback
from tests.support.enterprise_client import (
    DpopKey,
    exchange_request,
    redeem,
    sign_in,
    unverified_claims,
)
from tests.support.procs import IDP_URL, ServerProcess, demo_server_cmd, fixed_port
from tests.support.resource_server import initialize_body, post_mcp

pytestmark = pytest.mark.integration

POOL = "us-east-1_Demo00001"
CLIENT = ("ent-client", "ent-client-secret-canary-8a2e")
OTHER_CLIENT = ("ent-client-2", "ent-client-2-secret-canary-51c0")
ELSEWHERE = "https://another-as.example/issuer"


@dataclass
class Stack:
    idp: RunningIdp
    auth: RunningIdp
    servers: list[RunningResourceServer]

    def exchange(self, id_token: str, resource: str, audience: str | None = None) -> str:
        data = exchange_request(id_token, audience or self.auth.issuer, resource)
        data["scope"] = f"{resource}/tools"
        response = httpx2.post(f"{self.idp.url}/oauth2/token", data=data, timeout=10.0)
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])


def enterprise_client(client: tuple[str, str], scopes: tuple[str, ...]) -> ClientConfig:
    return ClientConfig(
        client_id=client[0],
        client_secret=client[1],
        callback_urls=(),
        allowed_scopes=scopes,
        allowed_flows=("jwt-bearer",),
    )


@pytest.fixture
def stack(request: pytest.FixtureRequest) -> Iterator[Stack]:
    """IdP ← trusted by AS ← trusted by two MCP servers; the IdP's port is chosen first so that
    the AS can name its issuer, and the MCP servers' sockets are bound first for their URLs."""
    nonce = bool(getattr(request, "param", False))
    sockets = [bind_loopback("127.0.0.1", 0), bind_loopback("127.0.0.1", 0)]
    urls = [f"http://127.0.0.1:{s.getsockname()[1]}/mcp" for s in sockets]
    scopes = tuple(f"{url}/tools" for url in urls)
    idp_port = fixed_port()
    auth = start_idp(
        IdpSettings(
            port=0,
            resource_servers=tuple(ResourceServerConfig(url) for url in urls),
            clients=(enterprise_client(CLIENT, scopes), enterprise_client(OTHER_CLIENT, scopes)),
            enterprise=EnterpriseSettings(
                trusted_idps=(TrustedIdp(f"http://127.0.0.1:{idp_port}/{POOL}"),)
            ),
            dpop=DpopSettings(enabled=True),
        )
    )
    audiences = (IdJagAudience(auth.issuer, CLIENT[0]), IdJagAudience(ELSEWHERE, CLIENT[0]))
    idp = start_idp(
        IdpSettings(
            port=idp_port,
            auto_login="demo",
            enterprise=EnterpriseSettings(issue_id_jags=True, audiences=audiences),
        )
    )
    servers = [
        start_resource(
            ResourceSettings(
                port=0, issuer=auth.issuer, client_ids=(CLIENT[0],), dpop=True, dpop_nonce=nonce
            ),
            sock,
        )
        for sock in sockets
    ]
    try:
        yield Stack(idp, auth, servers)
    finally:
        for server in servers:
            server.close()
        idp.close()
        auth.close()


def dpop_call(
    url: str, token: str, key: DpopKey, proof: str | None = None, **proof_claims: Any
) -> httpx2.Response:
    proof = proof or key.proof("POST", url, access_token=token, **proof_claims)
    return post_mcp(
        url, initialize_body(), headers={"Authorization": f"DPoP {token}", "DPoP": proof}
    )


def assert_refused(response: httpx2.Response, error: str, *secrets: str) -> None:
    assert response.status_code == 401, response.text
    assert f'error="{error}"' in " ".join(response.headers.get_list("www-authenticate"))
    assert '"result"' not in response.text
    for secret in secrets:
        assert secret not in response.text


def bound_token(stack: Stack, key: DpopKey, server: int = 0) -> tuple[str, str]:
    """(ID token, DPoP-bound access token for MCP server ``server``)."""
    id_token = sign_in(stack.idp.url)["id_token"]
    grant = stack.exchange(id_token, stack.servers[server].url)
    response = redeem(stack.auth.url, grant, CLIENT, dpop=key)
    assert response.status_code == 200, response.text
    assert response.json()["token_type"] == "DPoP"
    return id_token, str(response.json()["access_token"])


def test_one_sign_in_gives_bound_tokens_for_two_mcp_servers(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    key = DpopKey()
    id_token = sign_in(stack.idp.url)["id_token"]
    secrets = [id_token, CLIENT[1]]
    for server in stack.servers:
        grant = stack.exchange(id_token, server.url)
        response = redeem(stack.auth.url, grant, CLIENT, dpop=key)
        assert response.status_code == 200, response.text
        access = str(response.json()["access_token"])
        assert unverified_claims(access)["cnf"] == {"jkt": key.jkt}
        assert unverified_claims(access)["aud"] == server.url
        called = dpop_call(server.url, access, key)
        assert called.status_code == 200, called.text
        assert '"result"' in called.text
        secrets += [grant, access]
    for secret in secrets:
        assert secret not in caplog.text


def test_a_stolen_bound_token_is_refused_at_the_mcp_server(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    key = DpopKey()
    _, access = bound_token(stack, key)
    url, other_url = stack.servers[0].url, stack.servers[1].url
    as_bearer = post_mcp(url, initialize_body(), access)
    assert_refused(as_bearer, "invalid_token", access)
    assert any(c.startswith("DPoP ") for c in as_bearer.headers.get_list("www-authenticate"))
    thief = DpopKey()
    assert_refused(dpop_call(url, access, thief), "invalid_dpop_proof", access)
    proof_for_elsewhere = key.proof("POST", other_url, access_token=access)
    assert_refused(dpop_call(url, access, key, proof_for_elsewhere), "invalid_dpop_proof", access)
    assert_refused(dpop_call(url, access, key, htm="GET"), "invalid_dpop_proof", access)
    good = key.proof("POST", url, access_token=access)
    assert dpop_call(url, access, key, good).status_code == 200
    assert_refused(dpop_call(url, access, key, good), "invalid_dpop_proof", access)
    unbound_key_proof = key.proof("POST", url)  # no ath
    assert_refused(dpop_call(url, access, key, unbound_key_proof), "invalid_dpop_proof", access)
    assert access not in caplog.text


def test_a_token_for_one_mcp_server_is_refused_by_the_other(stack: Stack) -> None:
    key = DpopKey()
    _, access = bound_token(stack, key, server=0)
    other = stack.servers[1].url
    assert_refused(dpop_call(other, access, key), "invalid_token", access)


def test_the_id_jag_attacks_are_refused_at_the_authorization_server(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    id_token = sign_in(stack.idp.url)["id_token"]
    url = stack.servers[0].url
    grant = stack.exchange(id_token, url)
    assert redeem(stack.auth.url, grant, CLIENT).status_code == 200
    attempts = {
        "replayed": (grant, CLIENT),
        "another client": (stack.exchange(id_token, url), OTHER_CLIENT),
        "another audience": (stack.exchange(id_token, url, audience=ELSEWHERE), CLIENT),
        "another resource": (stack.exchange(id_token, "http://127.0.0.1:1/mcp"), CLIENT),
    }
    for name, (assertion, client) in attempts.items():
        response = redeem(stack.auth.url, assertion, client)
        assert (response.status_code, response.json().get("error")) == (400, "invalid_grant"), name
        assert "access_token" not in response.text and assertion not in response.text
        assert assertion not in caplog.text
    assert id_token not in caplog.text


@pytest.mark.parametrize("stack", [True], indirect=True)
def test_the_mcp_server_demands_and_honours_nonces(stack: Stack) -> None:
    key = DpopKey()
    _, access = bound_token(stack, key)
    url = stack.servers[0].url
    challenged = dpop_call(url, access, key)
    assert_refused(challenged, "use_dpop_nonce", access)
    nonce = challenged.headers["DPoP-Nonce"]
    answered = dpop_call(url, access, key, nonce=nonce)
    assert answered.status_code == 200, answered.text


def test_the_cli_options_reach_the_servers(tmp_path: Path) -> None:
    """``mcp-demo-server idp --enterprise-idp --trust-idp … --dpop`` as a user starts it."""
    args = demo_server_cmd(
        "idp",
        "--port",
        "0",
        "--enterprise-idp",
        "--id-jag-audience",
        f"{ELSEWHERE}=ent-client",
        "--trust-idp",
        "https://idp.example/tenant=https://idp.example/jwks",
        "--dpop",
        "--dpop-nonce",
    )
    with ServerProcess(args, tmp_path / "idp.log", announce=IDP_URL) as proc:
        issuer = f"{proc.url}/{POOL}"
        doc = httpx2.get(f"{issuer}/.well-known/openid-configuration", timeout=10.0).json()
    assert doc["dpop_signing_alg_values_supported"] == ["ES256"]
    assert doc["identity_chaining_requested_token_types_supported"] == [
        "urn:ietf:params:oauth:token-type:id-jag"
    ]
    assert doc["authorization_grant_profiles_supported"] == [
        "urn:ietf:params:oauth:grant-profile:id-jag"
    ]
    assert "urn:ietf:params:oauth:grant-type:token-exchange" in doc["grant_types_supported"]
    assert "idp.example" not in str(doc)
