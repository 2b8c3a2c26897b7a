"""``mcp-broker idp ...`` and ``add --enterprise / --workload-token-file`` on a real broker (config
file, token service) with an in-memory keyring and no network: the secret goes to the keyring
only, the config is what the user asked for, and an IdP in use cannot be removed."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import httpx2
import pytest

from broker import cli
from broker.config import machine_credential_owner
from broker.errors import ServerUnreachable
from broker.paths import broker_paths
from broker.root import build
from broker.store.memory import MemoryTokenStore

SECRET = "CANARY-idp-secret"
URL = "https://mcp.example/mcp"


class Harness:
    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("MCP_BROKER_HOME", str(tmp_path / "home"))
        monkeypatch.delenv("MCP_BROKER_CONFIG", raising=False)
        self.store = MemoryTokenStore()
        self.monkeypatch = monkeypatch
        self.home = tmp_path / "home"

    def factory(self, args: Any) -> Any:
        paths = broker_paths()
        return build(paths, paths.config_file, store=self.store, send=self.offline).broker

    @staticmethod
    def offline(request: httpx2.Request) -> httpx2.Response:
        raise ServerUnreachable("no network in this test")

    def run(self, *argv: str, stdin: str = "") -> tuple[int, str]:
        self.monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        out = io.StringIO()
        code = cli.main(list(argv), broker_factory=self.factory, out=out)
        return code, out.getvalue()

    def config(self) -> str:
        return (self.home / "config.toml").read_text()


@pytest.fixture
def harness(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Harness:
    return Harness(tmp_path, monkeypatch)


def test_idp_add_keeps_the_secret_in_the_keyring_and_lists_the_idp(harness: Harness) -> None:
    code, out = harness.run(
        "idp", "add", "corp", "--issuer", "https://idp.example", "--client-id", "b",
        "--client-secret", "--scope", "email", stdin=SECRET + "\n",
    )  # fmt: skip
    assert code == 0 and "mcp-broker idp login corp" in out
    assert harness.store.get_client_secret("https://idp.example", "b") == SECRET
    assert SECRET not in harness.config() and 'name = "corp"' in harness.config()
    code, out = harness.run("idp", "list", "--json")
    (row,) = json.loads(out)["idps"]
    assert row["name"] == "corp" and row["scopes"] == ["openid", "email"]
    assert row["state"] == "signed_out" and row["servers"] == []
    assert SECRET not in out


def test_an_enterprise_server_needs_a_known_idp_and_keeps_its_secret_in_the_keyring(
    harness: Harness,
) -> None:
    with pytest.raises(SystemExit):  # usage: --enterprise needs --client-id
        harness.run("add", URL, "--enterprise", "corp")
    code, _ = harness.run("add", URL, "--enterprise", "corp", "--client-id", "ent")
    assert code == 3  # no such IdP
    harness.run("idp", "add", "corp", "--issuer", "https://idp.example", "--client-id", "b")
    code, out = harness.run(
        "add", URL, "--enterprise", "corp", "--client-id", "ent", stdin=SECRET + "\n"
    )
    assert code == 0 and "mcp-broker idp login corp" in out  # added; no IdP sign-in yet
    assert harness.store.get_client_secret(machine_credential_owner(URL), "ent") == SECRET
    assert 'enterprise = "corp"' in harness.config() and SECRET not in harness.config()
    code, _ = harness.run("idp", "remove", "corp")
    assert code == 3  # still in use
    _, listed = harness.run("idp", "list")
    assert listed.splitlines()[1].strip() == URL  # the server under its IdP


def test_a_workload_server_names_its_token_file(harness: Harness, tmp_path: Path) -> None:
    token = tmp_path / "token.jwt"
    token.write_text("a.b.c")
    code, _ = harness.run(
        "add", URL, "--workload-token-file", str(token), "--client-id", "wl"
    )
    assert code == 5  # the first token needs the network
    assert f'workload_token_file = "{token}"' in harness.config()
    assert "a.b.c" not in harness.config()
