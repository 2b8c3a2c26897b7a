"""Deeply nested TOML or JSON in any file the broker reads ends in a one-line error naming the
file (or, for a cache or a server's answer, is ignored like any other damage): never an uncaught
``RecursionError`` and its thousands of lines of traceback.
"""

from __future__ import annotations

import io
from pathlib import Path

import httpx2
import pytest

from broker import cli
from broker.api.endpoint import read_endpoint
from broker.errors import BrokerNotRunning
from broker.oauth.prm import handle_prm_response
from broker.paths import broker_paths
from broker.store.codec import CorruptEntry, decode_tokens
from broker.tokens.auth_servers import AuthServerCache
from broker.tokens.tokenset import TokenKey

DEPTH = 100_000
DEEP_JSON = "[" * DEPTH + "]" * DEPTH
DEEP_OBJECT = '{"a":' * DEPTH + "1" + "}" * DEPTH


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = cli.main(argv, out=io.StringIO())
    return code, capsys.readouterr().err


def assert_one_line_naming(err: str, path: Path) -> None:
    assert len(err.strip().splitlines()) == 1, err[:500]
    assert str(path) in err and "Traceback" not in err


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MCP_BROKER_HOME", str(tmp_path / "home"))
    broker_paths().ensure_private_dirs()
    return tmp_path / "home"


def test_a_deeply_nested_config_toml_is_a_one_line_config_error(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = broker_paths().config_file
    config.write_text("x = " + "[" * DEPTH + "]" * DEPTH + "\n")

    code, err = run_cli(["status"], capsys)

    assert code == 3
    assert_one_line_naming(err, config)
    assert "nested too deeply" in err


def test_a_deeply_nested_clients_json_is_a_one_line_config_error(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clients = broker_paths().state_dir / "clients.json"
    clients.write_text('{"clients": ' + DEEP_OBJECT + "}")
    clients.chmod(0o600)

    code, err = run_cli(["clients", "list"], capsys)

    assert code == 3
    assert_one_line_naming(err, clients)


def test_a_deeply_nested_mcp_client_config_is_left_unchanged_with_one_line(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mcp_json = tmp_path / "mcp.json"
    mcp_json.write_text(DEEP_OBJECT)
    (home / "config.toml").write_text('[[servers]]\nurl = "https://mcp.example/mcp"\n')

    code, err = run_cli(["configure", "cursor", "--file", str(mcp_json)], capsys)

    assert code == 3
    assert_one_line_naming(err, mcp_json)
    assert mcp_json.read_text() == DEEP_OBJECT


def test_deeply_nested_stack_outputs_are_a_one_line_config_error(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outputs = tmp_path / "outputs.json"
    outputs.write_text(DEEP_JSON)

    code, err = run_cli(
        ["add", "https://mcp.example/mcp", "--from-cloudformation", str(outputs)], capsys
    )

    assert code == 3
    assert_one_line_naming(err, outputs)


def test_a_deeply_nested_endpoint_json_means_no_usable_broker(home: Path) -> None:
    endpoint = broker_paths().state_dir / "endpoint.json"
    endpoint.write_text(DEEP_JSON[: 60 * 1024])
    endpoint.chmod(0o600)

    with pytest.raises(BrokerNotRunning, match="damaged"):
        read_endpoint(endpoint)


def test_deeply_nested_caches_stored_entries_and_server_answers_count_as_damaged(
    home: Path,
) -> None:
    state = broker_paths().state_dir
    cache = AuthServerCache(state)
    (state / "auth-servers.json").write_text(DEEP_OBJECT)
    assert cache.get("https://as.example", "generic") is None

    with pytest.raises(CorruptEntry):
        decode_tokens(DEEP_OBJECT, TokenKey("https://as.example", "c", "https://mcp.example"))

    answer = httpx2.Response(200, content=DEEP_OBJECT.encode())
    assert handle_prm_response(answer, "https://mcp.example/mcp") is None
