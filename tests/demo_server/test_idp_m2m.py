"""Cognito M2M in the local authorization server: the seeded confidential client ``demo-m2m`` and
the client_credentials grant (RFC 6749 §4.4), through Flask's test client."""

from __future__ import annotations

import base64
import logging
from typing import Any

import pytest
from flask.testing import FlaskClient
from joserfc import jwt
from joserfc.jwk import KeySet
from werkzeug.security import generate_password_hash

from demo_server.idp import ClientConfig, IdpSettings, UserConfig, create_app
from demo_server.idp.config_file import ConfigError, load_config
from demo_server.idp.keys import SigningKeys
from demo_server.idp.settings import M2M_CLIENT_ID
from tests.support.idp_flow import MCP_RESOURCE

POOL = "us-east-1_Demo00001"
SECRET = "m2m-secret-canary-7f3a9c"
TOOLS, ADMIN = f"{MCP_RESOURCE}/tools", f"{MCP_RESOURCE}/admin"


@pytest.fixture(scope="module")
def keys() -> SigningKeys:
    return SigningKeys.generate()


def make_client(keys: SigningKeys, **overrides: Any) -> FlaskClient:
    cheap = generate_password_hash("pw", method="pbkdf2:sha256:1000")
    settings = IdpSettings(
        demo_password="pw",
        m2m_secret=SECRET,
        keys=keys,
        users=(UserConfig("demo", cheap, "demo@example.com"),),
        **overrides,
    )
    return create_app(settings).test_client()


@pytest.fixture
def client(keys: SigningKeys) -> FlaskClient:
    return make_client(keys)


def basic(client_id: str, secret: str) -> dict[str, str]:
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def cc(client: FlaskClient, data: dict[str, str] | None = None, **headers: str) -> Any:
    body = {"grant_type": "client_credentials", **(data or {})}
    return client.post("/oauth2/token", data=body, headers=headers or basic(M2M_CLIENT_ID, SECRET))


def claims_of(client: FlaskClient, token: str) -> dict[str, Any]:
    keyset = KeySet.import_key_set(client.get(f"/{POOL}/.well-known/jwks.json").json)  # type: ignore[arg-type]
    return dict(jwt.decode(token, keyset, algorithms=["RS256"]).claims)


def test_client_secret_basic_gets_an_access_token_only_with_cognito_m2m_claims(
    client: FlaskClient,
) -> None:
    response = cc(client)

    assert response.status_code == 200, response.text
    body = response.json
    assert set(body) == {"access_token", "token_type", "expires_in"}  # no refresh, no ID token
    claims = claims_of(client, body["access_token"])
    assert claims["client_id"] == M2M_CLIENT_ID and claims["sub"] == M2M_CLIENT_ID
    assert claims["token_use"] == "access"
    assert claims["scope"].split() == [TOOLS, ADMIN]  # none asked: all its custom scopes
    assert "username" not in claims and "cognito:groups" not in claims and "aud" not in claims
    assert response.headers["Cache-Control"] == "no-store"


def test_client_secret_post_works_too_and_scope_narrows(client: FlaskClient) -> None:
    data = {"client_id": M2M_CLIENT_ID, "client_secret": SECRET, "scope": TOOLS}
    response = client.post("/oauth2/token", data={"grant_type": "client_credentials", **data})

    assert response.status_code == 200, response.text
    assert claims_of(client, response.json["access_token"])["scope"] == TOOLS


def test_resource_binds_the_audience(client: FlaskClient) -> None:
    response = cc(client, {"resource": MCP_RESOURCE})

    assert response.status_code == 200, response.text
    assert claims_of(client, response.json["access_token"])["aud"] == MCP_RESOURCE


def test_an_unknown_resource_is_invalid_target(client: FlaskClient) -> None:
    response = cc(client, {"resource": "http://127.0.0.1:1/elsewhere"})

    assert response.status_code == 400 and response.json["error"] == "invalid_target"


@pytest.mark.parametrize("scope", ["openid", "email", f"{TOOLS} openid", "http://x/other"])
def test_only_custom_resource_server_scopes_are_granted(client: FlaskClient, scope: str) -> None:
    response = cc(client, {"scope": scope})

    assert response.status_code == 400
    assert response.json["error"] == "invalid_scope"
    assert "access_token" not in response.json


