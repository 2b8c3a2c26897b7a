"""Notifications reach the desktop's notification daemon (dunst), escaped; without one, the log."""

from __future__ import annotations

import logging

import pytest

from broker.desktop.menu import View
from broker.desktop.notify import DBusNotifier, LogNotifier, desktop_notifier
from broker.desktop.tray import open_tray
from broker.errors import TrayUnavailable
from tests.support.desktop import Desktop, wait_for

HOSTILE = "Server says <b>click</b> &amp; <a href='http://evil.example'>here</a>\x1b[2J"


@pytest.mark.integration
def test_notifications_reach_dunst_with_server_text_escaped(
    bare_desktop: Desktop, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", bare_desktop.bus_address)
    notifier = desktop_notifier()
    assert isinstance(notifier, DBusNotifier)

    notifier.notify("Sign-in needed\x1b[31m", HOSTILE)
    (shown,) = wait_for("the notification", bare_desktop.notifications)

    summary, body = shown
    assert summary == "Sign-in needed [31m"
    # dunst renders markup: the server's tags must arrive as text, not as markup.
    assert "<b>" not in body and "&lt;b&gt;click&lt;/b&gt;" in body
    assert "&amp;amp;" in body and "\x1b" not in body


def test_without_a_notification_daemon_the_message_goes_to_the_log(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", f"unix:path={tmp_path}/no-bus")
    with caplog.at_level(logging.WARNING, logger="broker.desktop.notify"):
        DBusNotifier().notify("Sign-in needed", "Sign in to a.example/mcp again.")
    assert "Sign-in needed: Sign in to a.example/mcp again." in caplog.text


def test_without_a_session_bus_notifications_go_to_the_log(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert isinstance(desktop_notifier(), LogNotifier)


def test_no_display_means_no_tray_and_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(TrayUnavailable, match=r"no display \(DISPLAY is not set\)"):
        open_tray(lambda command: None, View())


def test_no_session_bus_means_no_tray(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    monkeypatch.setenv("DISPLAY", ":99")
    monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    with pytest.raises(TrayUnavailable, match="no D-Bus session bus"):
        open_tray(lambda command: None, View())
