"""What the control page's forms do, against the running listener with the real broker parts
(in-memory store): remove a server, sign in with more scopes, add from stack outputs, named
clients and their allowlists, consent answers, connecting an MCP client, start at login; and
that server text is escaped, every field has a label."""

from __future__ import annotations

import html
import json
import re
import threading
import time
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path

import pytest

from broker.api.clients import ClientsFile, ConsentRequest
from broker.config import ServerConfig
from tests.broker.ui.conftest import CLIENT_ID, ISSUER, SERVER, Page

pytestmark = pytest.mark.integration

OUTPUTS = {
    "Issuer": "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Abc123",
    "ClientId": "stackclient",
    "ResourceServerIdentifier": "https://stack.example/mcp",
}


def notes(page_html: str) -> list[str]:
    found = re.findall(r'<p class="note [^"]+"[^>]*>(.*?)</p>', page_html)
    return [html.unescape(re.sub(r"\s+", " ", n)) for n in found]


def eventually(check: Callable[[], object]) -> None:
    deadline = time.monotonic() + 10
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def follow(page: Page, cookie: str, answer: object) -> str:
    location = answer.headers["location"]  # type: ignore[attr-defined]
    return page.get(location, cookie).text


def test_remove_asks_first_then_signs_out_and_forgets_the_server(page: Page) -> None:
    cookie, csrf, base = page.session()
    ask = {"csrf": csrf, "url": SERVER, "action": "confirm_remove"}
    asked = page.post(f"{base}/servers/action", cookie, ask)
    assert asked.status_code == 200 and "signs out of" in asked.text
    assert [s.url for s in page.root.broker.servers()] == [SERVER]  # nothing done yet
    form = {"csrf": csrf, "url": SERVER, "action": "remove"}

    shown = follow(page, cookie, page.post(f"{base}/servers/action", cookie, form))

    assert f"Removed {SERVER}; its tokens are deleted" in " ".join(notes(shown))
    assert page.root.broker.servers() == ()
    assert "No servers configured yet." in shown


def test_more_scopes_must_be_scope_tokens(page: Page) -> None:
    cookie, csrf, base = page.session()
    form = {"csrf": csrf, "url": SERVER, "action": "more_scopes", "scope": 'bad"scope'}

    shown = follow(page, cookie, page.post(f"{base}/servers/action", cookie, form))

    assert "name one or more scopes" in " ".join(notes(shown))
    assert page.controller.view.busy == frozenset()  # nothing started


def test_an_unknown_server_is_refused_with_the_cli_text(page: Page) -> None:
    cookie, csrf, base = page.session()
    form = {"csrf": csrf, "url": "https://other.example/mcp", "action": "sign_in"}

    shown = follow(page, cookie, page.post(f"{base}/servers/action", cookie, form))

    assert notes(shown) == [
        "https://other.example/mcp is not configured; add it with: mcp-broker add "
        "https://other.example/mcp"
    ]


def test_a_server_is_added_from_stack_outputs(page: Page) -> None:
    cookie, csrf, base = page.session()
    page.http.cookies.clear()

    answer = page.http.post(
        f"{base}/servers/upload",
        data={"csrf": csrf},
        files={"outputs": ("outputs.json", json.dumps(OUTPUTS).encode(), "application/json")},
        headers={"Origin": page.origin, "Cookie": f"{page.cookie_name}={cookie}"},
    )
    shown = follow(page, cookie, answer)

    added = page.root.broker.server("https://stack.example/mcp")
    assert added.client_id == "stackclient" and added.issuer == OUTPUTS["Issuer"]
    assert "Added https://stack.example/mcp from the stack's outputs" in " ".join(notes(shown))
    assert list(page.paths.state_dir.glob("outputs-*")) == []  # the upload is not kept

    page.http.cookies.clear()
    broken = page.http.post(
        f"{base}/servers/upload",
        data={"csrf": csrf},
        files={"outputs": ("mine.json", b"{not json", "application/json")},
        headers={"Origin": page.origin, "Cookie": f"{page.cookie_name}={cookie}"},
    )
    (problem,) = notes(follow(page, cookie, broken))
    assert problem.startswith("mine.json: cannot read stack outputs")


