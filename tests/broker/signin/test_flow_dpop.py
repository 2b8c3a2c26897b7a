"""The one sign-in flow with an authorization server that offers DPoP (RFC 9449 §5): a new key for
the sign-in, a proof on the code redemption only (not on registration), with the server's nonce
after a ``use_dpop_nonce``, and the key kept with the bound tokens; ``dpop = false`` opts out."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx2
import pytest

from broker.config import Config, ServerConfig
from broker.oauth import dpop as proofs
from broker.signin.flow import SignInFlow
from broker.store import MemoryTokenStore
from broker.tokens.auth_servers import AuthServerCache
from broker.tokens.service import TokenService
from demo_server.dpop import DpopError, NonceSource, ProofChecker, ReplayCache
from tests.broker.signin.test_flow import ISSUER, ONE, WAIT, World, refresh_not_expected

pytestmark = pytest.mark.integration  # the real loopback callback listener


class DpopWorld(World):
    def __init__(self) -> None:
        super().__init__()
        self.nonces = NonceSource(time.time)
        self.checker = ProofChecker(time.time, ReplayCache(time.time), self.nonces)
        self.proved: list[str] = []
        self.proofs_elsewhere: list[str] = []

    def send(self, request: httpx2.Request) -> httpx2.Response:
        url = str(request.url)
        if url != f"{ISSUER}/token":
            if "dpop" in request.headers:
                self.proofs_elsewhere.append(url)
            answer = super().send(request)
            if url.endswith("/.well-known/oauth-authorization-server"):
                body = {**answer.json(), "dpop_signing_alg_values_supported": ["ES256"]}
                return httpx2.Response(200, json=body, request=request)
            return answer
        if "dpop" not in request.headers:
            return super().send(request)
        try:
            jkt = self.checker.verify(request.headers.get_list("dpop"), "POST", url).jkt
        except DpopError as error:
            nonce = {"DPoP-Nonce": self.nonces.current()}
            return httpx2.Response(400, json={"error": error.error}, headers=nonce, request=request)
        self.proved.append(jkt)
        answer = super().send(request)
        return httpx2.Response(200, json={**answer.json(), "token_type": "DPoP"}, request=request)


def flow_for(world: World, tmp_path: Path, store: MemoryTokenStore, server: ServerConfig) -> Any:
    config = [Config(tmp_path / "config.toml", servers=(server,))]

    def update(change: Any) -> None:
        config[0] = change(config[0])

    return SignInFlow(
        send=world.send,
        head_of=world.head_of,
        service=TokenService(store, refresh_not_expected),
        auth_servers=AuthServerCache(tmp_path),
        secrets=store,
        server=lambda url: config[0].get_server(url),
        update_config=update,
        opener=world.open,
        timeout=WAIT,
    )


def test_a_sign_in_at_a_dpop_server_gets_tokens_bound_to_a_key_kept_with_them(
    tmp_path: Path,
) -> None:
    world, store = DpopWorld(), MemoryTokenStore()
    tokens = flow_for(world, tmp_path, store, ServerConfig(ONE)).sign_in(ONE)
    assert tokens.token_type == "DPoP" and tokens.dpop_key is not None
    key = proofs.key_from_text(tokens.dpop_key)
    assert world.proved == [proofs.thumbprint(key)]  # after one use_dpop_nonce round
    assert world.token_requests == 1
    assert world.proofs_elsewhere == []  # registration and metadata carry no proof
    assert store.get(tokens.key) == tokens


def test_dpop_false_signs_in_with_bearer_tokens(tmp_path: Path) -> None:
    world, store = DpopWorld(), MemoryTokenStore()
    tokens = flow_for(world, tmp_path, store, ServerConfig(ONE, dpop=False)).sign_in(ONE)
    assert tokens.token_type == "Bearer" and tokens.dpop_key is None and world.proved == []
