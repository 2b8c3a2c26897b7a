"""``mcp-broker demo --smoke``: the "does my machine work" check (see ``demo``)."""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from broker.cli.demo import (
    BROKER_START_TIMEOUT,
    DEMO_USER,
    SMOKE_SIGN_IN_TIMEOUT,
    configure_broker,
    demo_stack,
    other_broker,
    stack_settings,
)
from broker.cli.demo_keyring import demo_keyring
from broker.config import config_path
from broker.errors import BrokerError, StorageUnavailable
from broker.paths import HOME_ENV, BrokerPaths, broker_paths, open_private
from broker.safetext import safe_text

if TYPE_CHECKING:
    from broker.app import Broker


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


def smoke(args: argparse.Namespace, out: TextIO) -> int:
    with contextlib.ExitStack() as keyring_scope:
        if not args.ephemeral:
            try:
                keyring_scope.enter_context(demo_keyring(out))
            except StorageUnavailable as exc:
                hint = "To check everything else, add --ephemeral (tokens in memory)."
                raise StorageUnavailable(f"{exc} {hint}") from None
        return _smoke(args, out)


def _smoke(args: argparse.Namespace, out: TextIO) -> int:
    print("mcp-broker demo --smoke: the whole chain on this machine", file=out, flush=True)
    steps = _Steps(out)
    with contextlib.ExitStack() as cleanup:
        paths, config_file = _smoke_home(args, cleanup)
        port, idp_port = args.port or _free_port(), args.idp_port or _free_port()
        with steps.step(f"start the demo servers (ports {idp_port}, {port})"):
            settings = stack_settings(args, port, idp_port, DEMO_USER)
            stack = cleanup.enter_context(demo_stack(settings))
        url = stack.server.url
        with steps.step("configure the broker"):
            broker = _smoke_broker(paths, config_file, args.ephemeral)
            cleanup.callback(broker.close)
            configure_broker(broker, url)
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
        if other_broker(paths) is None:
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