def test_named_clients_are_created_allowed_and_removed(page: Page) -> None:
    cookie, csrf, base = page.session()
    file = ClientsFile(page.paths.state_dir, page.paths.lock_dir)
    form = {"csrf": csrf, "name": "scoped", "resource": SERVER}

    assert page.post(f"{base}/clients/add", cookie, form).status_code == 201
    assert file.load()["scoped"].resources == (SERVER,)
    page.post(f"{base}/clients/add", cookie, {"csrf": csrf, "name": "free"})
    allow = {"csrf": csrf, "name": "free", "url": SERVER}
    shown = follow(page, cookie, page.post(f"{base}/clients/allow", cookie, allow))
    assert f"free may now have tokens for {SERVER}." in notes(shown)
    assert file.load()["free"].allowed == frozenset({SERVER})

    bad = page.post(f"{base}/clients/add", cookie, {"csrf": csrf, "name": "default"})
    assert "a client name is 1-64 letters" in " ".join(notes(follow(page, cookie, bad)))
    gone = page.post(f"{base}/clients/remove", cookie, {"csrf": csrf, "name": "free"})
    assert "Removed client free" in " ".join(notes(follow(page, cookie, gone)))
    assert set(file.load()) == {"scoped"}


def test_a_consent_question_is_answered_from_the_page(page: Page) -> None:
    cookie, csrf, base = page.session()
    answers: list[object] = []
    page.controller.request_consent(ConsentRequest("agent", SERVER, answers.append))
    eventually(lambda: page.controller.view.consents)  # the tray's worker shows it
    shown = page.get(f"{base}/clients", cookie).text
    assert "<strong>agent</strong> asks for tokens for" in shown

    form = {"csrf": csrf, "client": "agent", "resource": SERVER, "decision": "deny"}
    after = follow(page, cookie, page.post(f"{base}/clients/consent", cookie, form))

    assert f"agent: denied for {SERVER}." in notes(after)
    eventually(lambda: answers)
    assert [getattr(a, "value", a) for a in answers] == ["deny"]
    eventually(lambda: not page.controller.view.consents)
    again = follow(page, cookie, page.post(f"{base}/clients/consent", cookie, form))
    assert "no longer waiting" in " ".join(notes(again))


