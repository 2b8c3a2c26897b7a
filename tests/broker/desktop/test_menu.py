"""The tray menu as data: what each state shows and which entries are enabled (no X needed)."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from broker.api.clients import ConsentRequest, Decision
from broker.desktop.menu import (
    DPOP_BOUND_NOTE,
    SEPARATOR,
    Action,
    ClientChoice,
    Command,
    Entry,
    Overall,
    View,
    needs_sign_in,
    overall,
    safe_text,
    title,
)
from broker.desktop.menu import entries as whole_menu
from broker.tokens.status import ServerStatus


def entries(view: View) -> tuple[Entry, ...]:
    """The menu below its first entry, "Open mcp-oauth-broker…", and the separator after it."""
    menu = whole_menu(view)
    assert menu[1] == SEPARATOR
    return menu[2:]


def test_the_first_entry_opens_the_control_page() -> None:
    for shown in (View(), View(servers=(ServerStatus("https://a.example/mcp", "valid"),))):
        first = whole_menu(shown)[0]
        assert first.label == "Open mcp-oauth-broker…" and first.enabled
        assert first.command == Command(Action.OPEN_PAGE)


A = "https://a.example/mcp"
B = "http://127.0.0.1:8000/mcp"
NOW = 1_800_000_000.0
ISSUER = "https://idp.example/pool"


def signed_in(url: str, expires_in: float = 3600) -> ServerStatus:
    return ServerStatus(url, "valid", ISSUER, "client", expires_at=NOW + expires_in)


def signed_out(url: str) -> ServerStatus:
    return ServerStatus(url, "signed_out", reason="never signed in")


def view(*servers: ServerStatus, **kwargs: object) -> View:
    return View(servers=servers, now=NOW, **kwargs)  # type: ignore[arg-type]


def labels(menu: tuple[Entry, ...]) -> list[str]:
    return [e.label for e in menu]


def submenu_of(menu: tuple[Entry, ...], url_part: str) -> dict[str, Entry]:
    (entry,) = [e for e in menu if url_part in e.label]
    return {e.label: e for e in entry.submenu}


@pytest.mark.parametrize(
    ("servers", "extra", "expected"),
    [
        ((), {}, Overall.NO_SERVERS),
        ((signed_in(A), signed_in(B)), {}, Overall.SIGNED_IN),
        ((signed_in(A), signed_out(B)), {}, Overall.NEEDS_SIGN_IN),
        (
            (signed_in(A), ServerStatus(B, "sign_in_required", ISSUER, "c")),
            {},
            Overall.NEEDS_SIGN_IN,
        ),
        ((signed_in(A), ServerStatus(B, "retrying", ISSUER, "c")), {}, Overall.REFRESHING),
        ((signed_out(A),), {"busy": frozenset({A})}, Overall.REFRESHING),
        ((signed_out(A), ServerStatus(B, "storage_error", reason="locked")), {}, Overall.ERROR),
        ((signed_in(A),), {"errors": {A: "sign-in failed"}}, Overall.ERROR),
    ],
)
def test_the_icon_state_is_the_worst_server_state(
    servers: tuple[ServerStatus, ...], extra: dict[str, object], expected: Overall
) -> None:
    assert overall(view(*servers, **extra)) is expected


def test_the_title_says_the_state_in_words() -> None:
    assert title(view(signed_in(A))) == "MCP OAuth Broker: signed in"
    assert title(view(signed_in(A), signed_in(B))) == "MCP OAuth Broker: signed in to all 2 servers"
    assert title(view(signed_in(A), signed_out(B))) == "MCP OAuth Broker: sign-in needed (1 of 2)"
    assert title(view()) == "MCP OAuth Broker: no servers configured"
    waiting = view(signed_in(A), consents=(ConsentRequest("cursor", A),))
    assert title(waiting).endswith("1 waiting for consent")


def test_each_server_has_its_state_and_its_own_actions() -> None:
    menu = entries(view(signed_in(A), signed_out(B)))

    assert menu[0].label.startswith("a.example/mcp: signed in, token until ")
    assert menu[1].label == "127.0.0.1:8000/mcp: sign-in needed"
    signed = submenu_of(menu, "a.example")
    assert list(signed) == ["Sign in again", "Sign out", "Copy access token"]
    assert all(e.enabled for e in signed.values())
    assert signed["Copy access token"].command == Command(Action.COPY_TOKEN, A)
    out = submenu_of(menu, "127.0.0.1")
    assert out["Sign in"].enabled and out["Sign in"].command == Command(Action.SIGN_IN, B)
    assert not out["Sign out"].enabled and not out["Copy access token"].enabled
    assert out["Copy sign-in link"].enabled
    assert out["Copy sign-in link"].command == Command(Action.COPY_SIGN_IN_LINK, B)


def test_copy_sign_in_link_only_for_a_persons_server_that_needs_a_sign_in() -> None:
    machine = ServerStatus(A, "sign_in_required", ISSUER, "m2m", machine=True)
    needs = ServerStatus(B, "sign_in_required", ISSUER, "client")
    menu = entries(view(machine, needs))

    assert "Copy sign-in link" not in submenu_of(menu, "a.example")  # a machine has no person
    assert "Copy sign-in link" in submenu_of(menu, "127.0.0.1")
    assert "Copy sign-in link" not in submenu_of(entries(view(signed_in(B))), "127.0.0.1")
    busy = submenu_of(entries(view(needs, busy=frozenset({B}))), "127.0.0.1")
    assert not busy["Copy sign-in link"].enabled


def test_a_server_being_signed_in_offers_no_second_sign_in() -> None:
    menu = entries(view(signed_out(A), busy=frozenset({A})))

    assert menu[0].label.endswith("working…")
    assert not any(e.enabled for e in submenu_of(menu, "a.example").values())


def test_the_fixed_entries_follow_the_servers_and_quit_is_last() -> None:
    menu = entries(view(signed_in(A), demo_url="http://127.0.0.1:8000/"))

    assert labels(menu)[1:] == [
        "",
        "Add server…",
        "Connect a client…",
        "Open demo server",
        "Start at login",
        "Open config folder",
        "",
        "Quit",
    ]
    autostart = menu[5]
    assert autostart.checked is False and not autostart.enabled  # state unknown: disabled
    assert menu[-1].command == Command(Action.QUIT)
    assert menu[1] == SEPARATOR


def connect_menu(menu: tuple[Entry, ...]) -> tuple[Entry, ...]:
    (entry,) = [e for e in menu if e.label == "Connect a client…"]
    assert entry.command is None
    return entry.submenu


def test_connect_a_client_lists_the_clients_found_ticking_those_already_connected() -> None:
    found = (ClientChoice("cursor", "Cursor", True), ClientChoice("codex", "Codex CLI", False))

    menu = connect_menu(entries(view(signed_in(A), clients=found)))

    assert [(e.label, e.command, e.checked, e.enabled) for e in menu] == [
        ("Cursor", Command(Action.CONNECT_CLIENT, client="cursor"), True, True),
        ("Codex CLI", Command(Action.CONNECT_CLIENT, client="codex"), False, True),
    ]


def test_connect_a_client_says_why_there_is_nothing_to_choose() -> None:
    found = (ClientChoice("cursor", "Cursor", False),)
    (no_server,) = connect_menu(entries(view(clients=found)))
    (no_client,) = connect_menu(entries(view(signed_in(A))))

    assert no_server.label == "Add a server first" and not no_server.enabled
    assert no_client.label == "No MCP client found" and not no_client.enabled


def test_open_demo_server_only_when_a_demo_is_configured() -> None:
    assert "Open demo server" not in labels(entries(view(signed_in(A))))
    assert labels(entries(view()))[0] == "No servers configured"


def test_a_consent_request_offers_allow_once_always_and_deny() -> None:
    menu = entries(view(signed_in(A), consents=(ConsentRequest("cursor", A),)))

    (entry,) = [e for e in menu if e.label.startswith("Allow cursor")]
    assert entry.label == "Allow cursor to use a.example/mcp?"
    assert [(e.label, e.command) for e in entry.submenu] == [
        ("Allow once", Command(Action.CONSENT, A, "cursor", Decision.ALLOW_ONCE)),
        ("Always allow", Command(Action.CONSENT, A, "cursor", Decision.ALLOW_ALWAYS)),
        ("Deny", Command(Action.CONSENT, A, "cursor", Decision.DENY)),
    ]


HOSTILE = "bad\x1b]0;pwned\x07 <b>html</b>\u202eevil\nnext line" + "x" * 200


def test_text_from_servers_is_escaped_and_cut_in_labels_and_title() -> None:
    broken = ServerStatus(A, "storage_error", reason=HOSTILE)
    menu = entries(view(broken, errors={}))
    text = menu[0].label + title(view(broken))

    assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text
    assert "\n" not in text
    assert len(menu[0].label) <= 80 and menu[0].label.endswith("…")
    assert "error: bad ]0;pwned <b>html</b>evil next line" in menu[0].label


def test_safe_text_keeps_plain_text_alone() -> None:
    assert safe_text("Sign-in needed: a.example (ünïcödé)") == "Sign-in needed: a.example (ünïcödé)"


def test_an_expired_token_says_so() -> None:
    menu = entries(view(signed_in(A, expires_in=-5)))
    assert menu[0].label == "a.example/mcp: signed in, token expired"


def test_only_servers_that_newly_need_sign_in_are_reported() -> None:
    before = view(signed_in(A), ServerStatus(B, "sign_in_required", ISSUER, "c"))
    after = view(ServerStatus(A, "sign_in_required", ISSUER, "c"), before.servers[1])

    assert needs_sign_in(before, after) == [A]
    assert needs_sign_in(after, after) == []
    assert needs_sign_in(None, before) == [B]


def test_expiry_is_shown_in_local_time() -> None:
    menu = entries(view(signed_in(A, expires_in=600)))
    assert menu[0].label.endswith(time.strftime("%H:%M", time.localtime(NOW + 600)))


def test_the_signed_in_user_is_named() -> None:
    status = replace(signed_in(A), user="demo\x1b]0;x")
    menu = entries(view(status))
    assert menu[0].label.startswith("a.example/mcp: signed in as demo")
    assert "\x1b" not in menu[0].label


def test_a_scope_asked_for_by_clients_gets_its_own_entry_while_signed_in() -> None:
    asked = {A: ("https://a.example/mcp/admin", ("cursor", "claude"))}
    menu = entries(view(signed_in(A), signed_out(B), step_ups=asked))

    signed = submenu_of(menu, "a.example")
    label = "Sign in again for https://a.example/mcp/admin (asked by cursor, claude)"
    assert list(signed)[:2] == [label, "Sign in again"]
    assert signed[label].command == Command(Action.STEP_UP, A)
    busy = submenu_of(entries(view(signed_in(A), step_ups=asked, busy=frozenset({A}))), "a.")
    assert not busy[label].enabled
    # Not signed in: a plain sign-in first (the offer is for adding to a sign-in).
    out = entries(view(signed_out(A), step_ups=asked))
    assert list(submenu_of(out, "a.example")) == [
        "Sign in",
        "Copy sign-in link",
        "Sign out",
        "Copy access token",
    ]


def test_a_machine_identity_is_named_by_its_client_not_a_user() -> None:
    machine = ServerStatus(A, "valid", ISSUER, "demo-m2m", expires_at=NOW + 60, machine=True)
    assert " as machine client demo-m2m, token until " in entries(view(machine))[0].label


def test_a_dpop_bound_server_says_so_in_its_label_and_its_submenu() -> None:
    bound = replace(signed_in(A), dpop_bound=True)
    menu = entries(view(bound, signed_in(B)))

    assert menu[0].label.startswith("a.example/mcp: signed in, token until ")
    assert menu[0].label.endswith(", DPoP-bound")
    note = list(submenu_of(menu, "a.example").values())[-1]
    assert note.label == DPOP_BOUND_NOTE and not note.enabled and note.command is None
    assert "DPoP" not in menu[1].label
    assert DPOP_BOUND_NOTE not in submenu_of(menu, "127.0.0.1")
    # A bound token is useless without the broker's key: nothing to copy.
    assert not submenu_of(menu, "a.example")["Copy access token"].enabled
    assert submenu_of(menu, "127.0.0.1")["Copy access token"].enabled
    # A label too long for the menu is cut, possibly before "DPoP-bound": the note stays.
    retrying = entries(view(replace(bound, state="retrying")))
    assert "retrying" in retrying[0].label and len(retrying[0].label) <= 80
    assert DPOP_BOUND_NOTE in submenu_of(retrying, "a.example")
