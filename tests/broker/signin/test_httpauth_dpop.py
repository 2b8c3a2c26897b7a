"""DPoP on the requests to an MCP server (RFC 9449 §7, §9) through the one 401/403 handler, with
the broker library's token source (as ``mcp-broker call`` and the bridge use it). The fake MCP
server judges each request with the demo server's verifier (``demo_server/dpop.py``)."""

from __future__ import annotations

import asyncio
import time

import httpx2
import pytest

from broker.bridge.library_tokens import LibraryTokens
from broker.bridge.sources import BrokerTokens
from broker.errors import DpopBound, InteractionRequired
from broker.oauth import dpop as proofs
from broker.signin.httpauth import BrokerAuth, send_signed
from broker.tokens.dpop import Dpop
from broker.tokens.tokenset import TokenKey, TokenSet
from demo_server.dpop import DpopError, NonceSource, ProofChecker, ReplayCache

URL = "https://mcp.example/mcp"
KEY = TokenKey("https://as.example", "client-1", URL)
CANARY = "CANARY-bound-access-token"


def tokens_for(key: object | None) -> TokenSet:
    return TokenSet(
        key=KEY,
        access_token=CANARY,
        expires_at=time.time() + 3600,
        token_type="DPoP" if key is not None else "Bearer",
        dpop_key=proofs.key_to_text(key) if key is not None else None,  # type: ignore[arg-type]
    )


class Broker:
    """What ``LibraryTokens`` asks of the broker: the stored set and the process's DPoP state."""

    def __init__(self, tokens: TokenSet) -> None:
        self.tokens = tokens
        self.dpop = Dpop()

    def renewed(self, url: str) -> TokenSet:
        return self.tokens  # a refresh gives the same tokens again

    def token(self, url: str, min_valid: float | None = None) -> TokenSet:
        return self.tokens

    def close(self) -> None:
        pass


class McpServer:
    """Accepts a token bound to ``jkt`` only as DPoP with a valid proof; with ``nonces``, only
    with its current nonce (401 use_dpop_nonce + DPoP-Nonce otherwise)."""

    def __init__(self, jkt: str | None, *, nonces: bool = False) -> None:
        self.jkt = jkt
        self.nonce_source = NonceSource(time.time) if nonces else None
        self.checker = ProofChecker(time.time, ReplayCache(time.time), self.nonce_source)
        self.seen: list[httpx2.Headers] = []  # each request's headers as sent

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.seen.append(httpx2.Headers(request.headers))
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if self.jkt is None:
            ok = scheme == "Bearer" and token == CANARY and "dpop" not in request.headers
            return httpx2.Response(200 if ok else 401, json={})
        if scheme != "DPoP" or token != CANARY:
            return self.refuse("invalid_token")
        try:
            proof = self.checker.verify(
                request.headers.get_list("dpop"), request.method, str(request.url), token
            )
        except DpopError as error:
            return self.refuse(error.error)
        return httpx2.Response(200 if proof.jkt == self.jkt else 401, json={"ok": True})

    def refuse(self, error: str) -> httpx2.Response:
        headers = {"WWW-Authenticate": f'DPoP algs="ES256", error="{error}"'}
        if self.nonce_source is not None:
            headers["DPoP-Nonce"] = self.nonce_source.current()
        return httpx2.Response(401, headers=headers, json={"error": error})


def call(server: McpServer, source: object, method: str = "POST") -> httpx2.Response:
    auth = BrokerAuth(source)  # type: ignore[arg-type]
    request = httpx2.Request(method, URL + "?x=1", json={"jsonrpc": "2.0", "id": 1})
    with httpx2.Client(transport=httpx2.MockTransport(server)) as client:
        return send_signed(auth, request, client.send)


def test_a_bound_token_goes_as_dpop_with_a_fresh_proof_on_every_request() -> None:
    key = proofs.new_key()
    server = McpServer(proofs.thumbprint(key))
    source = LibraryTokens(Broker(tokens_for(key)), URL)  # type: ignore[arg-type]
    for method in ("POST", "GET", "POST"):
        assert call(server, source, method).status_code == 200
    jtis = {proofs_claims(r)["jti"] for r in server.seen}
    assert len(server.seen) == 3 and len(jtis) == 3
    assert all(r["authorization"] == f"DPoP {CANARY}" for r in server.seen)
    assert proofs_claims(server.seen[0])["htu"] == URL  # no query


def test_use_dpop_nonce_from_the_mcp_server_is_retried_once_and_remembered() -> None:
    key = proofs.new_key()
    server = McpServer(proofs.thumbprint(key), nonces=True)
    source = LibraryTokens(Broker(tokens_for(key)), URL)  # type: ignore[arg-type]
    assert call(server, source).status_code == 200
    assert len(server.seen) == 2
    assert "nonce" not in proofs_claims(server.seen[0])
    assert proofs_claims(server.seen[1])["nonce"] == server.nonce_source.current()  # type: ignore[union-attr]
    assert call(server, source).status_code == 200  # the nonce is sent at once now
    assert len(server.seen) == 3


def test_a_proof_of_another_key_is_refused_and_not_retried_forever() -> None:
    server = McpServer(proofs.thumbprint(proofs.new_key()))
    source = LibraryTokens(Broker(tokens_for(proofs.new_key())), URL)  # type: ignore[arg-type]
    with pytest.raises(InteractionRequired):
        call(server, source)
    assert len(server.seen) <= 3  # the request, one renewal: then the user is told


def test_a_bearer_token_goes_as_bearer_without_a_proof() -> None:
    server = McpServer(None)
    source = LibraryTokens(Broker(tokens_for(None)), URL)  # type: ignore[arg-type]
    assert call(server, source).status_code == 200


def test_the_bridge_source_uses_the_library_when_the_api_refuses_a_bound_token() -> None:
    key = proofs.new_key()
    server = McpServer(proofs.thumbprint(key))

    class RefusingApi:
        resource = URL

        def token(self) -> str:
            raise DpopBound(f"the tokens of {URL} are DPoP-bound")

        def close(self) -> None:
            pass

    library = LibraryTokens(Broker(tokens_for(key)), URL)  # type: ignore[arg-type]
    source = BrokerTokens(URL, RefusingApi, lambda: library)  # type: ignore[arg-type,return-value]
    assert call(server, source).status_code == 200
    assert server.seen[-1]["authorization"] == f"DPoP {CANARY}"


def test_the_async_flow_signs_too() -> None:
    key = proofs.new_key()
    server = McpServer(proofs.thumbprint(key), nonces=True)
    source = LibraryTokens(Broker(tokens_for(key)), URL)  # type: ignore[arg-type]

    async def go() -> int:
        async with httpx2.AsyncClient(
            auth=BrokerAuth(source), transport=httpx2.MockTransport(server)
        ) as client:
            return (await client.post(URL, json={})).status_code

    assert asyncio.run(go()) == 200 and len(server.seen) == 2


def proofs_claims(headers: httpx2.Headers) -> dict[str, object]:
    import json

    from joserfc import jws

    return dict(json.loads(jws.extract_compact(headers["dpop"].encode()).payload))
