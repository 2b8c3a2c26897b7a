"""The tray menu as plain data: what the icon, its title and its menu say, from a :class:`View`.

No pystray, no I/O: the tray module turns :class:`Entry` trees into pystray menus, and the
controller fills :class:`View` snapshots from the broker. Every menu item carries a
:class:`Command` that the tray posts to the controller's worker when it is chosen.

Text that came from a server (``reason``, ``error_description``, a URL) goes through
:func:`~broker.safetext.safe_text` before it reaches a label or the title (escape sequences
and markup in server text are never shown).
"""

from __future__ import annotations

import datetime
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from broker.api.clients import ConsentRequest, Decision
from broker.config import server_label
from broker.safetext import safe_text
from broker.tokens.service import UNREACHABLE
from broker.tokens.status import IdpStatus, ServerStatus

_SIGNED_IN = {"valid"}
_NEEDS_SIGN_IN = {"signed_out", "sign_in_required", "unknown"}
_REFRESHING = {"retrying"}
LABEL_LIMIT = 80
DPOP_BOUND_NOTE = "Tokens DPoP-bound: only the broker's bridge can use them"


class Overall(enum.Enum):
    """The one state the icon shows, worst first: error, needs sign-in, refreshing, signed in."""

    NO_SERVERS = "no_servers"
    SIGNED_IN = "signed_in"
    NEEDS_SIGN_IN = "needs_sign_in"
    REFRESHING = "refreshing"
    ERROR = "error"


class Action(enum.Enum):
    OPEN_PAGE = "open_page"
    SIGN_IN = "sign_in"
    SIGN_OUT = "sign_out"
    COPY_TOKEN = "copy_token"  # noqa: S105 - a menu action, not a secret
    COPY_SIGN_IN_LINK = "copy_sign_in_link"
    ADD_SERVER = "add_server"
    CONNECT_CLIENT = "connect_client"
    OPEN_DEMO = "open_demo"
    OPEN_CONFIG = "open_config"
    TOGGLE_AUTOSTART = "toggle_autostart"
    CONSENT = "consent"
    STEP_UP = "step_up"
    SIGN_IN_IDP = "sign_in_idp"  # ``client`` names the IdP
    QUIT = "quit"


@dataclass(frozen=True)
class Command:
    """What a menu item asks for: ``url`` names the server, ``client`` a consent's client (or,
    for "Connect a client…", the MCP client's name as ``mcp-broker configure`` takes it);
    ``scope``, scopes a sign-in adds (the control page's "Sign in again with more scopes")."""

    action: Action
    url: str | None = None
    client: str | None = None
    decision: Decision | None = None
    scope: str | None = None


@dataclass(frozen=True)
class Entry:
    """One menu item: a command, a submenu, or a separator (``label == ""``)."""

    label: str
    command: Command | None = None
    enabled: bool = True
    checked: bool | None = None
    submenu: tuple[Entry, ...] = ()

    @property
    def is_separator(self) -> bool:
        return self.label == ""


SEPARATOR = Entry("")


@dataclass(frozen=True)
class ClientChoice:
    """An MCP client found on this machine (``mcp-broker configure --detect``)."""

    name: str  # as ``mcp-broker configure`` takes it
    title: str
    connected: bool  # its file already reaches every configured server through the broker


@dataclass(frozen=True)
class View:
    """A snapshot of everything the tray shows; built off the tray thread, never holds a token."""

    servers: tuple[ServerStatus, ...] = ()
    now: float = 0.0
    busy: frozenset[str] = frozenset()
    """Servers with a sign-in or sign-out in progress from the tray."""
    errors: Mapping[str, str] = field(default_factory=dict)
    """The last tray action that failed, per server URL (already a safe message)."""
    consents: tuple[ConsentRequest, ...] = ()
    demo_url: str | None = None
    autostart: bool | None = None
    """None: starting at login is not wired yet, so the checkbox is shown disabled."""
    step_ups: Mapping[str, tuple[str, tuple[str, ...]]] = field(default_factory=dict)
    """Per server URL: scopes API clients asked for that the sign-in lacks, and those clients."""
    clients: tuple[ClientChoice, ...] = ()
    """The MCP clients found on this machine, for "Connect a client…"."""
    idps: tuple[IdpStatus, ...] = ()
    """Enterprise IdP sign-ins; each is one entry with its servers under it."""


