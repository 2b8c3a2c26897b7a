"""The broker's TOML config: loading with clear errors, atomic saves, precedence."""

from __future__ import annotations

import logging
import stat
import tomllib
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.config import (
    Config,
    ServerConfig,
    add_server,
    config_path,
    dumps_config,
    get_server,
    load_config,
    remove_server,
    replacing,
    resolve_settings,
    save_config,
    toml_string,
)
from broker.errors import ConfigError
from broker.paths import broker_paths

CANARY = "CANARY-config-c0ff"
FULL = ServerConfig(
    url="https://MCP.Example.com:443/mcp/",
    client_id="abc",
    provider="cognito",
    callback_ports=(53682, 53683),
    send_resource=False,
    scopes=("openid", "mcp/read"),
    issuer="https://cognito-idp.us-east-1.amazonaws.com/us-east-1_X",
)


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    return tmp_path / "config.toml"


@pytest.fixture
def locks(tmp_path: Path) -> Path:
    return tmp_path / "locks"


def test_missing_file_is_an_empty_config(cfg: Path) -> None:
    config = load_config(cfg)
    assert config.servers == ()
    assert not cfg.exists()


def test_servers_round_trip_through_the_file(cfg: Path, locks: Path) -> None:
    add_server(cfg, locks, FULL)
    add_server(cfg, locks, ServerConfig(url="http://127.0.0.1:8000/mcp"))
    loaded = load_config(cfg)
    assert loaded.servers == (FULL, ServerConfig(url="http://127.0.0.1:8000/mcp"))
    assert loaded.servers[0].url == "https://mcp.example.com/mcp"  # canonical
    assert stat.S_IMODE(cfg.stat().st_mode) == 0o600


def test_defaults_of_a_minimal_server(cfg: Path) -> None:
    cfg.write_text('[[servers]]\nurl = "https://mcp.example/mcp"\n')
    server = load_config(cfg).servers[0]
    assert server.send_resource is True
    assert server.provider == "auto" and server.profile_name is None
    assert server.callback_ports == (53682, 53683, 53684)
    assert server.client_id is None and server.scopes is None and server.issuer is None


def test_add_replaces_same_url_and_remove_and_get(cfg: Path, locks: Path) -> None:
    add_server(cfg, locks, FULL)
    add_server(cfg, locks, ServerConfig(url="https://mcp.example.com/mcp", client_id="new"))
    found = get_server(cfg, "https://mcp.example.com/mcp/")
    assert found is not None and found.client_id == "new"
    assert len(load_config(cfg).servers) == 1
    remove_server(cfg, locks, "https://MCP.example.com/mcp")
    assert get_server(cfg, FULL.url) is None


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[[servers]\nurl = 1", "not valid TOML"),
        ("\xff\xfe", "not valid TOML"),
        ('[[servers]]\nurl = "ftp://x"', "servers[0]"),
        ('[[servers]]\nclient_id = "x"', "has no url"),
        ('[[servers]]\nurl = "https://a"\ncallback_ports = [0]', "callback_ports"),
        ('[[servers]]\nurl = "https://a"\ncallback_ports = "53682"', "callback_ports"),
        ('[[servers]]\nurl = "https://a"\nsend_resource = "no"', "send_resource"),
        ('[[servers]]\nurl = "https://a"\nprovider = "okta"', "provider"),
        ('[[servers]]\nurl = "https://a"\nscopes = ["a b"]', "scopes"),
        ('[[servers]]\nurl = "https://a"\nsend_resouce = true', "unknown key(s): send_resouce"),
        ('[[servers]]\nurl = "https://a"\n[[servers]]\nurl = "https://A/"', "repeats"),
        ('servers = "x"', "array of tables"),
        ("[broker]\nkeyring_timeout = -1", "keyring_timeout"),
        ('[broker]\nlog_level = "LOUD"', "log_level"),
        ('[broker]\ncolour = "red"', "unknown key(s): colour"),
    ],
)
def test_bad_files_raise_a_clear_error_and_are_not_overwritten(
    cfg: Path, locks: Path, text: str, problem: str
) -> None:
    cfg.write_bytes(text.encode("latin-1"))
    with pytest.raises(ConfigError) as bad:
        load_config(cfg)
    assert str(cfg) in str(bad.value) and problem in str(bad.value)
    with pytest.raises(ConfigError):
        add_server(cfg, locks, ServerConfig(url="https://other.example"))
    assert cfg.read_bytes() == text.encode("latin-1")


