"""What the tray's menu items do, off the tray thread.

The tray posts :class:`~broker.desktop.menu.Command` objects; a worker thread carries them out
against the broker (keyring, network, browser) and pushes a fresh :class:`~broker.desktop.menu.View`
back to the tray after each one, after every token state change the service reports, and every
``tick`` seconds (so "token until 14:05" stays true). Sign-in and sign-out run on their own daemon
threads because a sign-in waits for the user's browser for minutes; the worker stays free meanwhile.
Quit is handled at once in the caller's thread: it only tells the runner to stop.

Nothing here shows or logs a token: "Copy access token" hands it to the clipboard function only.
"Copy sign-in link" runs the one sign-in flow (:class:`broker.signin.flow.SignInFlow`) with the
``link`` mode of :class:`broker.signin.login.Headless`: the authorization URL goes to the
clipboard (or, where the tray has none, into a notification) instead of the default browser, and
the loopback callback completes the sign-in when the user opens it in the browser they choose.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from broker.api.clients import ConsentRequest, Decision
from broker.desktop.menu import (
    Action,
    ClientChoice,
    Command,
    View,
    needs_sign_in,
    server_name,
)
from broker.desktop.notify import Notifier
from broker.errors import BrokerError
from broker.safetext import safe_text
from broker.tokens.status import IdpStatus, ServerStatus, SignOutResult
from broker.tokens.tokenset import TokenSet

if TYPE_CHECKING:
    from broker.signin.login import Headless

logger = logging.getLogger(__name__)


class BrokerLike(Protocol):
    """The part of :class:`broker.app.Broker` the tray uses."""

    config_file: Path

    def status(self) -> list[ServerStatus]: ...
    def login(
        self, url: str, extra_scope: str | None = None, headless: Headless | None = None
    ) -> TokenSet: ...
    def logout(self, url: str) -> SignOutResult: ...
    def token(self, url: str, min_valid: float | None = None) -> TokenSet: ...
    def idp_status(self) -> list[IdpStatus]: ...
    def login_idp(self, name: str) -> TokenSet: ...


class _Refresh:
    """Queue marker: rebuild the view."""


_REFRESH = _Refresh()
_STOP = None

STEP_UP_TTL = 600.0
"""Seconds the menu offers a sign-in for scopes an API client asked for."""


class StartAtLogin(Protocol):
    """What the "Start at login" checkbox needs (:mod:`broker.desktop.autostart` provides it)."""

    def is_installed(self) -> bool: ...

    def set_installed(self, enabled: bool) -> object: ...


class ClientLinks(Protocol):
    """The MCP clients on this machine and how to connect one ("Connect a client…");
    :mod:`broker.desktop.clients` provides it with ``mcp-broker configure``'s own code."""

    def detected(self, urls: Sequence[str]) -> tuple[ClientChoice, ...]: ...

    def connect(self, name: str, urls: Sequence[str]) -> str:
        """Write the entries for ``urls`` into client ``name``'s file; what to tell the user."""
        ...


