"""DPoP at the local authorization server (``--dpop``, RFC 9449 §5, §8), through Flask's test
client with proofs from a real ES256 key."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest
from flask.testing import FlaskClient
from werkzeug.security import generate_password_hash
from werkzeug.test import TestResponse

from demo_server.idp import ClientConfig, IdpSettings, UserConfig, create_app
from demo_server.idp.extension_settings import DpopSettings
from demo_server.idp.keys import SigningKeys
from tests.support.enterprise_client import DpopKey, unverified_claims
from tests.support.idp_flow import CALLBACK, DEMO_CLIENT, authorize_params, pkce_pair, single

TOKEN_URL = "http://localhost/oauth2/token"
USERINFO_URL = "http://localhost/oauth2/userInfo"
POOL = "us-east-1_Demo00001"
CONFIDENTIAL = ("confidential-app", "confidential-secret-value")


@pytest.fixture(scope="module")
def keys() -> SigningKeys:
    return SigningKeys.generate()


def make_client(keys: SigningKeys, **dpop: bool) -> FlaskClient:
    cheap = generate_password_hash("pw", method="pbkdf2:sha256:1000")
    confidential = ClientConfig(
        client_id=CONFIDENTIAL[0],
        client_secret=CONFIDENTIAL[1],
        callback_urls=(CALLBACK,),
        allowed_scopes=("openid", "email"),
    )
    settings = IdpSettings(
        keys=keys,
        auto_login="demo",
        demo_password="pw",
        users=(UserConfig("demo", cheap, "demo@example.com"),),
        clients=(confidential,),
        refresh_token_rotation=True,
        dpop=DpopSettings(**dpop),
    )
    return create_app(settings).test_client()


@pytest.fixture
def client(keys: SigningKeys) -> FlaskClient:
    return make_client(keys, enabled=True)


def code_request(client: FlaskClient, client_id: str = DEMO_CLIENT) -> dict[str, str]:
    verifier, challenge = pkce_pair()
    params = authorize_params(challenge, client_id=client_id)
    response = client.get("/oauth2/authorize?" + urlencode(params))
    assert response.status_code == 302, response.text
    return {
        "grant_type": "authorization_code",
        "client_id": client_id,
        "code": single(response.headers["Location"], "code"),
        "redirect_uri": CALLBACK,
        "code_verifier": verifier,
    }


def token(
    client: FlaskClient, data: dict[str, str], proof: str | None, **headers: str
) -> TestResponse:
    if proof is not None:
        headers["DPoP"] = proof
    return client.post("/oauth2/token", data=data, headers=headers)


def body(response: TestResponse) -> dict[str, Any]:
    return dict(response.json or {})


def test_discovery_advertises_es256_only_with_dpop(keys: SigningKeys) -> None:
    path = f"/{POOL}/.well-known/openid-configuration"
    on = body(make_client(keys, enabled=True).get(path))
    off = body(make_client(keys).get(path))
    assert on["dpop_signing_alg_values_supported"] == ["ES256"]
    assert "dpop_signing_alg_values_supported" not in off


def test_a_code_redeemed_with_a_proof_gives_bound_tokens(client: FlaskClient) -> None:
    key = DpopKey()
    response = token(client, code_request(client), key.proof("POST", TOKEN_URL))
    assert response.status_code == 200, response.text
    tokens = body(response)
    assert tokens["token_type"] == "DPoP"
    assert unverified_claims(tokens["access_token"])["cnf"] == {"jkt": key.jkt}


def test_without_a_proof_tokens_stay_bearer(client: FlaskClient) -> None:
    tokens = body(token(client, code_request(client), None))
    assert tokens["token_type"] == "Bearer"
    assert "cnf" not in unverified_claims(tokens["access_token"])


def test_without_dpop_a_proof_is_ignored(keys: SigningKeys) -> None:
    plain = make_client(keys)
    tokens = body(token(plain, code_request(plain), DpopKey().proof("POST", TOKEN_URL)))
    assert tokens["token_type"] == "Bearer"


@pytest.mark.parametrize(
    "overrides",
    [{"htu": "http://localhost/oauth2/authorize"}, {"htm": "GET"}, {"header_typ": "jwt"}],
)
def test_a_bad_proof_is_refused_and_the_code_is_not_spent(
    client: FlaskClient, overrides: dict[str, Any]
) -> None:
    key, data = DpopKey(), code_request(client)
    refused = token(client, data, key.proof("POST", TOKEN_URL, **overrides))
    assert refused.status_code == 400
    assert body(refused)["error"] == "invalid_dpop_proof"
    assert "access_token" not in refused.text and data["code"] not in refused.text
    assert token(client, data, key.proof("POST", TOKEN_URL)).status_code == 200


def test_a_replayed_proof_is_refused_at_the_token_endpoint(client: FlaskClient) -> None:
    proof = DpopKey().proof("POST", TOKEN_URL)
    assert token(client, code_request(client), proof).status_code == 200
    replayed = token(client, code_request(client), proof)
    assert (replayed.status_code, body(replayed)["error"]) == (400, "invalid_dpop_proof")


def test_a_public_clients_refresh_token_is_bound_to_the_key(client: FlaskClient) -> None:
    key = DpopKey()
    tokens = body(token(client, code_request(client), key.proof("POST", TOKEN_URL)))
    refresh = {"grant_type": "refresh_token", "client_id": DEMO_CLIENT}
    refresh["refresh_token"] = tokens["refresh_token"]
    for proof in (None, DpopKey().proof("POST", TOKEN_URL)):  # a thief without the key
        stolen = token(client, refresh, proof)
        assert (stolen.status_code, body(stolen)["error"]) == (400, "invalid_grant")
        assert "access_token" not in stolen.text
    renewed = token(client, refresh, key.proof("POST", TOKEN_URL))
    assert renewed.status_code == 200, renewed.text
    assert body(renewed)["token_type"] == "DPoP"
    assert unverified_claims(body(renewed)["access_token"])["cnf"] == {"jkt": key.jkt}
    rotated = {**refresh, "refresh_token": body(renewed)["refresh_token"]}
    assert token(client, rotated, DpopKey().proof("POST", TOKEN_URL)).status_code == 400


def test_a_confidential_clients_refresh_token_is_not_bound(client: FlaskClient) -> None:
    first = DpopKey()
    data = code_request(client, CONFIDENTIAL[0])
    response = client.post(
        "/oauth2/token",
        data=data,
        headers={"DPoP": first.proof("POST", TOKEN_URL)},
        auth=CONFIDENTIAL,
    )
    tokens = body(response)
    assert tokens["token_type"] == "DPoP"
    second = DpopKey()
    refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    renewed = client.post(
        "/oauth2/token",
        data=refresh,
        headers={"DPoP": second.proof("POST", TOKEN_URL)},
        auth=CONFIDENTIAL,
    )
    assert renewed.status_code == 200, renewed.text
    assert unverified_claims(body(renewed)["access_token"])["cnf"] == {"jkt": second.jkt}


def test_nonces_are_demanded_and_honoured(keys: SigningKeys) -> None:
    client = make_client(keys, enabled=True, require_nonce=True)
    key, data = DpopKey(), code_request(client)
    challenged = token(client, data, key.proof("POST", TOKEN_URL))
    assert (challenged.status_code, body(challenged)["error"]) == (400, "use_dpop_nonce")
    nonce = challenged.headers["DPoP-Nonce"]
    accepted = token(client, data, key.proof("POST", TOKEN_URL, nonce=nonce))
    assert accepted.status_code == 200, accepted.text
    assert accepted.headers["DPoP-Nonce"]
    assert body(accepted)["token_type"] == "DPoP"


def test_a_bound_token_is_refused_as_bearer_at_userinfo(client: FlaskClient) -> None:
    key = DpopKey()
    access = body(token(client, code_request(client), key.proof("POST", TOKEN_URL)))["access_token"]
    as_bearer = client.get("/oauth2/userInfo", headers={"Authorization": f"Bearer {access}"})
    assert as_bearer.status_code == 401
    assert "demo@example.com" not in as_bearer.text
    proof = key.proof("GET", USERINFO_URL, access_token=access)
    with_proof = client.get(
        "/oauth2/userInfo", headers={"Authorization": f"DPoP {access}", "DPoP": proof}
    )
    assert with_proof.status_code == 200, with_proof.text
    assert body(with_proof)["username"] == "demo"
    other_key = DpopKey().proof("GET", USERINFO_URL, access_token=access)
    stolen = client.get(
        "/oauth2/userInfo", headers={"Authorization": f"DPoP {access}", "DPoP": other_key}
    )
    assert stolen.status_code == 401
