"""``mcp-broker run [--headless]`` (and ``mcp-broker`` with no arguments): the long-running broker.

One per user (:mod:`broker.desktop.instance`). It builds the broker, the background refresher, the
local token API and, when a display is available, the tray icon; without one it runs headless and
says so in one log line. Quit (tray menu, SIGTERM, Ctrl+C) stops the tray, the API and the refresher
within about a second (longer only to let a refresh in flight store its tokens); sign-ins still
waiting on a browser run on daemon threads and end with the process.

    from broker.desktop.runner import run
    sys.exit(run(headless=None))   # None: tray if possible, else headless
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import threading
import webbrowser
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from broker.desktop import autostart
from broker.desktop.clients import DetectedClients
from broker.desktop.controller import Controller
from broker.desktop.instance import Instance, hold_instance
from broker.desktop.menu import View
from broker.desktop.notify import LogNotifier, desktop_notifier
from broker.errors import AlreadyRunning, BrokerError, TrayUnavailable
from broker.paths import broker_paths
from broker.root import from_environment

if TYPE_CHECKING:
    from broker.api.server import ApiServer
    from broker.desktop.tray import Tray

logger = logging.getLogger(__name__)

STOP_TIMEOUT = 0.5  # per part; Quit must be done within about a second
#: How long Quit waits for a refresh that is in flight. An idle refresher stops at once (its
#: wait is woken); a refresh in flight may hold a rotated refresh token that exists nowhere but
#: in this process until its keyring write lands, and abandoning it loses the sign-in.
REFRESH_FINISH_TIMEOUT = 10.0


def run(
    headless: bool | None = None,
    *,
    config: str | None = None,
    demo_url: str | None = None,
    verbose: bool = False,
) -> int:
    """Run the broker until Quit; ``headless=None`` shows the tray when a display is available.

    Without ``verbose`` (``-v``) the configured ``log_level`` sets the log's level, if any.
    Returns the process exit code (:class:`AlreadyRunning`'s when another broker runs).
    """
    try:
        with hold_instance(broker_paths()) as instance:
            session = BrokerSession(instance, config, demo_url)
            if not verbose and session.root.settings.log_level is not None:
                logging.getLogger().setLevel(session.root.settings.log_level)
            return session.run(headless)
    except AlreadyRunning as exc:
        print(f"mcp-broker: {exc}", file=sys.stderr)
        return exc.exit_code
    except BrokerError as exc:
        logger.error("%s", exc)
        return exc.exit_code


class BrokerSession:
    """The parts of one running broker, each given what it needs when it is made (by the
    composition root, :mod:`broker.root`), and their orderly shutdown."""

    def __init__(self, instance: Instance, config: str | None, demo_url: str | None) -> None:
        self.instance = instance
        self.root = from_environment(config)
        self.broker = self.root.broker
        self.refresher = self.root.refresher
        self.stopped = threading.Event()
        self.tray: Tray | None = None  # the tray icon, once shown
        self.api: ApiServer | None = None
        self._desktop = desktop_notifier()
        # The control page's modules (Flask) load only once this process is the broker.
        from broker.ui.backend import LiveBackend
        from broker.ui.mount import ControlPage

        links = DetectedClients(bridge_only=self.broker.dpop_servers)
        self.page = ControlPage(
            lambda clients: LiveBackend(self.broker, self.controller, clients, links, autostart),
            self.root.paths.state_dir,
        )
        self.controller = Controller(
            self.broker,
            self,
            open_url=webbrowser.open,
            open_folder=open_folder,
            demo_url=demo_url,
            autostart=autostart,
            clients=links,
            show=self._show,
            copy=self._copy,
            on_quit=self._quit,
            open_page=self.page.open,
        )
        self.broker.service.add_listener(self.controller.refresh)

    def run(self, headless: bool | None) -> int:
        try:
            # A stop during start-up (a signal, or Quit) is not lost: it ends the run as soon as
            # the tray or the headless wait would begin.
            self._on_signals(self._quit)
            self._start_background()
            tray = None
            if not headless:
                try:
                    from broker.desktop.tray import open_tray

                    tray = open_tray(self.controller.post, self.controller.view)
                except TrayUnavailable as exc:
                    logger.warning("Running headless: %s. %s", exc, self._where())
            else:
                logger.info("Running headless. %s", self._where())
            self._warm_up()  # the API already answers meanwhile
            if tray is None:
                self._wait_headless()
            else:
                self._run_tray(tray)
            return 0
        finally:
            self.close()

    # -- what the controller is given: the tray's, once it is shown -----------------------------

    def notify(self, summary: str, body: str) -> None:
        """Desktop notifications where there are any; else the tray's own, else the log."""
        tray = self.tray
        if tray is not None and isinstance(self._desktop, LogNotifier):
            tray.notify(summary, body)
        else:
            self._desktop.notify(summary, body)

    def _show(self, view: View) -> None:
        if self.tray is not None:
            self.tray.show(view)

    def _copy(self, text: str) -> bool:
        """Whether ``text`` went to the clipboard (there is none without a tray)."""
        return self.tray is not None and self.tray.copy(text)

    def _quit(self) -> None:
        self.stopped.set()
        if self.tray is not None:
            self.tray.stop()

    # -- running ------------------------------------------------------------------------------

    def _start_background(self) -> None:
        self.refresher.start()
        for server in self.broker.servers():
            if server.issuer is not None and server.client_id is not None:
                self.refresher.watch(self.broker.key_for(server))
        self.api = self.root.start_api(
            consent_prompt=self.controller.request_consent,
            on_interaction_required=self.controller.interaction_required,
            mount=self.page.mount,
        )
        self.instance.publish(api_url=self.api.url)

    def _warm_up(self) -> None:
        try:
            self.broker.prepare_refresh()
        except Exception:  # only an optimisation: the first refresh does it otherwise
            logger.debug("warming up the refresh path failed", exc_info=True)

    def _where(self) -> str:
        where = f"token API at {self.api.url}" if self.api else "no token API"
        return f"{where}; stop with Ctrl+C or SIGTERM"

    def _run_tray(self, tray: Tray) -> None:
        self.tray = tray
        if self.stopped.is_set():  # stopped before the tray was in place
            return
        tray.call_in_main_loop(lambda: self._on_signals(self._quit))

        def ready() -> None:
            logger.info("tray icon shown (%s backend)", tray.backend)
            self.controller.start()

        tray.run(ready)

    def _wait_headless(self) -> None:
        self.controller.start()
        self.stopped.wait()

    def _on_signals(self, stop: Callable[[], None]) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # only the main thread may install handlers (tests call run() elsewhere)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda signum, frame: stop())

    def close(self) -> None:
        """Stop everything, each part on its own so one failure does not keep the rest up."""
        steps: list[tuple[str, Callable[[], object]]] = [
            ("tray worker", lambda: self.controller.stop(STOP_TIMEOUT)),
            ("token API", lambda: self.api.close() if self.api is not None else None),
            ("control page", self.page.close),
            ("refresher", lambda: self.refresher.stop(REFRESH_FINISH_TIMEOUT)),
            ("broker", self.broker.close),
        ]
        for name, step in steps:
            try:
                step()
            except Exception:
                logger.warning("stopping the %s failed", name, exc_info=True)
        logger.info("stopped")


def open_folder(path: Path) -> None:
    """Show ``path`` in the desktop's file manager (no shell; the path is an argument)."""
    path.mkdir(parents=True, exist_ok=True)
    if sys.platform == "win32":
        os.startfile(path)  # type: ignore[attr-defined]  # noqa: S606
        return
    opener = "open" if sys.platform == "darwin" else "xdg-open"
    subprocess.run(  # noqa: S603
        [opener, str(path)], check=False, timeout=30, stdin=subprocess.DEVNULL
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m broker.desktop.runner [--headless]``: the same as ``mcp-broker run``."""
    parser = argparse.ArgumentParser(prog="mcp-broker run")
    parser.add_argument("--headless", action="store_true", default=None)
    parser.add_argument("--config")
    parser.add_argument("--demo-url")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    return run(args.headless, config=args.config, demo_url=args.demo_url)


if __name__ == "__main__":
    sys.exit(main())
