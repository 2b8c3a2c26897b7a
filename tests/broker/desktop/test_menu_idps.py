"""The tray shows an enterprise IdP sign-in as one entry with its servers under it."""

from __future__ import annotations

from broker.desktop.menu import Action, View, entries
from broker.tokens.status import IdpStatus, ServerStatus

A = "https://a.example/mcp"
B = "https://b.example/mcp"
PLAIN = "https://plain.example/mcp"


def view(state: str = "valid") -> View:
    servers = tuple(ServerStatus(u, "valid", "https://as", "c") for u in (A, PLAIN, B))
    idp = IdpStatus("corp", "https://idp.example", state, user="alice", servers=(A, B))
    return View(servers=servers, now=0.0, idps=(idp,))


def test_the_idp_is_one_entry_with_its_servers_under_it() -> None:
    menu = entries(view())
    labels = [e.label for e in menu]
    assert any(label.startswith("plain.example/mcp") for label in labels)
    assert not any(label.startswith(("a.example", "b.example")) for label in labels)
    (idp,) = [e for e in menu if e.label.startswith("corp")]
    assert "signed in as alice" in idp.label
    sign_in, separator, *servers = idp.submenu
    assert sign_in.command is not None and sign_in.command.action is Action.SIGN_IN_IDP
    assert sign_in.command.client == "corp" and sign_in.label == "Sign in again at corp"
    assert separator.is_separator
    assert [s.label.split(":")[0] for s in servers] == ["a.example/mcp", "b.example/mcp"]


def test_an_idp_without_sign_in_offers_it() -> None:
    (idp,) = [e for e in entries(view("signed_out")) if e.label.startswith("corp")]
    assert "sign-in needed" in idp.label and idp.submenu[0].label == "Sign in at corp"
