"""``mcp-broker demo``: the whole chain on this machine for a person to try (see ``demo``)."""

from __future__ import annotations

import argparse
import signal
import threading
import webbrowser
from collections.abc import Callable
from typing import TYPE_CHECKING, TextIO

from broker.cli.demo import (
    DEFAULT_IDP_PORT,
    DEFAULT_PORT,
    DEMO_USER,
    configure_broker,
    demo_stack,
    other_broker,
    stack_settings,
)
from broker.cli.demo_keyring import demo_keyring
from broker.errors import BrokerError
from broker.safetext import safe_text

if TYPE_CHECKING:
    from broker.app import Broker
    from demo_server.stack import RunningStack


def interactive(args: argparse.Namespace, out: TextIO) -> int:
    with demo_keyring(out):
        return _interactive(args, out)


def _interactive(args: argparse.Namespace, out: TextIO) -> int:
    port, idp_port = args.port or DEFAULT_PORT, args.idp_port or DEFAULT_IDP_PORT
    with demo_stack(stack_settings(args, port, idp_port, args.auto_login)) as stack:
        from broker.root import from_environment

        url = stack.server.url
        broker = from_environment(args.config, opener=_browser_or_print(out)).broker
        try:
            configure_broker(broker, url)
            other = other_broker(broker.paths)
            _print_intro(stack, broker, other, args.headless, out)
            _sign_in_in_background(broker, url, out)
            if other is None:
                from broker.desktop.runner import run

                return run(True if args.headless else None, config=args.config, demo_url=url)
            _wait_for_stop()
            return 0
        finally:
            broker.close()


def _browser_or_print(out: TextIO) -> Callable[[str], bool]:
    def open_or_print(url: str) -> bool:
        if webbrowser.open(url):
            print("The sign-in page is open in your browser.", file=out, flush=True)
        else:
            # The address carries state and the PKCE challenge, never a secret.
            print(f"No browser found. To sign in, open:\n  {url}", file=out, flush=True)
        return True

    return open_or_print


def _sign_in_in_background(broker: Broker, url: str, out: TextIO) -> None:
    def sign_in() -> None:
        try:
            broker.login(url)
        except BrokerError as exc:
            print(f"Sign-in did not work: {safe_text(str(exc))}", file=out, flush=True)
            print(f"Try again with: mcp-broker login {url}", file=out, flush=True)
            return
        print(f"Signed in to {url}. The broker now serves its tokens.", file=out, flush=True)

    threading.Thread(target=sign_in, name="demo-sign-in", daemon=True).start()


def _print_intro(
    stack: RunningStack, broker: Broker, other: str | None, headless: bool, out: TextIO
) -> None:
    url = stack.server.url
    lines = [
        f"Authorization server: {stack.idp.issuer}",
        f"  user {DEMO_USER}, password {stack.idp.demo_password}",
        f"Demo MCP server:      {url}",
        f"Broker config:        {broker.config_file}",
        _which_broker(other, headless),
        "Signing in: opening the sign-in page in your browser...",
        "",
        "From a terminal:",
        f"  mcp-broker token {url}",
        f"  mcp-broker call {url} whoami",
        "From an MCP client (Claude Desktop; also claude-code, cursor, vscode):",
        f"  mcp-broker configure claude-desktop --server {url}",
        "",
        "Press Ctrl-C to stop.",
    ]
    if stack.idp.settings.auto_login:
        lines.insert(
            2, f"  DEV ONLY: auto-login signs in every request as {stack.idp.settings.auto_login}"
        )
    print("\n".join(lines), file=out, flush=True)


def _which_broker(other: str | None, headless: bool) -> str:
    if other:
        return (
            f"Not starting a broker: {other}\nThe demo servers run anyway; that broker serves "
            "their tokens once you have signed in."
        )
    if headless:
        return "Starting the broker, headless."
    return "Starting the broker (tray icon when a display is available, headless otherwise)."


def _wait_for_stop() -> None:
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in _STOP_SIGNALS}
    try:
        while not stop.wait(1.0):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
