"""``mcp-broker`` commands against a fake broker: arguments, output, exit codes."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from mcp_types import CallToolResult, TextContent

from broker import cli
from broker.cli import call as mcpcall
from broker.config import ServerConfig
from broker.errors import (
    ConfigError,
    InteractionRequired,
    ServerUnreachable,
    StorageUnavailable,
)
from broker.oauth.providers import FIXED_CALLBACK_PORTS
from broker.tokens.dpop import Dpop
from broker.tokens.status import ServerStatus, SignOutResult
from broker.tokens.tokenset import TokenKey, TokenSet

URL = "https://mcp.example/mcp"
TOKEN = "CANARY-SECRET-access"
KEY = TokenKey("https://as.example/pool", "client-1", URL)


@dataclass
class FakeBroker:
    servers: dict[str, ServerConfig] = field(default_factory=dict)
    fail: Exception | None = None
    closed: bool = False
    token_calls: list[tuple[str, float | None]] = field(default_factory=list)
    extra_scopes: list[str | None] = field(default_factory=list)
    headless: list[Any] = field(default_factory=list)
    dpop: Dpop = field(default_factory=Dpop)

    def server(self, url: str) -> ServerConfig:
        if url not in self.servers:
            raise ConfigError(f"{url} is not configured")
        return self.servers[url]

    def add(self, server: ServerConfig) -> ServerConfig:
        self.servers[server.url] = server
        return server

    def token(self, url: str, min_valid: float | None = None) -> TokenSet:
        self.token_calls.append((url, min_valid))
        if self.fail is not None:
            raise self.fail
        return TokenSet(KEY, TOKEN, expires_at=4_000_000_000.0, refresh_token="CANARY-refresh")

    def login(self, url: str, extra_scope: str | None = None, headless: Any = None) -> TokenSet:
        self.extra_scopes.append(extra_scope)
        self.headless.append(headless)
        return self.token(url)

    def logout(self, url: str) -> SignOutResult:
        return SignOutResult(removed=1, revoked=1, revocation_supported=True)

    def status(self) -> list[ServerStatus]:
        return [
            ServerStatus(URL, "valid", KEY.issuer, KEY.client_id, expires_at=4_000_000_000.0),
            ServerStatus(
                "https://b.example/mcp", "sign_in_required", reason="refresh \x1b[31mdead"
            ),
        ]

    def close(self) -> None:
        self.closed = True


def run(argv: list[str], broker: FakeBroker | None = None) -> tuple[int, str, FakeBroker]:
    fake = broker or FakeBroker()
    out = io.StringIO()
    code = cli.main(argv, broker_factory=lambda args: fake, out=out)
    return code, out.getvalue(), fake


@pytest.mark.parametrize("command", ["add", "login", "logout", "status", "token", "call"])
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        cli.main([command, "--help"])
    assert done.value.code == 0
    assert "usage: mcp-broker " + command in capsys.readouterr().out


def test_no_command_runs_the_tray_app(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bool | None, str | None, bool]] = []

    def fake_run(
        headless: bool | None = None, *, config: str | None = None, verbose: bool = False
    ) -> int:
        calls.append((headless, config, verbose))
        return 0

    monkeypatch.setattr("broker.desktop.runner.run", fake_run)
    assert cli.main([]) == 0
    assert cli.main(["--config", "/x.toml", "run", "--headless"]) == 0
    assert cli.main(["-v", "run"]) == 0
    assert calls == [(None, None, False), (True, "/x.toml", False), (None, None, True)]


def test_token_prints_only_the_token(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, fake = run(["token", URL, "--min-valid", "120"])

    assert (code, out) == (0, TOKEN + "\n")
    assert fake.token_calls == [(URL, 120.0)]
    assert fake.closed
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    ("error", "code", "text"),
    [
        (InteractionRequired("sign-in required: revoked"), 4, "mcp-broker login " + URL),
        (ServerUnreachable("https://as.example could not be reached"), 5, "could not be reached"),
        (ConfigError("bad config"), 3, "bad config"),
        # As the running broker answers it (503): the same exit code on both paths
        (StorageUnavailable("No usable OS keyring."), 5, "keyring"),
    ],
)
def test_errors_have_distinct_exit_codes_and_clear_messages(
    error: Exception, code: int, text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    result, out, _ = run(["token", URL], FakeBroker(fail=error))

    err = capsys.readouterr().err
    assert (result, out) == (code, "")
    assert err.startswith("mcp-broker: ") and text in err


def test_status_never_prints_a_token_and_strips_escape_sequences(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, table, _ = run(["status"])
    code_json, raw, _ = run(["status", "--json"])

    data = json.loads(raw)
    assert code == code_json == 0
    assert [s["state"] for s in data["servers"]] == ["valid", "sign_in_required"]
    assert data["servers"][0]["expires_in"] > 0
    assert "CANARY" not in table + raw
    assert "\x1b" not in table and "refresh [31mdead" in table


def test_add_writes_every_option() -> None:
    code, out, fake = run(
        [
            "add",
            URL + "/",
            "--client-id",
            "abc",
            "--provider",
            "cognito",
            "--callback-port",
            "8123",
            "--callback-port",
            "8124",
            "--no-resource-param",
            "--scope",
            "openid",
        ]
    )

    assert code == 0 and "mcp-broker login " + URL in out
    assert fake.servers[URL] == ServerConfig(
        URL,
        client_id="abc",
        provider="cognito",
        callback_ports=(8123, 8124),
        send_resource=False,
        scopes=("openid",),
    )


def test_add_again_keeps_the_pinned_issuer_unless_asked() -> None:
    pinned = ServerConfig(URL, client_id="abc", issuer="https://as.example/pool")
    fake = FakeBroker(servers={URL: pinned})

    _, kept_out, _ = run(["add", URL, "--provider", "cognito"], fake)
    kept = fake.servers[URL]
    _, reset_out, _ = run(["add", URL, "--reset-issuer"], fake)
    reset = fake.servers[URL]

    assert kept_out.strip() == f"Changed {URL}."
    assert "is signed out. Sign in with: mcp-broker login" in reset_out

    assert (kept.issuer, kept.client_id, kept.callback_ports) == (
        pinned.issuer,
        "abc",
        FIXED_CALLBACK_PORTS,
    )
    assert reset == replace(pinned, issuer=None, provider="cognito")  # the rest is kept


def test_add_again_changes_what_it_names_and_defaults_resets_the_rest() -> None:
    custom = ServerConfig(
        URL,
        client_id="abc",
        issuer="https://as.example/pool",
        provider="cognito",
        callback_ports=(8123,),
        send_resource=False,
        scopes=("mcp/read",),
        send="id-token",
        dpop=False,
    )
    fake = FakeBroker(servers={URL: custom})

    run(["add", URL, "--scope", "mcp/write"], fake)
    changed = fake.servers[URL]
    run(["add", URL, "--resource-param", "--dpop"], fake)
    toggled = fake.servers[URL]
    run(["add", URL, "--defaults"], fake)
    defaults = fake.servers[URL]

    assert changed == replace(custom, scopes=("mcp/write",))  # the same sign-in, too
    assert (toggled.send_resource, toggled.dpop, toggled.scopes) == (True, True, ("mcp/write",))
    assert (defaults.provider, defaults.callback_ports, defaults.send_resource) == (
        "auto",
        FIXED_CALLBACK_PORTS,
        True,
    )
    assert (defaults.scopes, defaults.send, defaults.dpop) == (None, None, None)
    assert defaults.client_id == "abc" and defaults.issuer is None  # another token to send


def test_logout_reports_revocation() -> None:
    code, out, _ = run(["logout", URL])
    assert code == 0 and "revoked" in out


def test_call_prints_the_result(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def fake_call(url: str, tool: str, arguments: dict[str, Any], tokens: Any) -> CallToolResult:
        seen.update(url=url, tool=tool, arguments=arguments, token=tokens.token())
        return CallToolResult(content=[TextContent(type="text", text="hello demo")])

    monkeypatch.setattr(mcpcall, "call_tool", fake_call)

    code, out, _ = run(["call", URL, "echo", "--args", '{"text": "hello"}'])

    assert (code, out) == (0, "hello demo\n")
    assert seen == {"url": URL, "tool": "echo", "arguments": {"text": "hello"}, "token": TOKEN}


def test_call_passes_on_a_sign_in_needed_inside_the_sdk(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def fake_call(*args: Any) -> CallToolResult:
        raise ExceptionGroup("task group", [InteractionRequired("sign-in required: gone")])

    monkeypatch.setattr(mcpcall, "call_tool", fake_call)

    assert run(["call", URL, "whoami"])[0] == 4


def test_a_tool_error_exits_1(monkeypatch: pytest.MonkeyPatch) -> None:
    error = CallToolResult(content=[TextContent(type="text", text="no such tool")], is_error=True)
    monkeypatch.setattr(mcpcall, "call_tool", lambda *a: error)

    assert run(["call", URL, "nothing"])[:2] == (1, "no such tool\n")


@pytest.mark.parametrize("args", ["{not json", "[1, 2]"])
def test_call_refuses_arguments_that_are_not_a_json_object(args: str) -> None:
    with pytest.raises(SystemExit) as done:
        run(["call", URL, "echo", "--args", args])
    assert done.value.code == 2


def test_render_result_shows_text_and_structured_content() -> None:
    text = CallToolResult(
        content=[TextContent(type="text", text="a"), TextContent(type="text", text="b")]
    )
    structured = CallToolResult(content=[], structured_content={"username": "demo"})

    assert mcpcall.render_result(text) == "a\nb"
    assert json.loads(mcpcall.render_result(structured)) == {"username": "demo"}


def test_login_scope_adds_scopes_for_a_step_up() -> None:
    code, _, fake = run(["login", URL, "--scope", "mcp/admin", "--scope", "mcp/write"])
    plain, _, _ = run(["login", URL], fake)

    assert (code, plain) == (0, 0)
    assert fake.extra_scopes == ["mcp/admin mcp/write", None]


@pytest.mark.parametrize("bad", ["", "a b", 'say"hi', "back\\slash"])
def test_login_scope_must_be_one_scope_token(bad: str) -> None:
    fake = FakeBroker()
    with pytest.raises(SystemExit) as usage:
        run(["login", URL, "--scope", bad], fake)
    assert usage.value.code == 2 and fake.extra_scopes == []


def test_reset_issuer_forgets_a_client_the_broker_registered_there() -> None:
    registered = ServerConfig(
        URL, client_id="dcr-1", issuer="https://as1.example", client_registered=True
    )
    fake = FakeBroker(servers={URL: registered})

    _, kept_out, _ = run(["add", URL, "--provider", "cognito"], fake)
    kept = fake.servers[URL]
    _, reset_out, _ = run(["add", URL, "--reset-issuer"], fake)
    reset = fake.servers[URL]

    assert kept_out.strip() == f"Changed {URL}."
    assert "is signed out. Sign in with: mcp-broker login" in reset_out

    assert (kept.client_id, kept.client_registered) == ("dcr-1", True)
    assert (reset.issuer, reset.client_id, reset.client_registered) == (None, None, None)


def test_add_keeps_a_client_metadata_document_url_and_refuses_one_that_cannot_be(
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake = FakeBroker()
    cimd = "https://example.org/mcp-broker.json"

    code, _, _ = run(["add", URL, "--client-metadata-url", cimd], fake)
    run(["add", URL, "--provider", "cognito"], fake)
    with pytest.raises(SystemExit) as bad:
        run(["add", URL, "--client-metadata-url", "http://example.org/x.json"], fake)

    assert code == 0 and fake.servers[URL].client_metadata_url == cimd
    assert bad.value.code == 2 and "https URL with a path" in capsys.readouterr().err
    assert fake.servers[URL].client_metadata_url == cimd


@pytest.mark.parametrize(
    ("argv", "env", "mode"),
    [
        (["--no-browser"], {"DISPLAY": ":0"}, "paste"),
        (["--device"], {"DISPLAY": ":0"}, "device"),
        ([], {}, "auto"),  # Linux with no display and no BROWSER: no browser here
        ([], {"DISPLAY": ":0"}, None),
        ([], {"BROWSER": "w3m"}, None),
    ],
)
def test_login_without_a_browser_here(
    argv: list[str], env: dict[str, str], mode: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "BROWSER"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr("sys.platform", "linux")
    code, _, fake = run(["login", URL, *argv])
    assert code == 0
    headless = fake.headless[0]
    assert (headless.mode if headless else None) == mode


def test_no_browser_and_device_exclude_each_other() -> None:
    with pytest.raises(SystemExit):
        cli.main(["login", URL, "--no-browser", "--device"])


def test_add_dpop_and_no_dpop_set_the_servers_choice() -> None:
    for flags, expected in (([], None), (["--dpop"], True), (["--no-dpop"], False)):
        code, _, fake = run(["add", URL, *flags])
        assert code == 0 and fake.servers[URL].dpop is expected
    with pytest.raises(SystemExit) as usage:  # one or the other
        run(["add", URL, "--dpop", "--no-dpop"])
    assert usage.value.code == 2


def test_add_again_keeps_an_enterprise_or_workload_server_what_it_is() -> None:
    enterprise = ServerConfig(URL, client_id="app", issuer="https://as.example", enterprise="corp")
    fake = FakeBroker(servers={URL: enterprise})

    code, out, _ = run(["add", URL, "--scope", "mcp/read"], fake)

    assert code == 0 and out.strip() == f"Changed {URL}."
    assert fake.servers[URL] == replace(enterprise, scopes=("mcp/read",))


@pytest.mark.parametrize(
    "kind",
    [{"grant": "client_credentials"}, {"enterprise": "corp"}, {"workload_token_file": "/t.jwt"}],
    ids=["machine", "enterprise", "workload"],
)
def test_a_client_that_comes_with_a_secret_changes_only_with_it(kind: dict[str, str]) -> None:
    server = ServerConfig(URL, client_id="app", issuer="https://as.example", **kind)  # type: ignore[arg-type]
    fake = FakeBroker(servers={URL: server})

    with pytest.raises(SystemExit) as done:
        run(["add", URL, "--client-id", "other"], fake)

    assert done.value.code == 2
    assert fake.servers[URL] == server  # nothing changed, nothing signed out


def test_add_from_stack_outputs_again_keeps_what_it_does_not_name(tmp_path: Any) -> None:
    outputs = tmp_path / "outputs.json"
    outputs.write_text(
        json.dumps(
            {
                "Issuer": "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Abc123",
                "ClientId": "stackclient",
                "ResourceServerIdentifier": URL,
            }
        )
    )
    old = ServerConfig(
        URL,
        client_id="stackclient",
        issuer="https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Abc123",
        dpop=False,
        client_metadata_url="https://me.example/client.json",
    )
    fake = FakeBroker(servers={URL: old})

    code, out, _ = run(["add", URL, "--from-cloudformation", str(outputs)], fake)

    saved = fake.servers[URL]
    assert code == 0 and out.strip() == f"Changed {URL}."  # the same client at the same issuer
    assert saved.dpop is False and saved.client_metadata_url == "https://me.example/client.json"
