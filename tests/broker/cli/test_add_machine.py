"""`mcp-broker add URL --client-id ID --client-credentials | --private-key-jwt KEYFILE` and
`--send id-token`, against a fake broker: the secret comes from stdin only and goes to the
broker's keyring call, never to the config or the output."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from broker import cli
from broker.config import ServerConfig
from broker.errors import ConfigError
from broker.tokens.status import ServerStatus
from tests.broker.cli.test_main import KEY, URL, FakeBroker

SECRET = "CANARY-m2m-secret-3c1d"


class MachineBroker(FakeBroker):
    def __init__(self) -> None:
        super().__init__()
        self.kept: list[tuple[str, str | None, str]] = []

    def add_machine(self, server: ServerConfig, credential: str) -> ServerConfig:
        self.kept.append((server.url, server.client_id, credential))
        return self.add(server)

    def status(self) -> list[ServerStatus]:
        return [
            ServerStatus(
                URL, "valid", KEY.issuer, "demo-m2m", expires_at=4_000_000_000.0, machine=True
            )
        ]


class Stdin(io.StringIO):
    def __init__(self, text: str, tty: bool = False) -> None:
        super().__init__(text)
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def run(
    argv: list[str], stdin: Stdin, monkeypatch: pytest.MonkeyPatch
) -> tuple[int, str, MachineBroker]:
    fake = MachineBroker()
    monkeypatch.setattr(sys, "stdin", stdin)
    out = io.StringIO()
    code = cli.main(argv, broker_factory=lambda args: fake, out=out)
    return code, out.getvalue(), fake


def test_secret_from_a_pipe_goes_to_the_keyring_only(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, fake = run(
        ["add", URL, "--provider", "cognito", "--client-id", "demo-m2m", "--client-credentials"],
        Stdin(SECRET + "\n"),
        monkeypatch,
    )
    assert code == 0
    assert fake.kept == [(URL, "demo-m2m", SECRET)]
    server = fake.servers[URL]
    assert (server.grant, server.client_auth, server.client_id) == (
        "client_credentials",
        None,
        "demo-m2m",
    )
    assert server.client_secret is None
    assert SECRET not in out + capsys.readouterr().err
    assert "machine client demo-m2m" in out


def test_secret_on_a_terminal_is_asked_for_without_echo(monkeypatch: pytest.MonkeyPatch) -> None:
    prompts: list[str] = []

    def getpass(prompt: str = "") -> str:
        prompts.append(prompt)
        return SECRET

    monkeypatch.setattr("getpass.getpass", getpass)
    code, _, fake = run(
        ["add", URL, "--client-id", "demo-m2m", "--client-credentials"],
        Stdin("not read\n", tty=True),
        monkeypatch,
    )
    assert code == 0
    assert prompts == ["Client secret of demo-m2m: "]
    assert fake.kept[0][2] == SECRET


def test_no_secret_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SystemExit) as done:
        run(["add", URL, "--client-id", "m", "--client-credentials"], Stdin(""), monkeypatch)
    assert done.value.code == 2


def test_a_machine_needs_a_client_id(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SystemExit) as done:
        run(["add", URL, "--client-credentials"], Stdin(SECRET + "\n"), monkeypatch)
    assert done.value.code == 2


def test_there_is_no_way_to_give_the_secret_as_an_argument() -> None:
    with pytest.raises(SystemExit):
        cli.main(["add", URL, "--client-id", "m", "--client-credentials", "--client-secret", "x"])


def test_private_key_goes_to_the_keyring(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pem = (
        ec.generate_private_key(ec.SECP256R1())
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    keyfile = tmp_path / "m2m.pem"
    keyfile.write_text(pem)
    code, out, fake = run(
        ["add", URL, "--client-id", "m2m", "--private-key-jwt", str(keyfile)],
        Stdin(""),
        monkeypatch,
    )
    assert code == 0
    assert fake.kept == [(URL, "m2m", pem)]
    assert fake.servers[URL].client_auth == "private_key_jwt"
    assert "BEGIN" not in out


def test_unusable_key_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    keyfile = tmp_path / "bad.pem"
    keyfile.write_text("CANARY-not-a-key")
    code, out, fake = run(
        ["add", URL, "--client-id", "m2m", "--private-key-jwt", str(keyfile)],
        Stdin(""),
        monkeypatch,
    )
    assert code != 0
    assert fake.kept == []
    assert "CANARY" not in out


def test_status_names_the_machine_client(monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, _ = run(["status"], Stdin(""), monkeypatch)
    assert code == 0
    assert "as machine client demo-m2m" in out


def test_config_refuses_unknown_values() -> None:
    with pytest.raises(ConfigError):
        ServerConfig(URL, grant="password")
    with pytest.raises(ConfigError):
        ServerConfig(URL, grant="client_credentials")  # no client id
    with pytest.raises(ConfigError):
        ServerConfig(URL, send="refresh-token")


def test_send_id_token_is_a_per_server_opt_in_with_its_warning(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    code, out, fake = run(["add", URL, "--send", "id-token"], Stdin(""), monkeypatch)
    assert code == 0
    assert fake.servers[URL].send == "id-token" and fake.servers[URL].sends_id_token
    assert "workaround" in out


def test_without_send_the_access_token_stays_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, fake = run(["add", URL], Stdin(""), monkeypatch)
    assert code == 0
    assert fake.servers[URL].send is None and not fake.servers[URL].sends_id_token
    assert "ID token" not in out


def test_changing_what_is_sent_asks_for_a_new_sign_in(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = MachineBroker()
    fake.servers[URL] = ServerConfig(URL, client_id="demo-broker", issuer="http://issuer")
    monkeypatch.setattr(sys, "stdin", Stdin(""))
    out = io.StringIO()
    argv = ["add", URL, "--client-id", "demo-broker", "--send", "id-token"]
    assert cli.main(argv, broker_factory=lambda args: fake, out=out) == 0
    assert fake.servers[URL].issuer is None  # the old sign-in was for the access token
    again = ["add", URL, "--client-id", "demo-broker"]
    assert cli.main(again, broker_factory=lambda args: fake, out=out) == 0
    assert fake.servers[URL].send == "id-token"  # not named: kept
    back = [*again, "--send", "access-token"]
    assert cli.main(back, broker_factory=lambda args: fake, out=out) == 0
    assert fake.servers[URL].send is None


def test_a_machine_has_no_id_token_to_send(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SystemExit) as done:
        run(
            ["add", URL, "--client-id", "m", "--client-credentials", "--send", "id-token"],
            Stdin(SECRET + "\n"),
            monkeypatch,
        )
    assert done.value.code == 2
    with pytest.raises(ConfigError):
        ServerConfig(URL, client_id="m", grant="client_credentials", send="id-token")


def test_add_help_warns_about_the_id_token(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["add", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "WARNING: id-token is a workaround" in text and "AgentCore" in text
