"""The tray icon: the only module that imports pystray (and, on Linux, GTK through it).

pystray is imported lazily, inside :func:`open_tray`: on Linux it connects to the X server at
import time and raises ``Xlib.error.DisplayNameError`` (not ImportError) without one, so any
failure there means "no tray, run headless". On Linux the ``gtk`` backend is used (XEmbed tray
hosts: trayer, xfce, KDE) unless a StatusNotifier host is on the session bus, then
``appindicator`` (GNOME with the AppIndicator extension); ``xorg`` is never picked, it has no menu.
``PYSTRAY_BACKEND`` overrides the choice.

``run()`` owns the main thread; everything else here may be called from any thread. Menu items
only post commands (see :mod:`broker.desktop.controller`).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from broker.desktop.icons import draw_icon
from broker.desktop.menu import Command, Entry, View, entries, overall, title
from broker.errors import TrayUnavailable

logger = logging.getLogger(__name__)

APP_ID = "mcp-broker"
_SNI_WATCHER = "org.kde.StatusNotifierWatcher"


class Tray:
    def __init__(self, pystray: Any, post: Callable[[Command], None], view: View) -> None:
        self._pystray = pystray
        self._post = post
        self._state = overall(view)
        self._icon = pystray.Icon(
            APP_ID, icon=draw_icon(self._state), title=title(view), menu=self._menu(view)
        )

    @property
    def backend(self) -> str:
        return str(type(self._icon).__module__).rsplit("_", 1)[-1]

    def run(self, ready: Callable[[], None]) -> None:
        """Show the icon and run the tray's main loop until :meth:`stop` (main thread only)."""

        def setup(icon: Any) -> None:
            icon.visible = True
            self._set_tooltip(icon.title)
            ready()

        try:
            self._icon.run(setup)
        except Exception:
            # GTK's backend closes its last notification on the way out, which raises when no
            # notification daemon runs; the loop has ended all the same.
            logger.debug("the tray backend raised while stopping", exc_info=True)

    def call_in_main_loop(self, function: Callable[[], None]) -> None:
        """Run ``function`` on the main thread once the tray's loop runs (GTK backends).

        pystray's GTK backend resets SIGINT to the default when its loop starts; the runner
        uses this to put its own handler back, so Ctrl+C shuts down cleanly.
        """
        if self.backend not in {"gtk", "appindicator"}:
            return
        from gi.repository import GLib

        def once() -> bool:
            function()
            return False

        GLib.idle_add(once)

    def stop(self) -> None:
        try:
            self._icon.stop()
        except Exception:
            logger.debug("the tray backend raised on stop", exc_info=True)

    def show(self, view: View) -> None:
        """Bring icon, title and menu up to date with ``view`` (any thread)."""
        state = overall(view)
        if state is not self._state:
            self._state = state
            self._icon.icon = draw_icon(state)
        text = title(view)
        if text != self._icon.title:
            self._icon.title = text
            self._set_tooltip(text)
        self._icon.menu = self._menu(view)

    def notify(self, summary: str, body: str) -> None:
        self._icon.notify(body, summary)

    def copy(self, text: str) -> bool:
        """Put ``text`` on the clipboard; never shown, never logged. False: no clipboard here."""
        if self.backend in {"gtk", "appindicator"}:
            _gtk_copy(text)
            return True
        return _tool_copy(text)

    # -- internals -----------------------------------------------------------------------------

    def _menu(self, view: View) -> Any:
        return self._pystray.Menu(*(self._item(e) for e in entries(view)))

    def _item(self, entry: Entry) -> Any:
        pystray = self._pystray
        if entry.is_separator:
            return pystray.Menu.SEPARATOR
        if entry.submenu:
            return pystray.MenuItem(
                entry.label, pystray.Menu(*(self._item(e) for e in entry.submenu))
            )
        command = entry.command
        checked = entry.checked
        return pystray.MenuItem(
            entry.label,
            (lambda icon, item: self._post(command)) if command else None,
            enabled=entry.enabled and command is not None,
            checked=(lambda item: checked) if checked is not None else None,
        )

    def _set_tooltip(self, text: str) -> None:
        """GTK's status icon shows no tooltip from pystray's title: set it too."""
        status_icon = getattr(self._icon, "_status_icon", None)
        if status_icon is None:
            return
        from gi.repository import GLib

        def apply() -> bool:
            status_icon.set_tooltip_text(text)
            status_icon.set_title(text)
            return False

        GLib.idle_add(apply)


def _gtk_copy(text: str) -> None:
    from gi.repository import Gdk, GLib, Gtk

    def apply() -> bool:
        clipboard = Gtk.Clipboard.get(Gdk.SELECTION_CLIPBOARD)
        clipboard.set_text(text, -1)
        clipboard.store()
        return False

    GLib.idle_add(apply)


def _tool_copy(text: str) -> bool:
    """The platform's clipboard tool, fed on stdin (never argv: other users can read argv)."""
    candidates = {"darwin": ["pbcopy"], "win32": ["clip"]}.get(
        sys.platform, ["wl-copy", "xclip -selection clipboard", "xsel --clipboard --input"]
    )
    for candidate in candidates:
        argv = candidate.split()
        if shutil.which(argv[0]):
            subprocess.run(argv, input=text.encode(), check=True, timeout=10)  # noqa: S603
            return True
    logger.warning("no clipboard tool found (install xclip or wl-clipboard)")
    return False


def _choose_backend() -> None:
    if os.environ.get("PYSTRAY_BACKEND") or not sys.platform.startswith("linux"):
        return
    os.environ["PYSTRAY_BACKEND"] = "appindicator" if _sni_host_present() else "gtk"


def _sni_host_present() -> bool:
    try:
        from gi.repository import Gio, GLib

        bus = Gio.bus_get_sync(Gio.BusType.SESSION, None)
        reply = bus.call_sync(
            "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
            "NameHasOwner", GLib.Variant("(s)", (_SNI_WATCHER,)), None,
            Gio.DBusCallFlags.NONE, 2000, None,
        )  # fmt: skip
        return bool(reply.unpack()[0])
    except Exception:
        return False


def display_problem() -> str | None:
    """Why no tray can be shown here, or None when it may be tried."""
    if sys.platform.startswith("linux"):
        if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            return "no display (DISPLAY is not set)"
        from broker.desktop.notify import session_bus_available

        if not session_bus_available():
            return "no D-Bus session bus (DBUS_SESSION_BUS_ADDRESS is not set)"
    return None


def open_tray(post: Callable[[Command], None], view: View) -> Tray:
    """A tray icon showing ``view``; :class:`TrayUnavailable` saying why when none can be shown."""
    problem = display_problem()
    if problem is not None:
        raise TrayUnavailable(problem)
    try:
        if sys.platform.startswith("linux"):
            import gi

            gi.require_version("Gtk", "3.0")
            from gi.repository import GLib

            GLib.set_prgname(APP_ID)  # the icon window's name, as trays and xwininfo show it
            _choose_backend()
        import pystray

        return Tray(pystray, post, view)
    except Exception as exc:  # DisplayNameError, ImportError, ValueError from gi, ...
        raise TrayUnavailable(f"the tray could not start ({type(exc).__name__}: {exc})") from exc
