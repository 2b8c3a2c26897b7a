"""Start project servers as real subprocesses on 127.0.0.1 and stop them cleanly."""

from __future__ import annotations

import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx2


def fixed_port() -> int:
    """A free port, only for *fixed-port* settings: callback ports, ``ApiSettings.port``, a
    command's ``--port`` that the test must name before the process exists (the harness's
    callback port registered with the idp). Servers that tests start bind port 0 themselves.

    The port is drawn below the kernel's ephemeral range, where no port-0 bind and no outgoing
    connection of another process can take it between this check and the product's bind (the
    bind-close-reuse race of picking a port-0 port and closing it). Only another explicit choice
    of that same port could, and the draw is random over ~12,000 ports.
    """
    low = _ephemeral_low()
    for _ in range(200):
        port = random.randrange(max(1024, low - 12_000), low)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port below the ephemeral range")


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default; macOS and Windows start at 49152


@contextmanager
def refusing_port() -> Iterator[int]:
    """A port nobody accepts on while the block runs: bound, never listening, so a connection is
    refused at once (and no other process can start listening there meanwhile)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        yield int(s.getsockname()[1])


# What the demo servers print once they serve, with the URL they really bound (``--port 0``).
MCP_URL = r"(?i)demo MCP server: (?P<url>\S+)"
IDP_URL = r"Local Cognito-compatible authorization server: (?P<url>\S+)"
ISSUER = r"^\s+issuer:\s+(?P<url>\S+)$"


class ServerProcess:
    """A subprocess that serves HTTP on a port it bound itself (no free-port race): waits until
    its output announces the URL (``announce``, a regex with a ``url`` group; ``--port 0``), then
    until that URL (or ``ready_url``) answers. Output goes to ``log_path``."""

    def __init__(
        self,
        args: Sequence[str],
        log_path: Path,
        announce: str = MCP_URL,
        ready_url: str | None = None,
        env: dict[str, str] | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.args = list(args)
        self.announce = announce
        self.ready_url = ready_url
        self.log_path = log_path
        self.env = {**os.environ, **(env or {})}
        self.timeout = timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self) -> ServerProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:  # the child has its own copy
            self.proc = subprocess.Popen(
                self.args,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**self.env, "PYTHONUNBUFFERED": "1"},
                start_new_session=True,
            )
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.args} exited early:\n{self.log()}")
            if self._answers():
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.args} did not announce and serve a URL:\n{self.log()}")

    def _answers(self) -> bool:
        if not self.url:
            self.url = self.announced(self.announce) or ""
        if not self.url:
            return False
        try:
            httpx2.get(self.ready_url or self.url, timeout=1.0)
            return True
        except httpx2.TransportError:
            return False

    def announced(self, pattern: str) -> str | None:
        """The ``url`` group of ``pattern`` in the output so far, None when not printed yet."""
        found = re.search(pattern, self.log(), re.MULTILINE)
        return found.group("url") if found else None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def demo_server_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "demo_server", *args]