class Controller:
    def __init__(
        self,
        broker: BrokerLike,
        notifier: Notifier,
        *,
        open_url: Callable[[str], object],
        open_folder: Callable[[Path], None],
        demo_url: str | None = None,
        autostart: StartAtLogin | None = None,
        clients: ClientLinks | None = None,
        show: Callable[[View], None] = lambda view: None,
        copy: Callable[[str], object] = lambda text: None,
        on_quit: Callable[[], None] = lambda: None,
        open_page: Callable[[str | None], object] | None = None,
        tick: float = 30.0,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._broker = broker
        self._mono = monotonic
        self.notifier = notifier
        self._open_url = open_url
        self._open_folder = open_folder
        self._demo_url = demo_url
        self._autostart = autostart
        self._clients = clients
        self._tick = tick
        self._clock = clock
        self._queue: queue.Queue[Command | _Refresh | None] = queue.Queue()
        self._lock = threading.Lock()  # guards the fields below
        self._busy: set[str] = set()
        # server → (scopes API clients asked for, those clients, when first asked: monotonic)
        self._step_ups: dict[str, tuple[str, tuple[str, ...], float]] = {}
        self._errors: dict[str, str] = {}
        self._consents: list[ConsentRequest] = []
        self._view = View(demo_url=demo_url)
        self._thread: threading.Thread | None = None
        self._show = show
        self._copy = copy
        self._on_quit = on_quit
        self._page_opener = open_page

    # -- what other threads call ---------------------------------------------------------------

    def post(self, command: Command) -> None:
        """Queue ``command`` for the worker; never blocks (safe from the tray's callbacks)."""
        if command.action is Action.QUIT:
            self._on_quit()
            return
        self._queue.put(command)

    def refresh(self, *_: object) -> None:
        """Rebuild the view soon (a service listener: any arguments are ignored)."""
        self._queue.put(_REFRESH)

    def request_consent(self, request: ConsentRequest) -> None:
        """A named API client asked for a server for the first time: ask the user in the tray.

        The API's consent prompt: returns at once; the user's answer goes to ``request.answer``.
        """
        with self._lock:
            if request in self._consents:
                return
            self._consents.append(request)
        client = safe_text(request.client, 40)
        self.notifier.notify(
            f"{client} asks for access",
            f"{client} wants a token for {self._name(request.resource)}. "
            "Allow or deny it in the tray menu.",
        )
        self.refresh()

    def interaction_required(self, resource: str, client: str, scope: str | None = None) -> None:
        """An API client was told to wait for a sign-in (the API calls this at most once a
        minute per server and client): ask the user to sign in. With ``scope`` (the scopes the
        client lacks), the server's menu offers its own entry, naming the scopes and the
        clients that asked, for a sign-in that adds them: a plain Sign in never does, and the
        offer lapses after :data:`STEP_UP_TTL` or a sign-out."""
        if scope:
            with self._lock:
                old_scope, clients, since = self._step_ups.get(resource, ("", (), self._mono()))
                scopes = " ".join(dict.fromkeys([*old_scope.split(), *scope.split()]))
                clients = tuple(dict.fromkeys([*clients, safe_text(client, 40)]))
                self._step_ups[resource] = (scopes, clients, since)
            self.notifier.notify(
                "More access asked",
                f"{safe_text(client, 40)} needs the scope {safe_text(scope, 80)} on "
                f"{self._name(resource)}: choose “Sign in again for …” in the tray menu.",
            )
            self.refresh()
            return
        self.notifier.notify(
            "Sign-in needed",
            f"{safe_text(client, 40)} needs a token for {self._name(resource)}: "
            "choose Sign in in the tray menu.",
        )

    @property
    def view(self) -> View:
        return self._view

    def _name(self, url: str, fresh: bool = False) -> str:
        """What people call the server at ``url``: its ``resource_name`` once known (``fresh``:
        as the config says now, e.g. just after a sign-in recorded it)."""
        servers: tuple[ServerStatus, ...] = self._view.servers
        if fresh:
            with contextlib.suppress(BrokerError):
                servers = tuple(self._broker.status())
        for status in servers:
            if status.url == url:
                return status.display_name
        return server_name(url)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="tray-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 1.0) -> None:
        self._queue.put(_STOP)
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    # -- the worker ----------------------------------------------------------------------------

    def _run(self) -> None:
        self._publish_safely()
        while True:
            try:
                item = self._queue.get(timeout=self._tick)
            except queue.Empty:
                item = _REFRESH
            if item is _STOP:
                return
            if isinstance(item, Command):
                self._safely(item)
            self._publish_safely()

    def _publish_safely(self) -> None:
        try:
            self.publish()
        except Exception:  # the worker must outlive any one bad status read
            logger.exception("could not update the tray")

    def publish(self) -> View:
        """Read the broker's status and show it (worker thread: this may touch the keyring)."""
        try:
            servers = tuple(self._broker.status())
            idps = tuple(self._broker.idp_status())
        except BrokerError as exc:
            logger.warning("could not read the servers' status: %s", exc)
            servers, idps = self._view.servers, self._view.idps
        with self._lock:
            view = View(
                servers=servers,
                idps=idps,
                now=self._clock(),
                busy=frozenset(self._busy),
                errors=dict(self._errors),
                consents=tuple(self._consents),
                demo_url=self._demo_url,
                autostart=self._start_at_login(),
                step_ups=self._current_step_ups(),
                clients=self._detected_clients(servers),
            )
        for url in needs_sign_in(self._view, view):
            self.notifier.notify(
                "Sign-in needed", f"Sign in to {self._name(url)} again from the tray menu."
            )
        self._view = view
        self._show(view)
        return view

    def _detected_clients(self, servers: tuple[ServerStatus, ...]) -> tuple[ClientChoice, ...]:
        """Read the clients' files (worker thread); the last list stands when that fails."""
        if self._clients is None:
            return ()
        try:
            return self._clients.detected([s.url for s in servers])
        except (BrokerError, OSError) as exc:
            logger.warning("cannot look for MCP clients: %s", exc)
            return self._view.clients

    def _start_at_login(self) -> bool | None:
        """The checkbox shows the real state on disk; None (disabled) when it cannot be read."""
        if self._autostart is None:
            return None
        try:
            return self._autostart.is_installed()
        except (BrokerError, OSError) as exc:
            logger.warning("cannot read the start-at-login state: %s", exc)
            return None

    def _safely(self, command: Command) -> None:
        try:
            self._handle(command)
        except BrokerError as exc:
            self.notifier.notify("MCP OAuth Broker", safe_text(str(exc), 200))
        except Exception:
            logger.exception("tray command %s failed", command.action.value)

    def _handle(self, command: Command) -> None:
        action, url = command.action, command.url
        if action is Action.OPEN_PAGE:
            self._open_page(None)
        elif action is Action.SIGN_IN and url:
            self._in_background(url, lambda url: self._sign_in(url, command.scope))
        elif action is Action.SIGN_IN_IDP and command.client:
            self._in_background(f"idp {command.client}", self._sign_in_idp)
        elif action is Action.STEP_UP and url:
            self._in_background(url, self._step_up)
        elif action is Action.SIGN_OUT and url:
            self._in_background(url, self._sign_out)
        elif action is Action.COPY_SIGN_IN_LINK and url:
            self._in_background(url, self._sign_in_by_link)
        elif action is Action.COPY_TOKEN and url:
            self._copy_token(url)
        elif action is Action.ADD_SERVER:
            self._open_page("/ui/servers/add")
        elif action is Action.CONNECT_CLIENT and command.client and self._clients is not None:
            urls = [s.url for s in self._view.servers]
            self.notifier.notify("Connect a client", self._clients.connect(command.client, urls))
        elif action is Action.OPEN_DEMO and self._demo_url:
            self._open_url(self._demo_url)
        elif action is Action.TOGGLE_AUTOSTART and self._autostart is not None:
            self._autostart.set_installed(not self._autostart.is_installed())
            self.refresh()
        elif action is Action.OPEN_CONFIG:
            self._open_folder(self._broker.config_file.parent)
        elif action is Action.CONSENT and url and command.client and command.decision:
            self._answer_consent(ConsentRequest(command.client, url), command.decision)

    def _in_background(self, url: str, work: Callable[[str], None]) -> None:
        with self._lock:
            if url in self._busy:
                return  # one sign-in per server at a time (SECURITY #42)
            self._busy.add(url)
            self._errors.pop(url, None)

        def run() -> None:
            try:
                work(url)
            except BrokerError as exc:
                message = safe_text(str(exc), 200)
                with self._lock:
                    self._errors[url] = message
                self.notifier.notify(f"{self._name(url)}: it did not work", message)
            except Exception:
                logger.exception("tray action for %s failed", url)
                with self._lock:
                    self._errors[url] = "unexpected error; see the log"
            finally:
                with self._lock:
                    self._busy.discard(url)
                self.refresh()

        threading.Thread(target=run, name="tray-sign-in", daemon=True).start()

    def _sign_in(self, url: str, scope: str | None = None) -> None:
        logger.info("signing in to %s from the tray or the control page", url)
        self._broker.login(url, extra_scope=scope)
        self.notifier.notify("Signed in", f"Signed in to {self._name(url, fresh=True)}.")

    def _sign_in_by_link(self, url: str) -> None:
        """Sign in with the link on the clipboard: the flow waits for the loopback callback."""
        from broker.signin.login import Headless

        name = self._name(url)

        def hand_out(link: str) -> None:
            if self._copy(link) is False:  # no clipboard here: the link itself, to click or copy
                self.notifier.notify(f"Sign-in link for {name}", link)
                return
            self.notifier.notify(
                "Sign-in link copied",
                f"Paste it into a browser on this computer to sign in to {name}.",
            )

        logger.info("signing in to %s with a copied link from the tray", url)
        self._broker.login(url, headless=Headless("link", hand_out))
        self.notifier.notify("Signed in", f"Signed in to {self._name(url, fresh=True)}.")

    def _open_page(self, landing: str | None) -> None:
        """The control page in the browser (its launch link is made by the running broker)."""
        if self._page_opener is None:
            self.notifier.notify(
                "Add a server", "Run this in a terminal: mcp-broker add https://server.example/mcp"
            )
            return
        self._page_opener(landing)

    def _sign_in_idp(self, busy_key: str) -> None:
        """Sign in at an enterprise IdP: once for all the servers that get tokens from it."""
        name = busy_key.removeprefix("idp ")
        logger.info("signing in at the IdP %s from the tray", name)
        self._broker.login_idp(name)
        self.notifier.notify("Signed in", f"Signed in at {name}: its servers get tokens again.")

    def _step_up(self, url: str) -> None:
        with self._lock:
            asked = self._current_step_ups().get(url)
        if asked is None:
            return
        scope, _clients = asked
        logger.info("signing in to %s from the tray for the scope %s", url, scope)
        self._broker.login(url, extra_scope=scope)
        with self._lock:
            if self._step_ups.get(url, ("",))[0] == scope:
                del self._step_ups[url]
        self.notifier.notify(
            "Signed in", f"Signed in to {self._name(url, fresh=True)} with {scope}."
        )

    def _current_step_ups(self) -> dict[str, tuple[str, tuple[str, ...]]]:
        """The step-ups still on offer (lock held); lapsed ones are dropped."""
        now = self._mono()
        for url, (_, _, since) in list(self._step_ups.items()):
            if now - since > STEP_UP_TTL:
                del self._step_ups[url]
        return {url: (scope, clients) for url, (scope, clients, _) in self._step_ups.items()}

    def _sign_out(self, url: str) -> None:
        with self._lock:
            self._step_ups.pop(url, None)
        result = self._broker.logout(url)  # the token API forgets the token: a service event
        note = f" ({safe_text(result.problem, 120)})" if result.problem else ""
        self.notifier.notify("Signed out", f"Signed out of {self._name(url)}{note}.")

    def _copy_token(self, url: str) -> None:
        tokens = self._broker.token(url, 60)
        self._copy(tokens.access_token)
        until = time.strftime("%H:%M", time.localtime(tokens.expires_at))
        self.notifier.notify(
            "Access token copied", f"Token for {self._name(url)}, valid until {until}."
        )

    def _answer_consent(self, request: ConsentRequest, decision: Decision) -> None:
        with self._lock:
            asked = next((r for r in self._consents if r == request), None)
            if asked is None:
                return
            self._consents.remove(asked)
        if asked.answer is not None:
            asked.answer(decision)
        logger.info("consent for %s to %s: %s", request.client, request.resource, decision.value)
