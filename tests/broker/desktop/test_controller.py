"""What the tray's menu items do: on a worker, never on the tray thread, never showing a token."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from broker.api.clients import ConsentRequest, Decision
from broker.desktop.controller import STEP_UP_TTL, Controller
from broker.desktop.menu import Action, ClientChoice, Command, Overall, View, overall
from broker.errors import AuthorizationDenied, ClientConfigError, InteractionRequired
from broker.signin.login import Headless
from broker.tokens.status import IdpStatus, ServerStatus, SignOutResult
from broker.tokens.tokenset import TokenKey, TokenSet

URL = "https://mcp.example/mcp"
ISSUER = "https://idp.example/pool"
SECRET_TOKEN = "at-SECRET-canary-0123456789"
LINK = "https://idp.example/authorize?client_id=client&state=s&code_challenge=c"
WAIT = 30.0  # a bound for a stuck test, not a timing assertion


class FakeBroker:
    def __init__(self, tmp_path: Path) -> None:
        self.config_file = tmp_path / "config.toml"
        self.state = "signed_out"
        self.login_threads: list[str] = []
        self.release_login = threading.Event()
        self.login_error: Exception | None = None
        self.extra_scopes: list[str | None] = []
        self.headless: list[Headless | None] = []

    def status(self) -> list[ServerStatus]:
        return [ServerStatus(URL, self.state, ISSUER, "client", expires_at=2e9)]

    def login(
        self, url: str, extra_scope: str | None = None, headless: Headless | None = None
    ) -> TokenSet:
        self.login_threads.append(threading.current_thread().name)
        self.extra_scopes.append(extra_scope)
        self.headless.append(headless)
        if headless is not None:  # the flow hands the link out before it waits for the callback
            assert headless.mode == "link"
            headless.tell(LINK)
        assert self.release_login.wait(WAIT)
        if self.login_error is not None:
            raise self.login_error
        self.state = "valid"
        return self.token(url)

    def logout(self, url: str) -> SignOutResult:
        self.state = "signed_out"
        return SignOutResult(1, 1, True)

    def idp_status(self) -> list[IdpStatus]:
        return []

    def login_idp(self, name: str) -> TokenSet:
        raise AssertionError("no IdP here")

    def token(self, url: str, min_valid: float | None = None) -> TokenSet:
        if self.state != "valid":
            raise InteractionRequired(f"not signed in to {url}")
        return TokenSet(TokenKey(ISSUER, "client", url), SECRET_TOKEN, 2e9)


class Recorder:
    """The tray side: views shown, clipboard, notifications; lets a test wait for a view."""

    def __init__(self) -> None:
        self.views: list[View] = []
        self.clipboard: list[str] = []
        self.notes: list[tuple[str, str]] = []
        self.opened: list[str] = []
        self.quits: list[str] = []
        self.changed = threading.Condition()

    def show(self, view: View) -> None:
        with self.changed:
            self.views.append(view)
            self.changed.notify_all()

    def notify(self, summary: str, body: str) -> None:
        with self.changed:
            self.notes.append((summary, body))
            self.changed.notify_all()

    def wait_view(
        self, what: str, check: Callable[[View], object], after: View | None = None
    ) -> View:
        """The latest view passing ``check``, among those shown after ``after``."""

        def candidates() -> list[View]:
            start = self.views.index(after) + 1 if after is not None else 0
            return [v for v in self.views[start:] if check(v)]

        with self.changed:
            assert self.changed.wait_for(candidates, WAIT), f"no view {what}: {self.views[-1:]}"
            return candidates()[-1]

    def wait_note(self, summary: str) -> tuple[str, str]:
        with self.changed:
            assert self.changed.wait_for(lambda: any(n[0] == summary for n in self.notes), WAIT)
            return next(n for n in self.notes if n[0] == summary)


@pytest.fixture
def fake(tmp_path: Path) -> FakeBroker:
    return FakeBroker(tmp_path)


@pytest.fixture
def tray() -> Recorder:
    return Recorder()


@pytest.fixture
def controller(fake: FakeBroker, tray: Recorder) -> Iterator[Controller]:
    c = Controller(
        fake,
        tray,
        open_url=tray.opened.append,
        open_folder=lambda p: tray.opened.append(str(p)),
        show=tray.show,
        copy=tray.clipboard.append,
        on_quit=lambda: tray.quits.append(threading.current_thread().name),
    )
    c.start()
    yield c
    fake.release_login.set()
    c.stop()


def test_sign_in_runs_off_the_posting_thread_and_the_icon_follows(
    controller: Controller, fake: FakeBroker, tray: Recorder
) -> None:
    tray.wait_view("at start", lambda v: overall(v) is Overall.NEEDS_SIGN_IN)

    controller.post(Command(Action.SIGN_IN, URL))  # returns at once: the login is still waiting
    busy = tray.wait_view("while signing in", lambda v: URL in v.busy)
    controller.post(Command(Action.SIGN_IN, URL))  # a second click starts no second sign-in
    tray.wait_view("after the second click", lambda v: URL in v.busy, after=busy)
    fake.release_login.set()
    done = tray.wait_view("signed in", lambda v: overall(v) is Overall.SIGNED_IN)

    assert overall(busy) is Overall.REFRESHING
    assert fake.login_threads == ["tray-sign-in"]
    assert not done.busy
    assert tray.wait_note("Signed in")[1] == "Signed in to mcp.example/mcp."


def test_a_failed_sign_in_shows_an_escaped_error(
    controller: Controller, fake: FakeBroker, tray: Recorder
) -> None:
    fake.login_error = AuthorizationDenied("denied: <script>\x1b[31mred\x1b[0m", "access_denied")
    fake.release_login.set()

    controller.post(Command(Action.SIGN_IN, URL))
    failed = tray.wait_view("with the error", lambda v: URL in v.errors)
    _summary, body = tray.wait_note("mcp.example/mcp: it did not work")

    assert overall(failed) is Overall.ERROR
    assert "\x1b" not in failed.errors[URL] and "\x1b" not in body
    assert failed.errors[URL] == "denied: <script> [31mred [0m"


def test_copy_access_token_puts_it_on_the_clipboard_and_nowhere_else(
    controller: Controller, fake: FakeBroker, tray: Recorder
) -> None:
    fake.state = "valid"
    controller.post(Command(Action.COPY_TOKEN, URL))
    tray.wait_note("Access token copied")

    assert tray.clipboard == [SECRET_TOKEN]
    shown = repr(tray.notes) + repr(tray.views)
    assert SECRET_TOKEN not in shown


def test_copy_sign_in_link_puts_the_link_on_the_clipboard_and_the_callback_signs_in(
    controller: Controller, fake: FakeBroker, tray: Recorder
) -> None:
    controller.post(Command(Action.COPY_SIGN_IN_LINK, URL))
    tray.wait_note("Sign-in link copied")
    waiting = tray.wait_view("waiting for the callback", lambda v: URL in v.busy)
    fake.release_login.set()  # the user's browser delivered the loopback callback
    tray.wait_view("signed in", lambda v: overall(v) is Overall.SIGNED_IN, after=waiting)

    assert tray.clipboard == [LINK]
    assert [h.mode if h else None for h in fake.headless] == ["link"]
    assert fake.login_threads == ["tray-sign-in"]
    assert tray.wait_note("Signed in")[1] == "Signed in to mcp.example/mcp."
    assert LINK not in repr(tray.notes)


def test_without_a_clipboard_the_sign_in_link_is_shown_in_a_notification(
    fake: FakeBroker, tray: Recorder
) -> None:
    controller = Controller(
        fake,
        tray,
        open_url=tray.opened.append,
        open_folder=lambda p: None,
        show=tray.show,
        copy=lambda text: False,  # the tray has no clipboard here
    )
    controller.start()
    try:
        controller.post(Command(Action.COPY_SIGN_IN_LINK, URL))
        assert tray.wait_note("Sign-in link for mcp.example/mcp")[1] == LINK
    finally:
        fake.release_login.set()
        controller.stop()


def test_copy_without_a_sign_in_says_so(
    controller: Controller, fake: FakeBroker, tray: Recorder
) -> None:
    controller.post(Command(Action.COPY_TOKEN, URL))
    _summary, body = tray.wait_note("MCP OAuth Broker")
    assert "not signed in" in body and tray.clipboard == []


def test_quit_is_handled_at_once_without_the_worker(controller: Controller, tray: Recorder) -> None:
    controller.post(Command(Action.QUIT))
    assert tray.quits == [threading.current_thread().name]


def test_a_consent_request_is_notified_listed_and_answered(
    controller: Controller, tray: Recorder
) -> None:
    answers: list[tuple[ConsentRequest, Decision]] = []
    request = ConsentRequest("cursor", URL)
    asked = ConsentRequest(
        "cursor", URL, answer=lambda decision: answers.append((request, decision))
    )

    controller.request_consent(asked)
    controller.request_consent(request)  # asked twice, listed once
    asking = tray.wait_view("asking", lambda v: v.consents)
    controller.post(Command(Action.CONSENT, URL, "cursor", Decision.ALLOW_ONCE))
    tray.wait_view("answered", lambda v: not v.consents, after=asking)

    assert asking.consents == (request,)
    assert answers == [(request, Decision.ALLOW_ONCE)]
    assert [n for n in tray.notes if "asks for access" in n[0]] == [
        (
            "cursor asks for access",
            "cursor wants a token for mcp.example/mcp. Allow or deny it in the tray menu.",
        )
    ]


def test_a_server_that_newly_needs_sign_in_is_notified_once(
    controller: Controller, fake: FakeBroker, tray: Recorder
) -> None:
    fake.state = "valid"
    controller.refresh()
    signed = tray.wait_view("signed in", lambda v: overall(v) is Overall.SIGNED_IN)

    fake.state = "sign_in_required"
    controller.refresh()
    expired = tray.wait_view("expired", lambda v: overall(v) is Overall.NEEDS_SIGN_IN, signed)
    controller.refresh()
    tray.wait_view("again", lambda v: True, after=expired)

    assert [n for n in tray.notes if n[0] == "Sign-in needed"] == [
        ("Sign-in needed", "Sign in to mcp.example/mcp again from the tray menu.")
    ]


def test_add_server_explains_the_command_and_demo_and_folder_open(
    fake: FakeBroker, tray: Recorder
) -> None:
    c = Controller(
        fake,
        tray,
        open_url=tray.opened.append,
        open_folder=lambda p: tray.opened.append(str(p)),
        demo_url="http://127.0.0.1:8000/",
        show=tray.show,
    )
    c.start()
    try:
        c.post(Command(Action.ADD_SERVER))
        c.post(Command(Action.OPEN_DEMO))
        c.post(Command(Action.OPEN_CONFIG))
        assert "mcp-broker add" in tray.wait_note("Add a server")[1]
        tray.wait_view("after the three", lambda v: len(tray.opened) == 2)
    finally:
        c.stop()
    assert tray.opened == ["http://127.0.0.1:8000/", str(fake.config_file.parent)]


def test_open_and_add_server_open_the_control_page(fake: FakeBroker, tray: Recorder) -> None:
    pages: list[str | None] = []
    c = Controller(
        fake,
        tray,
        open_url=tray.opened.append,
        open_folder=lambda p: None,
        show=tray.show,
        open_page=pages.append,
    )
    c.start()
    try:
        c.post(Command(Action.OPEN_PAGE))
        c.post(Command(Action.ADD_SERVER))
        tray.wait_view("both opened", lambda v: len(pages) == 2)
    finally:
        c.stop()
    assert pages == [None, "/ui/servers/add"]
    assert tray.opened == [] and not [n for n in tray.notes if n[0] == "Add a server"]


def test_an_api_client_waiting_for_sign_in_asks_the_user(
    controller: Controller, tray: Recorder
) -> None:
    controller.interaction_required(URL, "claude\x1b[2J")
    _summary, body = tray.wait_note("Sign-in needed")
    assert body == "claude [2J needs a token for mcp.example/mcp: choose Sign in in the tray menu."


def test_a_scope_a_client_lacks_is_offered_as_its_own_sign_in(
    fake: FakeBroker, tray: Recorder
) -> None:
    mono = [0.0]
    c = Controller(
        fake, tray, open_url=print, open_folder=print, show=tray.show, monotonic=lambda: mono[0]
    )
    c.start()
    try:
        fake.state = "valid"
        fake.release_login.set()
        admin = "https://mcp.example/mcp/admin"
        c.interaction_required(URL, "cursor", admin)
        c.interaction_required(URL, "claude\x1b[2J", "https://mcp.example/mcp/write")
        _summary, body = tray.wait_note("More access asked")
        assert body.startswith(f"cursor needs the scope {admin} on mcp.example/mcp")
        offered = tray.wait_view("the offer", lambda v: URL in v.step_ups)
        both = f"{admin} https://mcp.example/mcp/write"
        assert offered.step_ups[URL] == (both, ("cursor", "claude [2J"))  # merged, escaped

        c.post(Command(Action.SIGN_IN, URL))  # a plain sign-in never adds what was asked
        tray.wait_view("signed in plainly", lambda v: len(fake.extra_scopes) == 1)
        c.post(Command(Action.STEP_UP, URL))
        # Views shown before the step-up ended pass a check on the fake alone, so the check is
        # on what the view shows: the offer withdrawn (a wait that fails if it never is).
        tray.wait_view(
            "stepped up, offer withdrawn",
            lambda v: len(fake.extra_scopes) == 2 and not v.busy and URL not in v.step_ups,
        )
        assert fake.extra_scopes == [None, both]

        c.interaction_required(URL, "cursor", admin)
        tray.wait_view("offered again", lambda v: URL in v.step_ups)
        mono[0] += STEP_UP_TTL + 1  # lapses
        c.refresh()
        tray.wait_view("lapsed", lambda v: URL not in v.step_ups and mono[0] > STEP_UP_TTL)

        c.interaction_required(URL, "cursor", admin)
        tray.wait_view("offered once more", lambda v: URL in v.step_ups)
        c.post(Command(Action.SIGN_OUT, URL))  # and a sign-out withdraws it
        tray.wait_view("signed out", lambda v: URL not in v.step_ups and not v.busy)
    finally:
        c.stop()


def test_views_never_carry_tokens(fake: FakeBroker) -> None:
    status = replace(fake.status()[0], state="valid")
    assert SECRET_TOKEN not in repr(View(servers=(status,)))


def test_start_at_login_checkbox_shows_and_toggles_the_real_autostart_entry(
    fake: FakeBroker, tray: Recorder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from broker.desktop import autostart

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    entry = tmp_path / "xdg" / "autostart"
    c = Controller(
        fake,
        tray,
        open_url=tray.opened.append,
        open_folder=print,
        autostart=autostart,
        show=tray.show,
    )
    c.start()
    try:
        first = tray.wait_view("unchecked", lambda v: v.autostart is False)
        c.post(Command(Action.TOGGLE_AUTOSTART))
        on = tray.wait_view("checked", lambda v: v.autostart is True, after=first)
        assert [p.suffix for p in entry.iterdir()] == [".desktop"]
        c.post(Command(Action.TOGGLE_AUTOSTART))
        tray.wait_view("unchecked again", lambda v: v.autostart is False, after=on)
    finally:
        c.stop()
    assert not entry.exists() or list(entry.iterdir()) == []


class FakeClients:
    """The MCP clients found: records what the tray asked for, and on which thread."""

    def __init__(self) -> None:
        self.connected: dict[str, list[str]] = {}
        self.threads: list[str] = []
        self.error: Exception | None = None

    def detected(self, urls: Sequence[str]) -> tuple[ClientChoice, ...]:
        return (ClientChoice("cursor", "Cursor", self.connected.get("cursor") == list(urls)),)

    def connect(self, name: str, urls: Sequence[str]) -> str:
        self.threads.append(threading.current_thread().name)
        if self.error is not None:
            raise self.error
        self.connected[name] = list(urls)
        return f"{name} now reaches {len(urls)} server"


def test_connect_a_client_writes_its_entries_off_the_tray_thread_and_ticks_it(
    fake: FakeBroker, tray: Recorder
) -> None:
    clients = FakeClients()
    c = Controller(fake, tray, open_url=print, open_folder=print, clients=clients, show=tray.show)
    c.start()
    try:
        first = tray.wait_view("with the clients", lambda v: v.clients)
        assert first.clients == (ClientChoice("cursor", "Cursor", False),)

        c.post(Command(Action.CONNECT_CLIENT, client="cursor"))

        tray.wait_view("cursor ticked", lambda v: v.clients and v.clients[0].connected)
        assert clients.connected == {"cursor": [URL]} and clients.threads == ["tray-worker"]
        assert tray.wait_note("Connect a client")[1] == "cursor now reaches 1 server"

        clients.error = ClientConfigError("/home/me/.cursor/mcp.json: is not valid JSON")
        c.post(Command(Action.CONNECT_CLIENT, client="cursor"))
        tray.wait_note("MCP OAuth Broker")
        assert ("MCP OAuth Broker", "/home/me/.cursor/mcp.json: is not valid JSON") in tray.notes
    finally:
        c.stop()


def test_a_sign_in_with_more_scopes_asks_for_them(fake: FakeBroker, tray: Recorder) -> None:
    c = Controller(fake, tray, open_url=print, open_folder=print, show=tray.show)
    c.start()
    try:
        fake.release_login.set()
        c.post(Command(Action.SIGN_IN, URL, scope="mcp/write mcp/admin"))
        tray.wait_view("signed in", lambda v: len(fake.extra_scopes) == 1 and not v.busy)
    finally:
        c.stop()
    assert fake.extra_scopes == ["mcp/write mcp/admin"]
