"""DPoP-bound tokens in the broker (RFC 9449): when a key is made, proofs on token and refresh
requests, the nonce retry, the key kept with the tokens, and the refusal to hand a bound token
to a client of the token API. The fake authorization server checks each proof with the demo
server's independent verifier (``demo_server/dpop.py``)."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from urllib.parse import parse_qs

import httpx2
import pytest

from broker.config import ServerConfig
from broker.errors import AuthorizationError, DpopBound, InvalidGrant, TokenRequestFailed
from broker.oauth import dpop as proofs
from broker.oauth.as_metadata import AuthServer
from broker.oauth.providers import GENERIC
from broker.oauth.token_request import handle_token_response
from broker.store.codec import decode_tokens, encode_tokens
from broker.store.memory import MemoryTokenStore
from broker.tokens.auth_servers import AuthServerCache
from broker.tokens.dpop import Dpop, is_bound, refuse_bound
from broker.tokens.grant import RefreshGrant
from broker.tokens.tokenset import TokenKey, TokenSet
from demo_server.dpop import DpopError, NonceSource, ProofChecker, ReplayCache

ISSUER = "https://as.example/pool"
TOKEN_ENDPOINT = f"{ISSUER}/oauth2/token"
URL = "https://mcp.example/mcp"
KEY = TokenKey(ISSUER, "client-1", URL)
CANARY_ACCESS = "CANARY-dpop-at"
CANARY_REFRESH = "CANARY-dpop-rt"


def auth_server(algs: tuple[str, ...] | None = ("ES256",)) -> AuthServer:
    return AuthServer(
        ISSUER,
        f"{ISSUER}/authorize",
        TOKEN_ENDPOINT,
        GENERIC,
        dpop_signing_alg_values_supported=algs,
    )


class FakeAuthServer:
    """A token endpoint that checks DPoP proofs (and demands a nonce when ``nonces``) and binds
    its tokens to the proved key, as RFC 9449 §5 and §8 describe."""

    def __init__(self, *, nonces: bool = False, token_type: str | None = None) -> None:
        clock = time.time
        self.nonce_source = NonceSource(clock) if nonces else None
        self.checker = ProofChecker(clock, ReplayCache(clock), self.nonce_source)
        self.token_type = token_type
        self.requests: list[httpx2.Request] = []
        self.proved: list[str | None] = []
        self.other: list[str] = []

    def send(self, request: httpx2.Request) -> httpx2.Response:
        if str(request.url) != TOKEN_ENDPOINT:
            self.other.append(str(request.url))
            return httpx2.Response(404, request=request)
        self.requests.append(request)
        headers = {}
        if self.nonce_source is not None:
            headers["DPoP-Nonce"] = self.nonce_source.current()
        jkt = None
        if "dpop" in request.headers:
            try:
                jkt = self.checker.verify(
                    request.headers.get_list("dpop"), "POST", TOKEN_ENDPOINT
                ).jkt
            except DpopError as error:
                body = {"error": error.error, "error_description": str(error)}
                return httpx2.Response(400, json=body, headers=headers, request=request)
        self.proved.append(jkt)
        form = parse_qs(request.content.decode())
        n = len(self.requests)
        body = {
            "access_token": f"{CANARY_ACCESS}-{n}",
            "token_type": self.token_type or ("DPoP" if jkt else "Bearer"),
            "expires_in": 3600,
            "refresh_token": f"{CANARY_REFRESH}-{n}",
        }
        assert form["grant_type"][0] in ("refresh_token", "authorization_code")
        return httpx2.Response(200, json=body, headers=headers, request=request)


def bound_tokens(key: object | None = None, token_type: str = "DPoP") -> TokenSet:
    text = proofs.key_to_text(key) if key is not None else None  # type: ignore[arg-type]
    return TokenSet(
        key=KEY,
        access_token=CANARY_ACCESS,
        expires_at=time.time() + 3600,
        token_type=token_type,
        refresh_token=CANARY_REFRESH,
        dpop_key=text,
    )


# -- when --------------------------------------------------------------------------------------


def test_a_sign_in_gets_a_key_when_the_authorization_server_offers_dpop() -> None:
    dpop = Dpop()
    auto = ServerConfig(URL)
    assert dpop.key_for_sign_in(auto, auth_server(("ES256",))) is not None
    assert dpop.key_for_sign_in(auto, auth_server(("RS256",))) is None
    assert dpop.key_for_sign_in(auto, auth_server(None)) is None  # Cognito: no DPoP
    assert dpop.key_for_sign_in(ServerConfig(URL, dpop=True), auth_server(None)) is not None
    assert dpop.key_for_sign_in(ServerConfig(URL, dpop=False), auth_server(("ES256",))) is None


def test_each_sign_in_gets_a_new_key() -> None:
    dpop = Dpop()
    first = dpop.key_for_sign_in(ServerConfig(URL), auth_server())
    second = dpop.key_for_sign_in(ServerConfig(URL), auth_server())
    assert first is not None and second is not None
    assert proofs.thumbprint(first) != proofs.thumbprint(second)


# -- token requests -----------------------------------------------------------------------------


def token_request(endpoint: str = TOKEN_ENDPOINT) -> httpx2.Request:
    return httpx2.Request(
        "POST", endpoint, data={"grant_type": "authorization_code", "code": "CANARY-code"}
    )


def test_the_token_request_carries_a_proof_of_the_key_and_gets_a_bound_token() -> None:
    server, dpop, key = FakeAuthServer(), Dpop(), proofs.new_key()
    send = dpop.token_sender(server.send, auth_server(), key, ServerConfig(URL))
    answer = send(token_request())
    assert answer.status_code == 200
    assert server.proved == [proofs.thumbprint(key)]
    tokens = handle_token_response(answer, KEY, None)
    assert tokens.token_type == "DPoP" and is_bound(tokens)
    kept = Dpop.kept(tokens, key)
    assert kept.dpop_key is not None
    assert proofs.thumbprint(proofs.key_from_text(kept.dpop_key)) == proofs.thumbprint(key)


def test_other_requests_through_the_sender_carry_no_proof() -> None:
    server, dpop, key = FakeAuthServer(), Dpop(), proofs.new_key()
    send = dpop.token_sender(server.send, auth_server(), key, ServerConfig(URL))
    request = httpx2.Request("POST", f"{ISSUER}/register", json={})
    send(request)
    assert server.other == [f"{ISSUER}/register"] and "dpop" not in request.headers


def test_without_a_key_the_sender_is_the_plain_one_and_tokens_stay_bearer() -> None:
    server, dpop = FakeAuthServer(), Dpop()
    send = dpop.token_sender(server.send, auth_server(None), None, ServerConfig(URL))
    assert send == server.send
    tokens = handle_token_response(send(token_request()), KEY, None)
    assert tokens.token_type == "Bearer" and not is_bound(tokens)
    assert Dpop.kept(tokens, None).dpop_key is None


def test_use_dpop_nonce_is_retried_once_with_the_nonce_and_the_nonce_is_remembered() -> None:
    server, dpop, key = FakeAuthServer(nonces=True), Dpop(), proofs.new_key()
    send = dpop.token_sender(server.send, auth_server(), key, ServerConfig(URL))
    answer = send(token_request())
    assert answer.status_code == 200
    assert len(server.requests) == 2  # the challenge, then the retry with the nonce
    first, retry = (proofs_of(r) for r in server.requests)
    assert "nonce" not in first and retry["nonce"] == server.nonce_source.current()  # type: ignore[union-attr]
    assert first["jti"] != retry["jti"]  # a new proof, never the same one again
    # The next request (a refresh, later) sends the remembered nonce at once.
    send(token_request())
    assert len(server.requests) == 3
    assert proofs_of(server.requests[2])["nonce"] == server.nonce_source.current()  # type: ignore[union-attr]


def test_a_second_use_dpop_nonce_is_not_retried_again() -> None:
    calls: list[httpx2.Request] = []

    def always_nonce(request: httpx2.Request) -> httpx2.Response:
        calls.append(request)
        body = {"error": "use_dpop_nonce"}
        return httpx2.Response(400, json=body, headers={"DPoP-Nonce": f"n{len(calls)}"})

    send = Dpop().token_sender(always_nonce, auth_server(), proofs.new_key(), ServerConfig(URL))
    answer = send(token_request())
    assert len(calls) == 2 and answer.status_code == 400
    with pytest.raises(TokenRequestFailed) as caught:
        handle_token_response(answer, KEY, None)
    assert caught.value.error == "use_dpop_nonce"


def test_a_required_dpop_server_refuses_a_bearer_answer() -> None:
    server = FakeAuthServer(token_type="Bearer")
    send = Dpop().token_sender(
        server.send, auth_server(None), proofs.new_key(), ServerConfig(URL, dpop=True)
    )
    with pytest.raises(AuthorizationError, match="DPoP-bound tokens only"):
        send(token_request())


def test_a_bearer_answer_to_a_proof_is_kept_as_bearer_without_the_key() -> None:
    server, key = FakeAuthServer(token_type="Bearer"), proofs.new_key()
    send = Dpop().token_sender(server.send, auth_server(), key, ServerConfig(URL))
    tokens = Dpop.kept(handle_token_response(send(token_request()), KEY, None), key)
    assert tokens.token_type == "Bearer" and tokens.dpop_key is None


def test_a_dpop_token_the_broker_did_not_ask_for_is_refused() -> None:
    body = {"access_token": "x", "token_type": "DPoP", "expires_in": 60}
    unasked = httpx2.Response(200, json=body, request=token_request())
    with pytest.raises(TokenRequestFailed, match="not a Bearer token"):
        handle_token_response(unasked, KEY, None)


def proofs_of(request: httpx2.Request) -> dict[str, object]:
    from joserfc import jws

    payload = jws.extract_compact(request.headers["dpop"].encode()).payload
    return dict(json.loads(payload))


# -- refresh --------------------------------------------------------------------------------------


def refresh_grant(server: FakeAuthServer, config: ServerConfig, tmp_path: Path) -> RefreshGrant:
    cache = AuthServerCache(tmp_path)
    cache.put(auth_server())
    return RefreshGrant(server.send, cache, lambda: [config], MemoryTokenStore(), Dpop())


@pytest.mark.parametrize("nonces", [False, True])
def test_a_bound_set_is_refreshed_with_a_proof_of_its_own_key_and_keeps_it(
    tmp_path: Path, nonces: bool
) -> None:
    server = FakeAuthServer(nonces=nonces)
    config = ServerConfig(URL, client_id="client-1", issuer=ISSUER)
    key = proofs.new_key()
    fresh = refresh_grant(server, config, tmp_path)(bound_tokens(key))
    assert server.proved[-1] == proofs.thumbprint(key)  # the refresh token's key (§5)
    assert parse_qs(server.requests[-1].content.decode())["grant_type"] == ["refresh_token"]
    assert fresh.token_type == "DPoP" and fresh.dpop_key == bound_tokens(key).dpop_key
    assert len(server.requests) == (2 if nonces else 1)


def test_a_bearer_set_is_refreshed_without_a_proof(tmp_path: Path) -> None:
    server = FakeAuthServer()
    config = ServerConfig(URL, client_id="client-1", issuer=ISSUER)
    fresh = refresh_grant(server, config, tmp_path)(bound_tokens(None, "Bearer"))
    assert server.proved == [None] and "dpop" not in server.requests[0].headers
    assert fresh.token_type == "Bearer" and fresh.dpop_key is None


def test_a_refresh_refused_for_another_key_needs_the_user(tmp_path: Path) -> None:
    def bound_elsewhere(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(400, json={"error": "invalid_grant"}, request=request)

    cache = AuthServerCache(tmp_path)
    cache.put(auth_server())
    config = ServerConfig(URL, client_id="client-1", issuer=ISSUER)
    grant = RefreshGrant(bound_elsewhere, cache, lambda: [config], MemoryTokenStore(), Dpop())
    with pytest.raises(InvalidGrant):
        grant(bound_tokens(proofs.new_key()))


# -- storage and hand-out -----------------------------------------------------------------------


def test_the_key_is_kept_in_the_token_entry_and_never_shown() -> None:
    key = proofs.new_key()
    tokens = bound_tokens(key)
    private_d = str(key.as_dict(private=True)["d"])
    assert decode_tokens(encode_tokens(tokens), KEY) == tokens
    assert private_d not in repr(tokens) and private_d not in str(tokens)
    refused = dataclasses.replace(tokens)
    with pytest.raises(DpopBound) as caught:
        refuse_bound(refused)
    assert "mcp-broker connect" in str(caught.value)
    assert CANARY_ACCESS not in str(caught.value) and private_d not in str(caught.value)
    assert caught.value.exit_code == 3
    assert (caught.value.http_status, caught.value.wire_error) == (403, "dpop_bound")


def test_a_bearer_set_is_handed_out() -> None:
    tokens = bound_tokens(None, "Bearer")
    assert refuse_bound(tokens) is tokens


def test_token_and_headers_from_the_library_refuse_a_bound_token_as_the_api_does() -> None:
    from broker.cli.helpers import HelperTokens

    class Library:
        def token(self, url: str, min_valid: float | None = None) -> TokenSet:
            return bound_tokens(proofs.new_key())

        def close(self) -> None:
            pass

    helpers = HelperTokens(Library, use_api=False)
    with pytest.raises(DpopBound, match="mcp-broker connect"):
        helpers.token(URL)
