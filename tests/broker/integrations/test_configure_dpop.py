"""``mcp-broker configure`` for a server whose tokens are DPoP-bound (RFC 9449): the token API,
and so Claude Code's headers helper, refuses them, so such a server gets the bridge (with a
one-line note where the helper was the default), and an explicit ``--via helper`` for it is
refused before any file is written. The broker says which servers those are (stored tokens,
``dpop = true``, the kept metadata); without one, the config file and the metadata decide."""

from __future__ import annotations

import argparse
import io
import json
import shlex
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from broker.cli import LazyBroker, main
from broker.config import ServerConfig, add_server
from broker.errors import ConfigError, StorageError
from broker.integrations.clientconfigs import default_entry_name
from broker.integrations.configure import configure_configure_parser
from broker.oauth.as_metadata import AuthServer
from broker.oauth.providers import GENERIC
from broker.paths import broker_paths
from broker.tokens.auth_servers import AuthServerCache
from tests.broker.integrations.test_configure import OTHER_URL, SCRIPT, URL, client_file, home

__all__ = ["home"]  # the fixture

ISSUER = "https://as.example/issuer"


class FakeBroker:
    """What ``configure`` asks a broker: which servers' tokens are DPoP-bound."""

    def __init__(self, bound: frozenset[str] = frozenset(), fail: bool = False) -> None:
        self.bound = bound
        self.fail = fail
        self.asked = 0

    def dpop_servers(self) -> frozenset[str]:
        self.asked += 1
        if self.fail:
            raise StorageError("No usable OS keyring")
        return self.bound

    def close(self) -> None:
        pass


def configure(*argv: str, broker: FakeBroker | None = None) -> tuple[int, str]:
    parser = argparse.ArgumentParser(prog="mcp-broker")
    configure_configure_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["configure", *argv])
    out: list[str] = []
    stream = SimpleNamespace(write=out.append, flush=lambda: None)
    lazy = LazyBroker(lambda: broker) if broker is not None else None
    code: int = args.run(args, lazy, stream)
    return code, "".join(out)


def broker_home(home: Path) -> Path:
    return home.parent / "broker"


def set_dpop(home: Path, url: str, **fields: Any) -> None:
    root = broker_home(home)
    add_server(root / "config.toml", root / "locks", ServerConfig(url=url, **fields))


def claude_servers(home: Path) -> dict[str, Any]:
    servers: dict[str, Any] = json.loads(client_file(home, "claude-code").read_bytes())[
        "mcpServers"
    ]
    return servers


def kinds(home: Path) -> dict[str, str]:
    servers = claude_servers(home)
    return {url: servers[default_entry_name(url)]["type"] for url in (URL, OTHER_URL)}