@pytest.mark.parametrize("secret", ["wrong", "", SECRET + "x"])
def test_a_wrong_secret_is_invalid_client_and_not_echoed(
    client: FlaskClient, secret: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    response = cc(client, Authorization=basic(M2M_CLIENT_ID, secret)["Authorization"])

    assert response.status_code == 401 and response.json["error"] == "invalid_client"
    assert SECRET not in response.text and SECRET not in caplog.text


def test_no_token_or_secret_is_logged(
    client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    token = cc(client).json["access_token"]

    assert token not in caplog.text and SECRET not in caplog.text


@pytest.mark.parametrize(
    "data",
    [
        {"grant_type": "authorization_code", "code": "x", "redirect_uri": "http://x"},
        {"grant_type": "refresh_token", "refresh_token": "x"},
    ],
)
def test_the_m2m_client_may_use_no_other_grant(client: FlaskClient, data: dict[str, str]) -> None:
    response = client.post("/oauth2/token", data=data, headers=basic(M2M_CLIENT_ID, SECRET))

    assert response.status_code == 400
    assert response.json["error"] == "unauthorized_client"


def test_the_m2m_client_cannot_start_a_browser_sign_in(client: FlaskClient) -> None:
    query = "response_type=code&client_id=demo-m2m&redirect_uri=http://127.0.0.1:53682/callback"

    response = client.get(f"/oauth2/authorize?{query}&state=s&code_challenge=x")

    assert response.status_code == 400  # an error page: no registered redirect to send it to
    assert "Location" not in response.headers


def test_a_public_client_may_not_use_client_credentials(client: FlaskClient) -> None:
    response = client.post(
        "/oauth2/token", data={"grant_type": "client_credentials", "client_id": "demo-broker"}
    )

    assert response.status_code == 400 and response.json["error"] == "unauthorized_client"


def test_the_secret_is_random_per_start_unless_given(keys: SigningKeys) -> None:
    first = IdpSettings(keys=keys).resolved()
    second = IdpSettings(keys=keys).resolved()
    given = IdpSettings(keys=keys, m2m_secret=SECRET).resolved()

    assert first.m2m_secret and second.m2m_secret and first.m2m_secret != second.m2m_secret
    assert len(first.m2m_secret) >= 32
    assert given.m2m_secret == SECRET
    (m2m,) = [c for c in given.clients if c.client_id == M2M_CLIENT_ID]
    assert m2m.client_secret == SECRET and m2m.allowed_flows == ("client_credentials",)


def test_a_configured_client_may_be_machine_only(keys: SigningKeys, tmp_path: Any) -> None:
    file = tmp_path / "idp.toml"
    file.write_text(
        '[[clients]]\nclient_id = "ci-bot"\nclient_secret = "s"\n'
        'allowed_flows = ["client_credentials"]\n'
        f'allowed_scopes = ["{TOOLS}"]\n'
    )
    config = load_config(file)
    client = make_client(keys, clients=config.clients)

    response = cc(client, Authorization=basic("ci-bot", "s")["Authorization"])

    assert response.status_code == 200, response.text
    assert claims_of(client, response.json["access_token"])["client_id"] == "ci-bot"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('allowed_flows = ["client_credentials"]\n', "needs a client_secret"),
        ('client_secret = "s"\nallowed_flows = ["password"]\n', "unknown allowed_flows"),
        ('client_secret = "s"\nallowed_flows = ["code"]\n', "needs callback_urls"),
    ],
)
def test_config_refuses_impossible_machine_clients(tmp_path: Any, body: str, message: str) -> None:
    file = tmp_path / "idp.toml"
    file.write_text(f'[[clients]]\nclient_id = "c"\n{body}')

    with pytest.raises(ConfigError, match=message):
        load_config(file)


def test_a_config_client_with_the_seeded_name_replaces_the_seed(keys: SigningKeys) -> None:
    own = ClientConfig(M2M_CLIENT_ID, (), (TOOLS,), "mine", ("client_credentials",))
    client = make_client(keys, clients=(own,))

    assert cc(client).status_code == 401  # the seeded secret no longer works
    ok = cc(client, Authorization=basic(M2M_CLIENT_ID, "mine")["Authorization"])
    assert ok.status_code == 200 and claims_of(client, ok.json["access_token"])["scope"] == TOOLS
