"""``mcp-broker demo [--smoke]``: the whole chain on this machine, with no AWS account.

``mcp-broker demo`` starts the local Cognito-compatible authorization server and the protected demo
MCP server in this process (``demo_server.stack``), adds the MCP server to the broker's config
(client ``demo-broker``, the ``cognito`` profile), runs the broker (tray when a display is
available, headless otherwise) and opens the sign-in page in the browser. Ctrl-C stops it all.

``mcp-broker demo --smoke`` is the "does my machine work" check: the same stack on free ports, a
throw-away broker home (unless ``MCP_BROKER_HOME`` is set), sign-in without a browser (the local
authorization server's dev-only auto-login), a token from a headless broker's token API, ``whoami``
through the mcp SDK, sign-out; each step timed, exit 0 only if all of it worked.

This is the only module of ``broker`` that imports ``demo_server`` (DESIGN §2), and only when the
command runs; the broker's heavier modules load only then too, so other commands stay quick.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import webbrowser
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from broker.config import ServerConfig, config_path
from broker.errors import (
    AlreadyRunning,
    BrokerError,
    ConfigError,
    InteractionRequired,
    StorageUnavailable,
)
from broker.paths import HOME_ENV, BrokerPaths, broker_paths, open_private
from broker.safetext import safe_text

if TYPE_CHECKING:
    from broker.app import Broker
    from demo_server.stack import RunningStack, StackSettings

logger = logging.getLogger(__name__)

CLIENT_ID = "demo-broker"  # the public client the local authorization server seeds
DEMO_USER = "demo"
DEFAULT_PORT = 8000
DEFAULT_IDP_PORT = 9000
SMOKE_SIGN_IN_TIMEOUT = 30.0
BROKER_START_TIMEOUT = 30.0

DESCRIPTION = """\
Run the whole chain on this machine: the local Cognito-compatible authorization server
(http://127.0.0.1:9000/us-east-1_Demo00001), the protected demo MCP server
(http://127.0.0.1:8000/mcp) and the broker, configured for each other. The broker shows its tray
icon when a display is available and runs headless otherwise; the sign-in page opens in the
browser (or its address is printed, with the demo user's password). Ctrl-C stops everything.

--smoke runs the same chain non-interactively and exits 0 when it works: servers on free ports,
a throw-away broker home (unless MCP_BROKER_HOME is set), sign-in without a browser, a token
from a headless broker's token API, `whoami` through the mcp SDK, sign-out. Each step is timed.
The tokens go to the OS keyring (and are deleted at the end); --ephemeral keeps them in memory
instead, for machines without a keyring, and gets the token from the broker library.
"""


def configure_demo_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    parser = sub.add_parser(
        "demo",
        help="run the local authorization server, the demo MCP server and the broker together",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--smoke", action="store_true", help="non-interactive check: sign in, call whoami, exit")
    add("--port", type=_port, help=f"demo MCP server port (default {DEFAULT_PORT}; --smoke: free)")
    add("--idp-port", type=_port, help=f"authorization server port (default {DEFAULT_IDP_PORT})")
    add("--headless", action="store_true", help="no tray icon, even when a display is available")
    add("--access-token-ttl", type=_positive, default=3600, metavar="SECONDS", help="(3600)")
    add("--demo-password", help="the demo user's password (default: random, printed)")
    add("--auto-login", metavar="USER", help="DEV ONLY: skip the login form, sign in as USER")
    add("--ephemeral", action="store_true", help="with --smoke: tokens in memory, not the keyring")
    parser.set_defaults(run=run_demo, needs_broker=False)
    return parser


def run_demo(args: argparse.Namespace, broker: object, out: TextIO) -> int:
    if args.ephemeral and not args.smoke:
        print("mcp-broker demo: --ephemeral only goes with --smoke", file=sys.stderr)
        return 2
    return _smoke(args, out) if args.smoke else _interactive(args, out)


# -- shared ---------------------------------------------------------------------------------------


def _port(value: str) -> int:
    number = int(value)
    if not 0 < number < 65536:
        raise argparse.ArgumentTypeError("must be a port number between 1 and 65535")
    return number


def _positive(value: str) -> int:
    number = int(value)
    if number <= 0:
        raise argparse.ArgumentTypeError("must be a positive number of seconds")
    return number


def _stack_settings(
    args: argparse.Namespace, port: int, idp_port: int, auto_login: str | None
) -> StackSettings:
    from demo_server.stack import StackSettings

    return StackSettings(
        idp_port=idp_port,
        port=port,
        access_token_ttl=args.access_token_ttl,
        auto_login=auto_login,
        demo_password=args.demo_password,
    )


@contextlib.contextmanager
def _stack(settings: StackSettings) -> Iterator[RunningStack]:
    """The two demo servers, with a port clash said plainly."""
    from demo_server.stack import running

    with contextlib.ExitStack() as servers:
        try:
            stack = servers.enter_context(running(settings))
        except OSError as exc:
            raise BrokerError(
                f"could not start the demo servers on ports {settings.idp_port} and "
                f"{settings.port} ({exc.strerror or exc}); choose others with --idp-port "
                "and --port"
            ) from None
        yield stack


def _require_keyring() -> None:
    """A clear message before anything starts when there is no usable OS keyring."""
    from broker.store.keyring_backend import check_usable, default_backend

    check_usable(default_backend())  # StorageUnavailable says how to fix the machine


def _configure(broker: Broker, url: str) -> None:
    """Point the broker at the demo server, forgetting an earlier demo's tokens: the local
    authorization server keeps its keys and refresh tokens in memory, so they died with it."""
    with contextlib.suppress(ConfigError):
        old = broker.server(url)
        with contextlib.suppress(InteractionRequired):
            broker.service.sign_out(broker.key_for(old))
    broker.add(ServerConfig(url, client_id=CLIENT_ID, provider="cognito"))


# -- the interactive demo -------------------------------------------------------------------------


def _interactive(args: argparse.Namespace, out: TextIO) -> int:
    _require_keyring()
    port, idp_port = args.port or DEFAULT_PORT, args.idp_port or DEFAULT_IDP_PORT
    with _stack(_stack_settings(args, port, idp_port, args.auto_login)) as stack:
        from broker.root import from_environment

        url = stack.server.url
        broker = from_environment(args.config, opener=_browser_or_print(out)).broker
        try:
            _configure(broker, url)
            other = _other_broker(broker.paths)
            _print_intro(stack, broker, other, args.headless, out)
            _sign_in_in_background(broker, url, out)
            if other is None:
                from broker.desktop.runner import run

                return run(True if args.headless else None, config=args.config, demo_url=url)
            _wait_for_stop()
            return 0
        finally:
            broker.close()


def _other_broker(paths: BrokerPaths) -> str | None:
    """Who already runs as this user's broker, or None (the lock is taken and let go again)."""
    from broker.desktop.instance import hold_instance

    try:
        with hold_instance(paths):
            return None
    except AlreadyRunning as exc:
        return str(exc)


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


# -- the smoke check ------------------------------------------------------------------------------


class _Steps:
    """Runs named steps, printing each one's outcome and duration."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.started = time.perf_counter()

    @contextlib.contextmanager
    def step(self, title: str) -> Iterator[None]:
        began = time.perf_counter()
        try:
            yield
        except BaseException as exc:
            self._line("FAILED", title, began)
            if isinstance(exc, Exception) and not isinstance(exc, BrokerError):
                raise BrokerError(f"{title}: {_describe(exc)}") from exc
            raise
        self._line("ok", title, began)

    def _line(self, outcome: str, title: str, began: float) -> None:
        took = time.perf_counter() - began
        print(f"  {outcome:6} {title:<56} {took:6.2f} s", file=self.out, flush=True)

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started


def _describe(exc: BaseException) -> str:
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return safe_text(f"{type(exc).__name__}: {exc}")


def _smoke(args: argparse.Namespace, out: TextIO) -> int:
    if not args.ephemeral:
        try:
            _require_keyring()
        except StorageUnavailable as exc:
            hint = "To check everything else, add --ephemeral (tokens in memory)."
            raise StorageUnavailable(f"{exc} {hint}") from None
    print("mcp-broker demo --smoke: the whole chain on this machine", file=out, flush=True)
    steps = _Steps(out)
    with contextlib.ExitStack() as cleanup:
        paths, config_file = _smoke_home(args, cleanup)
        port, idp_port = args.port or _free_port(), args.idp_port or _free_port()
        with steps.step(f"start the demo servers (ports {idp_port}, {port})"):
            settings = _stack_settings(args, port, idp_port, DEMO_USER)
            stack = cleanup.enter_context(_stack(settings))
        url = stack.server.url
        with steps.step("configure the broker"):
            broker = _smoke_broker(paths, config_file, args.ephemeral)
            cleanup.callback(broker.close)
            _configure(broker, url)
        with steps.step(f"sign in as {DEMO_USER} (auto-login, no browser)"):
            broker.login(url)
        cleanup.callback(_sign_out_quietly, broker, url)
        token = _smoke_token(args, steps, broker, paths, config_file, url, cleanup)
        with steps.step("call whoami through the mcp SDK"):
            identity = _whoami(url, token)
        with steps.step("sign out (delete the tokens, revoke the refresh token)"):
            broker.logout(url)
    print(f"whoami: {json.dumps(identity, sort_keys=True)}", file=out)
    print(f"smoke check passed in {steps.elapsed:.2f} s", file=out, flush=True)
    return 0


def _smoke_home(
    args: argparse.Namespace, cleanup: contextlib.ExitStack
) -> tuple[BrokerPaths, Path]:
    """``MCP_BROKER_HOME`` when set; otherwise a temp dir, so the user's config is not touched."""
    home = os.environ.get(HOME_ENV)
    if not home:
        home = cleanup.enter_context(tempfile.TemporaryDirectory(prefix="mcp-broker-smoke-"))
        paths = broker_paths({HOME_ENV: home})
        return paths, paths.config_file
    paths = broker_paths()
    return paths, config_path(paths, args.config)


def _smoke_broker(paths: BrokerPaths, config_file: Path, ephemeral: bool) -> Broker:
    from broker.root import build

    store = None
    if ephemeral:
        from broker.store.memory import MemoryTokenStore

        store = MemoryTokenStore()
    return build(
        paths,
        config_file,
        store=store,
        opener=follow_to_callback,
        sign_in_timeout=SMOKE_SIGN_IN_TIMEOUT,
    ).broker


def follow_to_callback(url: str) -> bool:
    """The "browser" of the smoke check (an ``opener`` for :class:`~broker.app.Broker`): the
    local authorization server with auto-login (dev only) answers the authorization request with
    a redirect to the broker's loopback callback, and this follows it."""
    status, location = _get(url)
    target = urllib.parse.urlsplit(location or "")
    if status not in (302, 303) or target.path != "/callback" or target.hostname not in _LOOPBACK:
        raise BrokerError(
            "the authorization server did not send the browser to the broker's callback "
            f"(HTTP {status}); is its auto-login on?"
        )
    status, _ = _get(location or "")
    if status != 200:
        raise BrokerError(f"the broker's callback answered HTTP {status}")
    return True


_LOOPBACK = ("127.0.0.1", "localhost")


def _get(url: str) -> tuple[int, str | None]:
    """(status, Location) of a GET to a loopback http URL. http.client rather than httpx2: it
    logs nothing, and the redirect to the callback carries the authorization code."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http" or parts.hostname not in _LOOPBACK:
        raise BrokerError("the smoke check signs in only on a loopback authorization server")
    connection = http.client.HTTPConnection(parts.hostname, parts.port, SMOKE_SIGN_IN_TIMEOUT)
    try:
        connection.request("GET", f"{parts.path}?{parts.query}" if parts.query else parts.path)
        response = connection.getresponse()
        return response.status, response.getheader("Location")
    finally:
        connection.close()


def _smoke_token(
    args: argparse.Namespace,
    steps: _Steps,
    broker: Broker,
    paths: BrokerPaths,
    config_file: Path,
    url: str,
    cleanup: contextlib.ExitStack,
) -> str:
    if args.ephemeral:
        with steps.step("get a token from the broker library (in memory)"):
            return broker.token(url).access_token
    from broker.api.endpoint import request_token

    with steps.step("start a headless broker"):
        if _other_broker(paths) is None:
            cleanup.enter_context(_headless_broker(paths, config_file))
    with steps.step("get a token from the broker's token API"):
        return request_token(url, paths=paths).access_token


@contextlib.contextmanager
def _headless_broker(paths: BrokerPaths, config_file: Path) -> Iterator[None]:
    """``mcp-broker run --headless`` as a child process, until its token API answers."""
    from broker.api.endpoint import discover_endpoint

    # The child finds its home through the environment, like every broker process.
    env = {**os.environ, HOME_ENV: str(paths.config_file.parent)}
    log_path = paths.state_dir / "smoke-broker.log"
    argv = [sys.executable, "-m", "broker.cli", "--config", str(config_file), "run", "--headless"]
    with os.fdopen(open_private(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), "wb") as log:
        proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module, no shell
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + BROKER_START_TIMEOUT
        while True:
            with contextlib.suppress(BrokerError):
                discover_endpoint(paths)
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = _safe_tail(log_path)
                raise BrokerError(f"the headless broker did not start; its log ends:\n{tail}")
            time.sleep(0.05)
        yield
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _safe_tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(safe_text(line) for line in text.splitlines()[-lines:])


def _whoami(url: str, token: str) -> dict[str, Any]:
    from broker.cli.call import call_tool, render_result
    from broker.signin.httpauth import HandedToken

    result = call_tool(url, "whoami", {}, HandedToken(url, token))
    text = render_result(result)
    if result.is_error:
        raise BrokerError(f"whoami answered with an error: {safe_text(text)}")
    identity = result.structured_content or json.loads(text)
    if not isinstance(identity, dict) or identity.get("username") != DEMO_USER:
        raise BrokerError(f"whoami did not name {DEMO_USER}: {safe_text(text)}")
    return identity


def _sign_out_quietly(broker: Broker, url: str) -> None:
    """After a failure, leave no demo tokens in the keyring."""
    with contextlib.suppress(Exception):
        broker.logout(url)


def _free_port() -> int:
    """A port free a moment ago: the two servers must know each other's URL before binding."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
