"""Terminal escape sequences from a server or a typed URL never reach the terminal, tray or
notifications: CSI (clear screen, colours), OSC (window title, OSC 52 clipboard writes), BEL, C1
controls and bidi overrides are made inert by one sanitiser; ``--json`` output keeps the exact
text, JSON-escaped, for programs. ``add`` refuses URLs with control characters.

``call`` talks to the real demo MCP server through the mcp SDK; its ``echo`` tool hands back the
hostile text as a server's own answer.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker import cli
from broker.config import ServerConfig, load_config
from broker.desktop.menu import server_name
from broker.paths import broker_paths
from broker.safetext import safe_lines, safe_text
from broker.tokens.dpop import Dpop
from broker.tokens.status import ServerStatus
from broker.tokens.tokenset import TokenKey, TokenSet
from demo_server.resource import RunningResourceServer
from tests.support.jwt_issuer import JwksServer
from tests.support.resource_server import running_resource

OSC52 = "\x1b]52;c;cHduZWQ=\x07"  # write "pwned" to the clipboard
TITLE = "\x1b]0;owned\x1b\\"  # set the window title (ST-terminated)
CLEAR = "\x1b[2J\x1b[H"  # clear the screen
C1_CSI = "\x9b31m"  # CSI as a single C1 character
BIDI = "\u202e"  # right-to-left override
HOSTILE = f"{OSC52}{TITLE}{CLEAR}{C1_CSI}safe{BIDI} text\r\nsecond\tline\x07"
FORBIDDEN = ("\x1b", "\x07", "\x9b", "\u202e", "\r")


def assert_inert(shown: str) -> None:
    assert not any(ch in shown for ch in FORBIDDEN), repr(shown)


@pytest.fixture(scope="module")
def server(jwks: JwksServer) -> Iterator[RunningResourceServer]:
    with running_resource(jwks) as running:
        yield running


class TokenOnly:
    """The broker side of ``call``: a token for the demo server (no keyring needed here)."""

    def __init__(self, key: TokenKey, token: str) -> None:
        self.key, self._token = key, token
        self.dpop = Dpop()  # a bearer token: no proofs

    def token(self, url: str, min_valid: float | None = None) -> TokenSet:
        return TokenSet(self.key, self._token, expires_at=4_000_000_000.0)

    def close(self) -> None:
        pass


def call(server: RunningResourceServer, jwks: JwksServer, *flags: str) -> tuple[int, str]:
    token = jwks.issuer_obj.token(server.settings.resource_id)
    broker = TokenOnly(TokenKey(jwks.issuer, "demo-broker", server.url), token)
    out = io.StringIO()
    args = ["call", server.url, "echo", "--args", json.dumps({"text": HOSTILE}), *flags]
    code = cli.main(args, broker_factory=lambda _: broker, out=out)
    return code, out.getvalue()


@pytest.mark.integration
def test_call_shows_a_servers_tool_text_without_escape_sequences(
    server: RunningResourceServer, jwks: JwksServer
) -> None:
    code, shown = call(server, jwks)

    assert code == 0
    assert_inert(shown)
    assert "safe text" in shown and "second\tline" in shown.splitlines()  # lines and tabs kept


@pytest.mark.integration
def test_call_json_keeps_the_exact_text_json_escaped(
    server: RunningResourceServer, jwks: JwksServer
) -> None:
    code, shown = call(server, jwks, "--json")

    assert code == 0
    assert_inert(shown)
    assert shown.isascii()
    assert json.loads(shown)["content"][0]["text"] == HOSTILE


def test_status_shows_urls_and_reasons_without_escape_sequences(
    capsys: pytest.CaptureFixture[str],
) -> None:
    class Hostile:
        def status(self) -> list[ServerStatus]:
            return [ServerStatus(f"https://a.example/{OSC52}", "signed_out", reason=HOSTILE)]

        def close(self) -> None:
            pass

    out = io.StringIO()
    assert cli.main(["status"], broker_factory=lambda _: Hostile(), out=out) == 0
    assert_inert(out.getvalue())
    assert len(out.getvalue().splitlines()) == 1


@pytest.mark.parametrize(
    "url",
    [
        f"https://a.example/{OSC52}",
        f"https://a.example/{C1_CSI}",
        "https://a.example/\u202emcp",
        "https://a.example/m\ncp",
    ],
)
def test_add_refuses_urls_with_control_characters(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MCP_BROKER_HOME", str(tmp_path / "home"))

    code = cli.main(["add", url])

    assert code == 3
    err = capsys.readouterr().err
    assert "control characters" in err
    assert_inert(err)
    config = broker_paths().config_file
    assert not config.exists() or load_config(config).servers == ()


@pytest.mark.parametrize(
    "shown",
    [
        lambda: safe_text(HOSTILE),
        lambda: safe_lines(HOSTILE),
        lambda: server_name(f"https://a.example/{TITLE}{C1_CSI}"),
    ],
    ids=["one-line", "lines", "tray-server-name"],
)
def test_every_surface_gets_inert_text(shown: object) -> None:
    text = shown()  # type: ignore[operator]
    assert_inert(text)
    assert "\x9b" not in text


def test_a_config_written_by_hand_with_control_characters_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[[servers]]\nurl = "https://a.example/\\u001b[2J"\n')
    with pytest.raises(Exception, match="control characters"):
        load_config(config)
    assert ServerConfig("https://a.example/ok").url == "https://a.example/ok"
