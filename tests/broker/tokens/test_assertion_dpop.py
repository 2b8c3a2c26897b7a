"""DPoP on the JWT bearer grant (RFC 7523 with RFC 9449): an ID-JAG redemption and a workload
identity's grant at a DPoP-enabled authorization server carry a proof of the server's key (with the
server's nonce after one ``use_dpop_nonce``), the IdP's token exchange carries none, the bound
tokens are kept with their key, and a renewal proves the same key. The fake authorization server
checks each proof with the demo server's independent verifier (``demo_server/dpop.py``)."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from urllib.parse import parse_qs

import httpx2
import pytest

from broker.config import Config, ServerConfig, machine_credential_owner
from broker.errors import AuthorizationError
from broker.oauth import dpop as proofs
from broker.oauth.as_metadata import AuthServer
from broker.oauth.discovery import Discovered
from broker.oauth.providers import GENERIC
from broker.store.memory import MemoryTokenStore
from broker.tokens.auth_servers import AuthServerCache
from broker.tokens.dpop import Dpop, is_bound
from broker.tokens.enterprise import AssertionGrants
from broker.tokens.grant import RefreshGrant
from broker.tokens.tokenset import ID_JAG, WORKLOAD_JWT
from demo_server.dpop import DpopError, NonceSource, ProofChecker, ReplayCache
from tests.broker.tokens.test_enterprise import (
    AS_ISSUER,
    IDP,
    IDP_ISSUER,
    IDP_METADATA,
    SERVER,
    URL,
    Session,
    fresh_id_token,
    jwt,
)

TOKEN_ENDPOINT = f"{AS_ISSUER}/t"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


def found(algs: tuple[str, ...] | None = ("ES256",)) -> Discovered:
    server = AuthServer(
        AS_ISSUER, f"{AS_ISSUER}/a", TOKEN_ENDPOINT, GENERIC, dpop_signing_alg_values_supported=algs
    )
    return Discovered(URL, URL, server)


class DpopAuthServer:
    """The IdP (token exchange, no DPoP) and the MCP server's authorization server, whose token
    endpoint checks DPoP proofs, demands a nonce when ``nonces`` and binds its tokens to the
    proved key (RFC 9449 §5, §8)."""

    def __init__(self, *, nonces: bool = False, token_type: str | None = None) -> None:
        clock = time.time
        self.nonce_source = NonceSource(clock) if nonces else None
        self.checker = ProofChecker(clock, ReplayCache(clock), self.nonce_source)
        self.token_type = token_type
        self.exchange_proofs: list[str] = []
        self.attempts = 0  # JWT bearer requests, with refused ones
        self.proved: list[str | None] = []  # the key of each served JWT bearer request

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        url = str(request.url)
        if request.method == "GET":  # the IdP's metadata
            if url == f"{IDP_ISSUER}/.well-known/oauth-authorization-server":
                return httpx2.Response(200, json=IDP_METADATA, request=request)
            return httpx2.Response(404, request=request)
        fields = parse_qs(request.content.decode())
        if url == f"{IDP_ISSUER}/token":
            self.exchange_proofs += request.headers.get_list("dpop")
            jag = jwt({"jti": str(time.time_ns()), "exp": time.time() + 300})
            body = {"access_token": jag, "issued_token_type": fields["requested_token_type"][0]}
            return httpx2.Response(200, json={**body, "token_type": "N_A"}, request=request)
        assert url == TOKEN_ENDPOINT and fields["grant_type"] == [JWT_BEARER]
        self.attempts += 1
        headers = {}
        if self.nonce_source is not None:
            headers["DPoP-Nonce"] = self.nonce_source.current()
        jkt = None
        if "dpop" in request.headers:
            try:
                jkt = self.checker.verify(request.headers.get_list("dpop"), "POST", url).jkt
            except DpopError as error:
                body = {"error": error.error, "error_description": str(error)}
                return httpx2.Response(400, json=body, headers=headers, request=request)
        self.proved.append(jkt)
        body = {
            "access_token": f"CANARY-at-{self.attempts}",
            "token_type": self.token_type or ("DPoP" if jkt else "Bearer"),
            "expires_in": 3600,
        }
        return httpx2.Response(200, json=body, headers=headers, request=request)


def grants(tmp_path: Path, send: DpopAuthServer, server: ServerConfig = SERVER) -> AssertionGrants:
    config = Config(tmp_path / "c.toml", servers=(server,), idps=(IDP,))
    secrets = MemoryTokenStore()
    secrets.put_client_secret(machine_credential_owner(URL), "ent", "CANARY-secret")
    session = Session([fresh_id_token()])
    return AssertionGrants(
        send, AuthServerCache(tmp_path), secrets, lambda: config, session, Dpop()
    )


def workload_server(tmp_path: Path, **fields: object) -> ServerConfig:
    jwt_file = tmp_path / "workload.jwt"
    jwt_file.write_text(jwt({"sub": "ci-job", "exp": time.time() + 600}) + "\n")
    return ServerConfig(
        URL, client_id="ent", issuer=AS_ISSUER, workload_token_file=str(jwt_file), **fields
    )


@pytest.mark.parametrize("nonces", [False, True], ids=["no-nonce", "nonce"])
def test_an_id_jag_is_redeemed_with_a_proof_and_the_bound_token_keeps_its_key(
    tmp_path: Path, nonces: bool
) -> None:
    send = DpopAuthServer(nonces=nonces)
    tokens = grants(tmp_path, send).tokens(SERVER, found(), "mcp/tools")
    assert is_bound(tokens) and tokens.grant == ID_JAG and tokens.dpop_key is not None
    key = proofs.key_from_text(tokens.dpop_key)
    assert send.proved == [proofs.thumbprint(key)]
    assert send.attempts == (2 if nonces else 1)  # one use_dpop_nonce, retried once
    assert send.exchange_proofs == []  # the ID-JAG is not an access token: no proof at the IdP
    assert tokens.dpop_key not in repr(tokens)


def test_a_renewal_proves_the_key_of_the_tokens_it_renews(tmp_path: Path) -> None:
    send = DpopAuthServer(nonces=True)
    assertions = grants(tmp_path, send)
    first = assertions.tokens(SERVER, found(), "mcp/tools")
    renewed = assertions.renew(SERVER, found(), first)
    assert renewed.access_token != first.access_token
    assert renewed.dpop_key == first.dpop_key and is_bound(renewed)
    assert send.proved[0] == send.proved[1] is not None
    assert send.attempts == 3  # the nonce learnt at the first grant is sent with the second


def test_the_refresh_grant_renews_a_bound_id_jag_set_with_its_key(tmp_path: Path) -> None:
    send = DpopAuthServer()
    assertions = grants(tmp_path, send)
    first = assertions.tokens(SERVER, found(), "mcp/tools")
    cache = AuthServerCache(tmp_path)
    cache.put(found().auth_server)
    refresh = RefreshGrant(
        send, cache, lambda: (SERVER,), MemoryTokenStore(), assertions=assertions
    )
    renewed = refresh(first)
    assert renewed.dpop_key == first.dpop_key and is_bound(renewed)
    assert len(set(send.proved)) == 1


def test_a_bearer_set_is_renewed_bound_once_the_authorization_server_offers_dpop(
    tmp_path: Path,
) -> None:
    send = DpopAuthServer()
    assertions = grants(tmp_path, send)
    bearer = assertions.tokens(SERVER, found(algs=None), None)
    assert not is_bound(bearer) and bearer.dpop_key is None and send.proved == [None]
    renewed = assertions.renew(SERVER, found(), bearer)
    assert is_bound(renewed) and renewed.dpop_key is not None


def test_a_workload_identitys_grant_carries_a_proof_and_keeps_the_key(tmp_path: Path) -> None:
    server = workload_server(tmp_path)
    send = DpopAuthServer(nonces=True)
    assertions = grants(tmp_path, send, server)
    tokens = assertions.tokens(server, found(), None)
    assert is_bound(tokens) and tokens.grant == WORKLOAD_JWT and tokens.dpop_key is not None
    assert send.proved == [proofs.thumbprint(proofs.key_from_text(tokens.dpop_key))]
    renewed = assertions.renew(server, found(), tokens)
    assert renewed.dpop_key == tokens.dpop_key and send.proved[1] == send.proved[0]


def test_without_dpop_at_the_authorization_server_the_grants_stay_bearer(tmp_path: Path) -> None:
    send = DpopAuthServer()
    tokens = grants(tmp_path, send).tokens(SERVER, found(algs=None), None)
    server = workload_server(tmp_path)
    workload = grants(tmp_path, send, server).tokens(server, found(algs=None), None)
    assert send.proved == [None, None]
    assert not is_bound(tokens) and not is_bound(workload)
    assert tokens.dpop_key is None and workload.dpop_key is None


def test_dpop_false_sends_no_proof_to_a_dpop_server(tmp_path: Path) -> None:
    server = dataclasses.replace(SERVER, dpop=False)
    send = DpopAuthServer()
    tokens = grants(tmp_path, send, server).tokens(server, found(), None)
    assert send.proved == [None] and not is_bound(tokens)


def test_a_server_set_to_dpop_refuses_a_bearer_answer_to_the_grant(tmp_path: Path) -> None:
    server = dataclasses.replace(SERVER, dpop=True)
    send = DpopAuthServer(token_type="Bearer")
    with pytest.raises(AuthorizationError, match="DPoP-bound tokens only"):
        grants(tmp_path, send, server).tokens(server, found(algs=None), None)
    assert send.proved != [None]  # the proof was sent even though nothing was advertised
