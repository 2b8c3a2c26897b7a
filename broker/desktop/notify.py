"""Desktop notifications ("sign-in needed", "a client asks for consent").

On Linux they go to the notification daemon over the session bus
(``org.freedesktop.Notifications.Notify``, via jeepney, which keyring already pulls in on Linux),
so they work with or without the tray. Elsewhere the tray's own ``notify`` is used, and with
neither the message goes to the log. A failing daemon never breaks the caller: the message is
logged instead.

Bodies may be rendered as markup by the daemon, so they are escaped; summaries are plain text.
Neither ever carries a token.
"""

from __future__ import annotations

import html
import logging
import os
import sys
import threading
from collections.abc import Callable
from typing import Protocol

from broker.safetext import safe_text

SUMMARY_LIMIT = 80

logger = logging.getLogger(__name__)

APP_NAME = "MCP OAuth Broker"
_DESTINATION = "org.freedesktop.Notifications"
_PATH = "/org/freedesktop/Notifications"


class Notifier(Protocol):
    def notify(self, summary: str, body: str) -> None: ...


class LogNotifier:
    """No desktop to notify: the message goes to the log (headless mode)."""

    def notify(self, summary: str, body: str) -> None:
        logger.warning("%s: %s", safe_text(summary, SUMMARY_LIMIT), safe_text(body, 300))


class CallbackNotifier:
    """Notifications through a function, e.g. the tray icon's ``notify`` (Windows, macOS)."""

    def __init__(self, send: Callable[[str, str], None]) -> None:
        self._send = send
        self._fallback = LogNotifier()

    def notify(self, summary: str, body: str) -> None:
        try:
            self._send(safe_text(summary, SUMMARY_LIMIT), safe_text(body, 300))
        except Exception:
            logger.info("could not show a notification", exc_info=True)
            self._fallback.notify(summary, body)


class DBusNotifier:
    """The freedesktop notification daemon on the session bus (dunst, GNOME Shell, KDE, ...)."""

    def __init__(self, timeout_ms: int = 10_000) -> None:
        self._timeout_ms = timeout_ms
        self._lock = threading.Lock()
        self._fallback = LogNotifier()

    def notify(self, summary: str, body: str) -> None:
        try:
            with self._lock:
                self._send(
                    safe_text(summary, SUMMARY_LIMIT),
                    html.escape(safe_text(body, 300), quote=False),
                )
        except Exception as exc:
            logger.info("no notification daemon answered (%s)", type(exc).__name__)
            self._fallback.notify(summary, body)

    def _send(self, summary: str, body: str) -> None:
        from jeepney import DBusAddress, new_method_call  # type: ignore[import-untyped]
        from jeepney.io.blocking import open_dbus_connection  # type: ignore[import-untyped]
        from jeepney.wrappers import unwrap_msg  # type: ignore[import-untyped]

        address = DBusAddress(_PATH, bus_name=_DESTINATION, interface=_DESTINATION)
        message = new_method_call(
            address,
            "Notify",
            "susssasa{sv}i",
            (APP_NAME, 0, "dialog-password", summary, body, [], {}, self._timeout_ms),
        )
        with open_dbus_connection(bus="SESSION") as conn:
            unwrap_msg(conn.send_and_get_reply(message, timeout=5))  # raises on an error reply


def session_bus_available() -> bool:
    """Whether a session bus is known without starting one (no autolaunch, no stray daemons)."""
    if os.environ.get("DBUS_SESSION_BUS_ADDRESS"):
        return True
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    return bool(runtime) and os.path.exists(os.path.join(runtime or "", "bus"))


def desktop_notifier(tray_notify: Callable[[str, str], None] | None = None) -> Notifier:
    """The best notifier this machine offers."""
    if sys.platform.startswith("linux") and session_bus_available():
        return DBusNotifier()
    if tray_notify is not None:
        return CallbackNotifier(tray_notify)
    return LogNotifier()