def test_connect_shows_the_file_and_entry_then_writes_it(
    page: Page, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "user"
    (home / ".cursor").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    cookie, csrf, base = page.session()

    shown = page.get(f"{base}/connect", cookie).text

    assert str(home / ".cursor" / "mcp.json") in shown
    assert "Connect Cursor" in shown and "&#34;connect&#34;" in shown  # the entry, escaped
    assert not (home / ".cursor" / "mcp.json").exists()  # the preview wrote nothing
    done = page.post(f"{base}/connect", cookie, {"csrf": csrf, "client": "cursor"})
    assert "Cursor now reaches 1 server" in " ".join(notes(follow(page, cookie, done)))
    assert SERVER in (home / ".cursor" / "mcp.json").read_text()


def test_server_text_is_escaped(page: Page) -> None:
    hostile = "<script>alert(1)</script>\x1b]0;x\x07"
    page.root.broker.add(ServerConfig("https://evil.example/mcp", resource_name=hostile))
    cookie, _, base = page.session()

    shown = page.get(f"{base}/servers", cookie).text

    assert "<script>" not in shown and "\x1b" not in shown and "\x07" not in shown
    assert "&lt;script&gt;" in shown


class Fields(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.fields: list[dict[str, str | None]] = []
        self.labelled: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "label" and found.get("for"):
            self.labelled.add(str(found["for"]))
        if tag in ("input", "select", "textarea") and found.get("type") != "hidden":
            self.fields.append(found)


def test_every_field_on_every_page_has_a_label(page: Page) -> None:
    cookie, csrf, base = page.session()
    page.post(f"{base}/clients/add", cookie, {"csrf": csrf, "name": "agent"})  # its forms too
    for path in ("servers", "servers/add", "clients", "connect", "settings"):
        parser = Fields()
        parser.feed(page.get(f"{base}/{path}", cookie).text)
        unlabelled = [
            f
            for f in parser.fields
            if f.get("id") not in parser.labelled and f.get("type") != "checkbox"
        ]
        assert parser.fields or path in ("connect", "settings")
        assert unlabelled == [], path
    parser = Fields()
    form = {"csrf": csrf, "url": SERVER, "action": "change"}
    parser.feed(page.post(f"{base}/servers/action", cookie, form).text)
    assert len(parser.fields) == 5
    assert [f for f in parser.fields if f.get("id") not in parser.labelled] == []


def test_a_failed_sign_in_says_what_went_wrong_in_full(page: Page) -> None:
    cookie, csrf, base = page.session()
    form = {"csrf": csrf, "url": SERVER, "action": "sign_in"}

    page.post(f"{base}/servers/action", cookie, form)  # the fake idp.example cannot be reached
    eventually(lambda: SERVER in page.controller.view.errors)
    shown = page.get(f"{base}/servers", cookie).text

    started, problem = notes(shown)
    assert started.startswith("Signing in to mcp.example/mcp")
    assert problem == page.controller.view.errors[SERVER]  # the whole text, as the CLI says it
    assert problem == f"{SERVER} could not be reached"


def test_the_servers_page_reloads_itself_while_a_sign_in_runs(page: Page) -> None:
    cookie, csrf, base = page.session()
    release = threading.Event()
    # The sign-in waits, as one waiting for the user's browser does.
    page.root.broker.signin.sign_in = lambda url, extra=None, headless=None: release.wait(10)  # type: ignore
    form = {"csrf": csrf, "url": SERVER, "action": "sign_in"}

    started = follow(page, cookie, page.post(f"{base}/servers/action", cookie, form))
    eventually(lambda: SERVER in page.controller.view.busy)
    working = page.get(f"{base}/servers", cookie).text
    release.set()
    eventually(lambda: SERVER not in page.controller.view.busy)
    done = page.get(f"{base}/servers", cookie).text

    assert 'http-equiv="refresh" content="3"' in started and "Signing in to" in started
    assert 'http-equiv="refresh"' in working and "working…" in working
    assert 'http-equiv="refresh"' not in done


def test_a_dpop_bound_server_says_so_and_gets_the_bridge_in_claude_code(
    page: Page, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dataclasses

    from broker.oauth import dpop as proofs

    broker = page.root.broker
    (server,) = broker.servers()
    key = proofs.new_key()
    tokens = broker.store.get(broker.key_for(server))
    assert tokens is not None  # now bound, as a sign-in at a DPoP server stores them
    bound = dataclasses.replace(tokens, token_type="DPoP", dpop_key=proofs.key_to_text(key))
    broker.service.put(bound)
    home = tmp_path / "user"
    (home / ".claude").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.delenv("CLAUDE_CONFIG_DIR", raising=False)
    cookie, csrf, base = page.session()

    servers = page.get(f"{base}/servers", cookie).text
    assert "DPoP-bound" in servers and "mcp-broker connect" in servers
    connect = html.unescape(page.get(f"{base}/connect", cookie).text)
    assert '"connect"' in connect and "headersHelper" not in connect  # the bridge, not a helper
    done = page.post(f"{base}/connect", cookie, {"csrf": csrf, "client": "claude-code"})
    assert "Claude Code now reaches 1 server" in " ".join(notes(follow(page, cookie, done)))
    entry = next(iter(json.loads((home / ".claude.json").read_text())["mcpServers"].values()))
    assert entry["type"] == "stdio" and entry["args"][-2:] == ["connect", SERVER]
    private_d = str(key.as_dict(private=True)["d"])
    for shown in (servers, connect):
        assert private_d not in shown and proofs.thumbprint(key) not in shown


def change(page: Page, **fields: str) -> tuple[str, str]:
    """Open a server's Settings, then save them with ``fields`` changed: (the form, the page
    shown after saving)."""
    cookie, csrf, base = page.session()
    opened = page.post(f"{base}/servers/action", cookie, {"csrf": csrf, "url": SERVER,
                                                          "action": "change"})  # fmt: skip
    assert opened.status_code == 200, opened.text
    shown = dict(re.findall(r'<input id="(\w+)" name="\w+" type="text" value="([^"]*)"',
                            opened.text))  # fmt: skip
    chosen = dict(re.findall(r'<select id="(\w+)".*?<option value="([^"]+)" selected',
                             opened.text, re.S))  # fmt: skip
    form = {"csrf": csrf, "url": SERVER, **shown, **chosen, **fields}
    saved = page.post(f"{base}/servers/change", cookie, form)
    # Saved: back to Servers; refused: the form again, with what went wrong.
    after = follow(page, cookie, saved) if saved.status_code == 303 else saved.text
    return opened.text, after


def test_settings_show_the_server_as_configured_and_a_change_that_fits_keeps_the_sign_in(
    page: Page,
) -> None:
    broker = page.root.broker
    before = broker.store.get(broker.key_for(broker.server(SERVER)))

    form, shown = change(page, scopes="openid mcp/read mcp/write", dpop="never")

    assert f'value="{CLIENT_ID}"' in form and 'value="access-token" selected' in form
    saved = broker.server(SERVER)
    assert saved.scopes == ("openid", "mcp/read", "mcp/write") and saved.dpop is False
    assert (saved.client_id, saved.issuer) == (CLIENT_ID, ISSUER)  # the same sign-in
    assert broker.store.get(broker.key_for(saved)) == before
    assert notes(shown) == ["Saved mcp.example/mcp."]
    assert all(canary not in form + shown for canary in page.canaries())


def test_a_new_client_id_signs_out_of_the_old_sign_in(page: Page) -> None:
    broker = page.root.broker
    old_key = broker.key_for(broker.server(SERVER))

    _, shown = change(page, client_id="another-client")

    saved = broker.server(SERVER)
    assert (saved.client_id, saved.issuer) == ("another-client", None)
    assert broker.store.get(old_key) is None  # nothing of the old client left in the keyring
    assert "is signed out: sign in again" in " ".join(notes(shown))
    assert all(canary not in shown for canary in page.canaries())


def test_bad_settings_are_refused_and_nothing_changes(page: Page) -> None:
    broker = page.root.broker
    before = broker.server(SERVER)

    _, shown = change(page, scopes='bad"scope')

    assert broker.server(SERVER) == before
    assert "name the scopes separated by spaces" in " ".join(notes(shown))
    assert 'value="bad&#34;scope"' in shown  # the form comes back as it was sent


def test_a_machine_identitys_client_id_is_changed_only_with_its_secret(page: Page) -> None:
    broker = page.root.broker
    machine = ServerConfig(SERVER, client_id="m2m", grant="client_credentials")
    broker.config.update(lambda config: config.with_server(machine))

    form, shown = change(page, client_id="other-m2m")

    assert "readonly" in form and 'id="send"' not in form  # no ID token for a machine
    assert broker.server(SERVER).client_id == "m2m"
    assert f"change it with mcp-broker add {SERVER} --client-id ID" in " ".join(notes(shown))


def test_settings_wait_while_a_sign_in_runs_and_an_unknown_url_is_refused(page: Page) -> None:
    broker = page.root.broker
    before = broker.server(SERVER)
    cookie, csrf, base = page.session()
    release = threading.Event()
    broker.signin.sign_in = lambda url, extra=None, headless=None: release.wait(10)  # type: ignore
    page.post(f"{base}/servers/action", cookie, {"csrf": csrf, "url": SERVER, "action": "sign_in"})
    eventually(lambda: SERVER in page.controller.view.busy)
    try:
        listed = page.get(f"{base}/servers", cookie).text
        form = {"csrf": csrf, "url": SERVER, "client_id": "other", "provider": "auto",
                "scopes": "", "dpop": "auto", "send": "access-token"}  # fmt: skip
        busy = follow(page, cookie, page.post(f"{base}/servers/change", cookie, form))
    finally:
        release.set()
    eventually(lambda: SERVER not in page.controller.view.busy)
    unknown = {**form, "url": "not a url"}
    refused = follow(page, cookie, page.post(f"{base}/servers/change", cookie, unknown))

    assert re.search(r'value="change" disabled>Settings', listed)
    assert "is signing in or out: change it once that ends" in " ".join(notes(busy))
    assert "not a url is not configured" in " ".join(notes(refused))
    assert broker.server(SERVER) == before