def server_name(url: str, resource_name: str | None = None) -> str:
    """A short name for a server: its PRM ``resource_name`` when it publishes one, else
    host[:port] and path from the configured URL."""
    return server_label(url, resource_name)


def server_state(status: ServerStatus, view: View) -> Overall:
    if status.url in view.busy:
        return Overall.REFRESHING
    if status.url in view.errors or status.state not in (_SIGNED_IN | _NEEDS_SIGN_IN | _REFRESHING):
        return Overall.ERROR
    if status.state in _NEEDS_SIGN_IN:
        return Overall.NEEDS_SIGN_IN
    if status.state in _REFRESHING:
        return Overall.REFRESHING
    return Overall.SIGNED_IN


def overall(view: View) -> Overall:
    if not view.servers:
        return Overall.NO_SERVERS
    states = {server_state(s, view) for s in view.servers}
    for worst in (Overall.ERROR, Overall.NEEDS_SIGN_IN, Overall.REFRESHING):
        if worst in states:
            return worst
    return Overall.SIGNED_IN


def title(view: View) -> str:
    """The icon's title / tooltip: the overall state in words."""
    state = overall(view)
    count = sum(1 for s in view.servers if server_state(s, view) is state)
    total = len(view.servers)
    words = {
        Overall.NO_SERVERS: "no servers configured",
        Overall.SIGNED_IN: "signed in" if total == 1 else f"signed in to all {total} servers",
        Overall.NEEDS_SIGN_IN: f"sign-in needed ({count} of {total})",
        Overall.REFRESHING: f"{_refreshing_words(view)} ({count} of {total})",
        Overall.ERROR: f"error ({count} of {total})",
    }[state]
    waiting = f", {len(view.consents)} waiting for consent" if view.consents else ""
    return f"MCP OAuth Broker: {words}{waiting}"


def _refreshing_words(view: View) -> str:
    """Say "can't reach" rather than "refreshing" when every such server is only retrying: the
    user should know the authorization server is away (and that signing in will not help)."""
    if any(s.url in view.busy for s in view.servers):
        return "refreshing"
    return UNREACHABLE


def describe(status: ServerStatus, view: View) -> str:
    """A server's state in words: who is signed in and until when, or what is wrong."""
    state = server_state(status, view)
    if state is Overall.ERROR:
        problem = view.errors.get(status.url) or status.reason or status.state
        return "error: " + safe_text(problem, 50)
    if status.url in view.busy:
        return "working…"
    if state is Overall.NEEDS_SIGN_IN:
        return "sign-in needed"
    who = f" as {safe_text(status.user, 30)}" if status.user else ""
    if status.machine and status.client_id:  # a machine identity: the client, never a user
        who = f" as machine client {safe_text(status.client_id, 30)}"
    until = _until(status.expires_at, view.now)
    # Bound to the broker's key (RFC 9449): only its bridge can use them; never the key itself.
    bound = ", DPoP-bound" if status.dpop_bound else ""
    if state is Overall.REFRESHING:
        return f"{UNREACHABLE}, retrying{until}{bound}"
    return f"signed in{who}{until}{bound}"


def _until(expires_at: float | None, now: float) -> str:
    if expires_at is None:
        return ""
    if expires_at <= now:
        return ", token expired"
    moment = datetime.datetime.fromtimestamp(expires_at).astimezone()
    return f", token until {moment:%H:%M}"


def server_entry(status: ServerStatus, view: View) -> Entry:
    state = server_state(status, view)
    busy = status.url in view.busy
    signed_in = status.state in _SIGNED_IN | _REFRESHING
    step_up = view.step_ups.get(status.url)
    asked: tuple[Entry, ...] = ()
    if step_up is not None and signed_in:
        scope, clients = step_up
        label = f"Sign in again for {scope} (asked by {', '.join(clients)})"
        asked = (
            Entry(
                safe_text(label, LABEL_LIMIT), Command(Action.STEP_UP, status.url), enabled=not busy
            ),
        )
    # A signed-out person's server: the sign-in link for a browser of the user's choosing.
    link = (
        (Entry("Copy sign-in link", Command(Action.COPY_SIGN_IN_LINK, status.url),
               enabled=not busy),)
        if not signed_in and not status.machine
        else ()
    )  # fmt: skip
    # Said in the label too, where a long name may cut it off: here it always shows.
    bound = (Entry(DPOP_BOUND_NOTE, enabled=False),) if status.dpop_bound else ()
    actions = (
        *asked,
        Entry("Sign in again" if signed_in else "Sign in", Command(Action.SIGN_IN, status.url),
              enabled=not busy),
        *link,
        Entry("Sign out", Command(Action.SIGN_OUT, status.url),
              enabled=not busy and status.issuer is not None),
        # A DPoP-bound token is of no use without the broker's key: nothing to copy.
        Entry("Copy access token", Command(Action.COPY_TOKEN, status.url),
              enabled=not busy and signed_in and state is not Overall.ERROR
              and not status.dpop_bound),
        *bound,
    )  # fmt: skip
    label = f"{server_name(status.url, status.name)}: {describe(status, view)}"
    return Entry(safe_text(label, LABEL_LIMIT), submenu=actions)