def test_client_secret_in_the_file_is_read_with_a_warning_and_never_shown(
    cfg: Path, locks: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    cfg.write_text(f'[[servers]]\nurl = "https://a.example"\nclient_secret = "{CANARY}"\n')
    server = load_config(cfg).servers[0]
    assert server.client_secret == CANARY
    assert "keyring" in caplog.text and CANARY not in caplog.text
    assert CANARY not in repr(server) and CANARY not in repr(load_config(cfg))
    add_server(cfg, locks, ServerConfig(url="https://b.example"))
    assert CANARY in cfg.read_text()  # a hand-written secret is never silently dropped


def test_precedence_is_argument_then_environment_then_file_then_default(cfg: Path) -> None:
    cfg.write_text('[broker]\nlog_level = "warning"\nkeyring_timeout = 5\n')
    config = load_config(cfg)
    env = {"MCP_BROKER_KEYRING_TIMEOUT": "7.5", "MCP_BROKER_LOG_LEVEL": "debug"}
    assert resolve_settings(config, {}).log_level == "WARNING"  # file
    assert resolve_settings(config, {}).keyring_timeout == 5.0
    assert resolve_settings(config, {}).api_port == 0  # default
    assert resolve_settings(config, env).keyring_timeout == 7.5  # environment over file
    assert resolve_settings(config, env, keyring_timeout=2).keyring_timeout == 2.0  # argument
    assert resolve_settings(config, env, keyring_timeout=None).log_level == "DEBUG"
    with pytest.raises(ConfigError, match="MCP_BROKER_API_PORT"):
        resolve_settings(config, {"MCP_BROKER_API_PORT": "eighty"})


def test_config_path_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = broker_paths({"MCP_BROKER_HOME": str(tmp_path)})
    monkeypatch.delenv("MCP_BROKER_CONFIG", raising=False)
    assert config_path(paths) == tmp_path / "config.toml"
    monkeypatch.setenv("MCP_BROKER_CONFIG", str(tmp_path / "env.toml"))
    assert config_path(paths) == tmp_path / "env.toml"
    assert config_path(paths, tmp_path / "arg.toml") == tmp_path / "arg.toml"


def test_saved_settings_survive(cfg: Path) -> None:
    save_config(Config(cfg, {"log_level": "DEBUG", "keyring_timeout": 2.5}, (FULL,)))
    loaded = load_config(cfg)
    assert loaded.settings == {"log_level": "DEBUG", "keyring_timeout": 2.5}
    assert loaded.servers == (FULL,)


@given(st.text(alphabet=st.characters(exclude_categories=("Cs",))))
def test_any_string_is_written_as_valid_toml(text: str) -> None:
    assert tomllib.loads(f"k = {toml_string(text)}")["k"] == text


def test_written_file_says_where_secrets_belong(cfg: Path) -> None:
    assert "keyring" in dumps_config(Config(cfg, {}, (FULL,))).splitlines()[0]


@pytest.mark.parametrize("dpop", [True, False, None])
def test_the_dpop_choice_round_trips_and_must_be_a_boolean(
    cfg: Path, locks: Path, dpop: bool | None
) -> None:
    add_server(cfg, locks, ServerConfig(url="https://mcp.example/mcp", dpop=dpop))
    assert load_config(cfg).servers[0].dpop is dpop
    assert ("dpop" in cfg.read_text()) is (dpop is not None)  # unset: decided per sign-in
    cfg.write_text('[[servers]]\nurl = "https://mcp.example/mcp"\ndpop = "yes"\n')
    with pytest.raises(ConfigError, match="dpop must be true or false"):
        load_config(cfg)


# -- replacing: what a change of a server's settings keeps ---------------------------------------

_PINNED = ServerConfig(
    "https://mcp.example/mcp",
    client_id="app-1",
    issuer="https://as.example",
    client_metadata_url="https://me.example/client.json",
    resource_name="Example",
)


def test_replacing_keeps_what_the_change_leaves_out() -> None:
    wanted = ServerConfig("https://mcp.example/mcp", scopes=("mcp/read",), provider="cognito")

    new = replacing(_PINNED, wanted)

    assert (new.client_id, new.issuer, new.scopes, new.provider) == (
        "app-1",
        "https://as.example",
        ("mcp/read",),
        "cognito",
    )
    assert new.client_metadata_url == "https://me.example/client.json"
    assert new.resource_name == "Example"


@pytest.mark.parametrize(
    "wanted",
    [
        ServerConfig("https://mcp.example/mcp", client_id="app-2"),
        ServerConfig("https://mcp.example/mcp", send="id-token"),
    ],
    ids=["another-client", "another-token"],
)
def test_replacing_forgets_the_issuer_when_the_sign_in_no_longer_fits(
    wanted: ServerConfig,
) -> None:
    assert replacing(_PINNED, wanted).issuer is None
    assert replacing(_PINNED, ServerConfig(_PINNED.url), reset_issuer=True).issuer is None
    assert replacing(_PINNED, ServerConfig(_PINNED.url, client_id="app-1")).issuer == (
        "https://as.example"
    )


def test_replacing_forgets_a_registered_client_with_its_issuer() -> None:
    registered = ServerConfig(
        "https://mcp.example/mcp", client_id="dcr-1", issuer="https://as.example",
        client_registered=True,
    )  # fmt: skip

    kept = replacing(registered, ServerConfig(registered.url, scopes=("x",)))
    reset = replacing(registered, ServerConfig(registered.url), reset_issuer=True)

    assert (kept.client_id, kept.client_registered, kept.issuer) == (
        "dcr-1",
        True,
        "https://as.example",
    )
    assert (reset.client_id, reset.client_registered, reset.issuer) == (None, None, None)


def test_replacing_nothing_is_the_wanted_server() -> None:
    wanted = ServerConfig("https://mcp.example/mcp", client_id="x")
    assert replacing(None, wanted) is wanted


def test_replacing_keeps_a_hand_written_secret_with_its_client_only() -> None:
    confidential = replace(_PINNED, client_secret="CANARY-typed-secret")

    kept = replacing(confidential, ServerConfig(_PINNED.url, scopes=("x",)))
    moved = replacing(confidential, ServerConfig(_PINNED.url, client_id="app-2"))

    assert kept.client_secret == "CANARY-typed-secret"
    assert moved.client_secret is None
