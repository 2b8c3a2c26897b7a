"""``mcp-broker clients ...`` through argparse, as the CLI wires it."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import pytest

from broker.api.clients import ClientsFile
from broker.cli.clients import configure_clients_parser
from broker.errors import ConfigError
from broker.paths import BrokerPaths, broker_paths
from tests.broker.api.fakes import SERVER_A, SERVER_B


@pytest.fixture
def paths(tmp_path: Path) -> BrokerPaths:
    return broker_paths({"MCP_BROKER_HOME": str(tmp_path / "home")}).ensure_private_dirs()


class FakeBroker:
    def __init__(self, paths: BrokerPaths) -> None:
        self.paths = paths


def run(paths: BrokerPaths, *argv: str) -> tuple[int, str]:
    parser = argparse.ArgumentParser(prog="mcp-broker")
    configure_clients_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    out = io.StringIO()
    code = args.run(args, FakeBroker(paths), out)
    return code, out.getvalue()


def test_add_prints_the_secret_once_and_list_never_shows_it(paths: BrokerPaths) -> None:
    code, out = run(paths, "clients", "add", "cursor", "--resource", SERVER_A)
    secret = next(w for w in out.split() if w.startswith("mcpb_"))

    _, listing = run(paths, "clients", "list")

    assert code == 0
    assert "cursor" in listing and SERVER_A in listing and secret not in listing
    assert ClientsFile(paths.state_dir, paths.lock_dir).load()["cursor"].resources == (SERVER_A,)


def test_allow_remove_and_duplicate_names(paths: BrokerPaths) -> None:
    run(paths, "clients", "add", "agent")
    assert run(paths, "clients", "allow", "agent", SERVER_B)[0] == 0
    assert ClientsFile(paths.state_dir, paths.lock_dir).load()["agent"].allowed == {SERVER_B}
    with pytest.raises(ConfigError):
        run(paths, "clients", "add", "agent")
    with pytest.raises(ConfigError):
        run(paths, "clients", "add", "default")
    assert run(paths, "clients", "remove", "agent")[0] == 0
    assert run(paths, "clients", "remove", "agent")[0] == 1


def test_log_shows_the_audit_entries(paths: BrokerPaths) -> None:
    line = {"time": "t", "client": "agent", "resource": SERVER_A, "outcome": "granted", "count": 4}
    paths.audit_log.write_text(json.dumps(line) + "\n")

    _, text = run(paths, "clients", "log")
    _, raw = run(paths, "clients", "log", "--json")

    assert "agent" in text and "granted" in text and SERVER_A in text and "(x4)" in text
    assert json.loads(raw) == line