def consent_entry(request: ConsentRequest) -> Entry:
    def choice(label: str, decision: Decision) -> Entry:
        return Entry(label, Command(Action.CONSENT, request.resource, request.client, decision))

    label = f"Allow {safe_text(request.client, 30)} to use {server_name(request.resource)}?"
    return Entry(
        safe_text(label, LABEL_LIMIT),
        submenu=(
            choice("Allow once", Decision.ALLOW_ONCE),
            choice("Always allow", Decision.ALLOW_ALWAYS),
            choice("Deny", Decision.DENY),
        ),
    )


def client_entries(view: View) -> tuple[Entry, ...]:
    """The "Connect a client…" submenu: each client found, ticked once it reaches every server
    through the broker; choosing one writes the broker's entries into its file."""
    if not view.servers:
        return (Entry("Add a server first", enabled=False),)
    if not view.clients:
        return (Entry("No MCP client found", enabled=False),)
    return tuple(
        Entry(c.title, Command(Action.CONNECT_CLIENT, client=c.name), checked=c.connected)
        for c in view.clients
    )


def idp_entry(idp: IdpStatus, view: View) -> Entry:
    """An enterprise IdP's sign-in: "Sign in at NAME" (once for all its servers), then its
    servers, each with its own submenu."""
    if idp.state == "id_token_file":
        words = "ID token from a file"
    elif idp.state in _SIGNED_IN | _REFRESHING:
        who = f" as {safe_text(idp.user, 30)}" if idp.user else ""
        words = f"signed in{who}"
    else:
        words = "sign-in needed"
    busy = f"idp {idp.name}" in view.busy
    sign_in = Entry(
        f"Sign in at {idp.name}" if words == "sign-in needed" else f"Sign in again at {idp.name}",
        Command(Action.SIGN_IN_IDP, client=idp.name),
        enabled=not busy and idp.state != "id_token_file",
    )
    servers = tuple(server_entry(s, view) for s in view.servers if s.url in idp.servers)
    label = f"{idp.name} (organisation sign-in): {'working…' if busy else words}"
    return Entry(safe_text(label, LABEL_LIMIT), submenu=(sign_in, SEPARATOR, *servers))


def entries(view: View) -> tuple[Entry, ...]:
    """The whole menu, top to bottom."""
    under_idp = {url for idp in view.idps for url in idp.servers}
    servers = tuple(server_entry(s, view) for s in view.servers if s.url not in under_idp)
    servers = (*servers, *(idp_entry(idp, view) for idp in view.idps)) or (
        Entry("No servers configured", enabled=False),
    )
    consents = tuple(consent_entry(r) for r in view.consents)
    demo = (Entry("Open demo server", Command(Action.OPEN_DEMO, view.demo_url)),)
    return (
        Entry("Open mcp-oauth-broker…", Command(Action.OPEN_PAGE)),
        SEPARATOR,
        *servers,
        *((SEPARATOR, *consents) if consents else ()),
        SEPARATOR,
        Entry("Add server…", Command(Action.ADD_SERVER)),
        Entry("Connect a client…", submenu=client_entries(view)),
        *(demo if view.demo_url else ()),
        Entry(
            "Start at login",
            Command(Action.TOGGLE_AUTOSTART),
            enabled=view.autostart is not None,
            checked=bool(view.autostart),
        ),
        Entry("Open config folder", Command(Action.OPEN_CONFIG)),
        SEPARATOR,
        Entry("Quit", Command(Action.QUIT)),
    )


def needs_sign_in(before: View | None, after: View) -> list[str]:
    """Servers that newly need the user to sign in (what deserves a notification)."""
    was = {s.url for s in before.servers if s.state == "sign_in_required"} if before else set()
    return [s.url for s in after.servers if s.state == "sign_in_required" and s.url not in was]
