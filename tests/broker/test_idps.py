"""``[[idps]]`` in the config file, the assertion-grant server keys, and the JWT files of
workload identity (read anew on each use, refused without repeating their content)."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.config import Config, ServerConfig, dumps_config, load_config
from broker.errors import ConfigError
from broker.idps import IdpConfig
from broker.tokens.workload import read_jwt_file


def test_idps_and_enterprise_servers_survive_a_save(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    idp = IdpConfig("corp", "https://idp.example/t/", "broker", scopes=("email",))
    server = ServerConfig("https://mcp.example/mcp", client_id="ent", enterprise="corp")
    workload = ServerConfig("https://w.example/mcp", client_id="wl", workload_token_file="/t/j")
    path.write_text(dumps_config(Config(path, servers=(server, workload), idps=(idp,))))
    path.chmod(0o600)
    again = load_config(path)
    assert again.idps == (idp,) and again.get_idp("corp") == idp
    assert idp.issuer == "https://idp.example/t/"  # kept exactly: its metadata must match it
    assert idp.scopes == ("openid", "email")
    assert again.servers == (server, workload)
    assert server.assertion_grant and workload.assertion_grant


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"enterprise": "corp"}, "client_id"),
        ({"client_id": "x", "enterprise": "corp", "workload_token_file": "/f"}, "exclude"),
        ({"client_id": "x", "enterprise": "corp", "grant": "client_credentials"}, "exclude"),
        ({"client_id": "x", "enterprise": "no spaces"}, "idps"),
    ],
)
def test_inconsistent_assertion_servers_are_refused(fields: dict[str, str], error: str) -> None:
    with pytest.raises(ConfigError, match=error):
        ServerConfig("https://mcp.example/mcp", **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("entry", "error"),
    [
        ('name = "corp"\nissuer = "http://idp.example"\nclient_id = "b"', "https"),
        ('name = "a b"\nissuer = "https://idp.example"\nclient_id = "b"', "IdP name"),
        ('name = "corp"\nissuer = "https://idp.example"', "client_id"),
        ('name = "c"\nissuer = "https://i.example"\nclient_id = "b"\nsecret = "x"', "unknown"),
    ],
)
def test_bad_idp_entries_name_the_file(tmp_path: Path, entry: str, error: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(f"[[idps]]\n{entry}\n")
    path.chmod(0o600)
    with pytest.raises(ConfigError, match=error) as caught:
        load_config(path)
    assert str(path) in str(caught.value)


def test_a_workload_jwt_is_read_anew_and_a_bad_file_is_not_repeated(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("aaa.bbb.ccc\n")
    assert read_jwt_file(str(path), "workload token") == "aaa.bbb.ccc"
    path.write_text("ddd.eee.fff")  # the environment renewed it
    assert read_jwt_file(str(path), "workload token") == "ddd.eee.fff"
    path.write_text("CANARY-not-a-jwt")
    with pytest.raises(ConfigError, match="does not hold a JWT") as caught:
        read_jwt_file(str(path), "workload token")
    assert "CANARY" not in str(caught.value)
    with pytest.raises(ConfigError, match="cannot read"):
        read_jwt_file(str(tmp_path / "missing"), "workload token")