def test_a_server_set_to_dpop_gets_the_bridge_in_claude_code_with_a_note(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    set_dpop(home, URL, dpop=True)
    code, out = configure("claude-code")
    assert code == 0
    assert kinds(home) == {URL: "stdio", OTHER_URL: "http"}  # the other keeps its helper
    entry = claude_servers(home)[default_entry_name(URL)]
    assert [entry["command"], *entry["args"]] == [str(SCRIPT), "connect", URL]
    notes = [line for line in capsys.readouterr().err.splitlines() if "DPoP-bound" in line]
    assert notes == [
        f"mcp-broker: note: Claude Code gets the bridge (mcp-broker connect) for {URL}, not a "
        "headers helper: its tokens are DPoP-bound, which the token API refuses"
    ]
    assert "Claude Code: added" in out


def test_an_explicit_helper_for_a_dpop_server_is_refused_and_nothing_is_written(
    home: Path,
) -> None:
    set_dpop(home, URL, dpop=True)
    with pytest.raises(ConfigError) as refused:
        configure("claude-code", "--server", URL, "--via", "helper")
    message = str(refused.value)
    assert message.startswith(f"{URL} has DPoP-bound tokens (RFC 9449)")
    assert "--via connect" in message and "--server" not in message
    with pytest.raises(ConfigError, match="name the other servers with --server URL"):
        configure("claude-code", "--via", "helper")  # every server, one of them DPoP
    assert not client_file(home, "claude-code").exists()
    assert configure("claude-code", "--server", OTHER_URL, "--via", "helper")[0] == 0
    assert "headersHelper" in claude_servers(home)[default_entry_name(OTHER_URL)]


def test_the_stored_tokens_are_asked_of_the_broker_only_for_a_helper(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broker = FakeBroker(frozenset({OTHER_URL}))
    assert configure("claude-code", broker=broker)[0] == 0
    assert kinds(home) == {URL: "http", OTHER_URL: "stdio"}
    assert broker.asked == 1 and OTHER_URL in capsys.readouterr().err
    (home / ".cursor").mkdir()
    assert configure("cursor", broker=broker)[0] == 0  # the bridge anyway: nothing to ask
    assert configure("claude-code", "--via", "connect", broker=broker)[0] == 0
    assert configure("claude-code", "--remove", broker=broker)[0] == 0
    assert broker.asked == 1


def test_without_the_keyring_the_config_and_the_kept_metadata_decide(home: Path) -> None:
    cache = AuthServerCache(broker_paths().ensure_private_dirs().state_dir)
    cache.put(
        AuthServer(
            ISSUER,
            f"{ISSUER}/authorize",
            f"{ISSUER}/token",
            GENERIC,
            dpop_signing_alg_values_supported=("ES256",),
        )
    )
    set_dpop(home, OTHER_URL, client_id="c", issuer=ISSUER)  # its AS offers DPoP
    broker = FakeBroker(fail=True)
    assert configure("claude-code", broker=broker)[0] == 0
    assert broker.asked == 1 and kinds(home) == {URL: "http", OTHER_URL: "stdio"}
    set_dpop(home, OTHER_URL, client_id="c", issuer=ISSUER, dpop=False)  # opted out
    assert configure("claude-code")[0] == 0
    assert kinds(home) == {URL: "http", OTHER_URL: "http"}


def test_print_shows_the_bridge_entry_for_a_dpop_server(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    set_dpop(home, URL, dpop=True)
    code, out = configure("claude-code", "--server", URL, "--print")
    assert code == 0 and not client_file(home, "claude-code").exists()
    entry = json.loads(out)["mcpServers"][default_entry_name(URL)]
    assert entry["type"] == "stdio" and entry["args"] == ["connect", URL]
    err = capsys.readouterr().err
    assert "DPoP-bound" in err
    (or_line,) = [line for line in err.splitlines() if line.startswith("# or: ")]
    assert json.loads(shlex.split(or_line)[-1])["type"] == "stdio"


def test_configure_all_refuses_an_explicit_helper_before_writing_any_client(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "no-programs"))
    (home / ".claude").mkdir()
    (home / ".cursor").mkdir()
    set_dpop(home, URL, dpop=True)
    with pytest.raises(ConfigError, match="DPoP-bound"):
        configure("all", "--via", "helper")
    assert not client_file(home, "claude-code").exists()
    assert not client_file(home, "cursor").exists()
    assert configure("all")[0] == 0
    assert kinds(home) == {URL: "stdio", OTHER_URL: "http"}


def test_the_command_builds_the_broker_only_when_it_asks(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "no-programs"))
    built: list[FakeBroker] = []

    def factory(_args: argparse.Namespace) -> FakeBroker:
        built.append(FakeBroker(frozenset({URL})))
        return built[-1]

    for argv in (["--detect"], ["cursor"], ["claude-code", "--via", "connect"]):
        assert main(["configure", *argv], broker_factory=factory, out=io.StringIO()) == 0
    assert built == []
    assert main(["configure", "claude-code"], broker_factory=factory, out=io.StringIO()) == 0
    assert len(built) == 1 and kinds(home) == {URL: "stdio", OTHER_URL: "http"}
