"""``--config``: users, app clients, resource servers and keys from TOML or JSON."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from urllib.parse import urlencode

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc import jwt
from joserfc.jwk import KeySet

from demo_server.cli import build_parser
from demo_server.idp import create_app
from demo_server.idp.command import run, settings_from_args
from demo_server.idp.config_file import ConfigError, load_config
from tests.support.idp_flow import csrf_from, single

APP_CALLBACK = "http://127.0.0.1:8080/callback"
OTHER_SERVER = "http://127.0.0.1:8001/mcp"

TOML = f"""
[[users]]
username = "alice"
password = "alice-password"
email = "alice@example.com"
groups = ["admins"]

[[clients]]
client_id = "web-app"
client_secret = "web-app-secret"
callback_urls = ["{APP_CALLBACK}"]
allowed_scopes = ["openid", "{OTHER_SERVER}/read"]

[[clients]]
client_id = "cli-app"
callback_urls = ["http://127.0.0.1:8081/callback"]

[[resource_servers]]
identifier = "{OTHER_SERVER}"
scopes = ["read"]

[keys]
access_key_pem = "access.pem"
id_key_pem = "id.pem"
"""


def write_pem(path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


@pytest.fixture(scope="module")
def config_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("idp-config")
    write_pem(folder / "access.pem")
    write_pem(folder / "id.pem")
    (folder / "idp.toml").write_text(TOML)
    return folder


def parse(*argv: str) -> object:
    return build_parser().parse_args(["idp", *argv])


def test_toml_config_adds_users_clients_resource_servers_and_keys(config_dir: Path) -> None:
    settings = settings_from_args(parse("--config", str(config_dir / "idp.toml")))  # type: ignore[arg-type]
    assert [rs.identifier for rs in settings.resource_servers] == [
        "http://127.0.0.1:8000/mcp",
        OTHER_SERVER,
    ]
    cli_app = next(c for c in settings.clients if c.client_id == "cli-app")
    assert cli_app.client_secret is None
    assert f"{OTHER_SERVER}/read" in cli_app.allowed_scopes
    assert "http://127.0.0.1:8000/mcp/tools" in cli_app.allowed_scopes
    assert settings.keys is not None and settings.keys.access.kid == "access-key"
    alice = next(u for u in settings.users if u.username == "alice")
    assert "alice-password" not in alice.password_hash


def test_configured_confidential_client_and_user_sign_in(config_dir: Path) -> None:
    settings = settings_from_args(parse("--config", str(config_dir / "idp.toml")))  # type: ignore[arg-type]
    app = create_app(settings)
    client = app.test_client()
    params = {
        "response_type": "code",
        "client_id": "web-app",
        "redirect_uri": APP_CALLBACK,
        "state": "s1",
        "scope": f"openid {OTHER_SERVER}/read",
        "resource": OTHER_SERVER,
    }
    login_url = client.get("/oauth2/authorize?" + urlencode(params)).headers["Location"]
    form = client.get(login_url)
    posted = client.post(
        login_url,
        data={
            "csrf_token": csrf_from(form.text),
            "username": "alice",
            "password": "alice-password",
        },
    )
    code = single(client.get(posted.headers["Location"]).headers["Location"], "code")
    basic = base64.b64encode(b"web-app:web-app-secret").decode()
    response = client.post(
        "/oauth2/token",
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": APP_CALLBACK},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert response.status_code == 200, response.text
    jwks = client.get(f"/{settings.pool_id}/.well-known/jwks.json").json
    keyset = KeySet.import_key_set(jwks)  # type: ignore[arg-type]
    token = jwt.decode(response.json["access_token"], keyset)  # type: ignore[index]
    assert token.header["kid"] == "access-key"
    assert token.claims["aud"] == OTHER_SERVER
    assert token.claims["cognito:groups"] == ["admins"]
    assert token.claims["username"] == "alice"


def test_json_config_is_read_too(tmp_path: Path) -> None:
    path = tmp_path / "idp.json"
    path.write_text(
        json.dumps(
            {
                "users": [{"username": "bob", "password": "pw", "email": "bob@example.com"}],
                "resource_servers": [{"identifier": OTHER_SERVER}],
            }
        )
    )
    config = load_config(path)
    assert [u.username for u in config.users] == ["bob"]
    assert config.resource_servers[0].full_scopes() == (
        f"{OTHER_SERVER}/tools",
        f"{OTHER_SERVER}/admin",
    )


@pytest.mark.parametrize(
    "content",
    [
        "users = 5",
        "[[users]]\nusername = 'x'",
        "[[clients]]\nclient_id = 'x'",
        "[[clients]]\nclient_id = 'x'\ncallback_urls = 'http://127.0.0.1/cb'",
        "[[clients]]\nclient_id = 'x'\nclient_secret = 3\ncallback_urls = ['http://127.0.0.1/cb']",
        "[keys]\naccess_key_pem = 'missing.pem'\nid_key_pem = 'missing.pem'",
        "not toml at all [",
    ],
)
def test_bad_config_is_refused_with_exit_code_2(
    tmp_path: Path, content: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(content)
    with pytest.raises(ConfigError):
        load_config(path)
    assert run(parse("--port", "0", "--config", str(path))) == 2  # type: ignore[arg-type]
    assert "mcp-demo-server idp:" in capsys.readouterr().err


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10"])
def test_cli_refuses_a_non_loopback_host(host: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(parse("--host", host, "--port", "0")) == 2  # type: ignore[arg-type]
    assert "127.0.0.1" in capsys.readouterr().err
