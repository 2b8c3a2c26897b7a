"""End-to-end fixtures: the local authorization server and the demo MCP server on free loopback
ports, a private Secret Service, and ``mcp-broker`` run as a real subprocess against them.

The authorization server runs in this process behind a WSGI middleware that counts token
requests by grant type: that count is how the tests see how many refreshes really reached it.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
import threading
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from waitress.server import create_server

from demo_server.idp.app import create_app
from demo_server.idp.running import RunningIdp, bind_loopback
from demo_server.idp.settings import IdpSettings, ResourceServerConfig
from demo_server.resource import ResourceSettings
from demo_server.resource import start as start_resource
from demo_server.resource.server import bind_loopback as bind_resource_socket
from tests.support.browser import browser_command
from tests.support.realparts import require
from tests.support.secret_service import (  # noqa: F401 - fixtures
    SecretServiceDaemons,
    secret_service,
    secret_service_daemons,
)

ROOT = Path(__file__).resolve().parents[2]

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class TokenRequestCounter:
    """WSGI middleware: counts POST /oauth2/token requests by ``grant_type``."""

    def __init__(self, app: WsgiApp) -> None:
        self.app = app
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ.get("REQUEST_METHOD") == "POST" and environ.get("PATH_INFO") == "/oauth2/token":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = environ["wsgi.input"].read(length)
            environ["wsgi.input"] = BytesIO(body)
            fields = urllib.parse.parse_qs(body.decode("latin-1"))
            with self._lock:
                self.counts[fields.get("grant_type", ["?"])[0]] += 1
        return self.app(environ, start_response)

    @property
    def refreshes(self) -> int:
        with self._lock:
            return self.counts["refresh_token"]


@dataclasses.dataclass
class DemoStack:
    issuer: str
    mcp_url: str
    counter: TokenRequestCounter
    access_token_ttl: int


@contextmanager
def demo_stack(
    access_token_ttl: int,
    rotation: bool,
    round_expiry_up: bool = False,
    require_id_token: bool = False,
    resource: dict[str, Any] | None = None,
    **idp: Any,
) -> Iterator[DemoStack]:
    """The local authorization server (auto-login as ``demo``) and the demo MCP server;
    ``idp``: more :class:`IdpSettings` (``m2m_secret``, ``device_flow``...);
    ``require_id_token``: the MCP server accepts only ID tokens (``serve --require-id-token``);
    ``resource``: more :class:`ResourceSettings` (``dpop_required``...)."""
    resource_sock = bind_resource_socket("127.0.0.1", 0)  # the idp must know its URL first
    resource_port = int(resource_sock.getsockname()[1])
    resource_id = f"http://127.0.0.1:{resource_port}/mcp"
    sock = bind_loopback("127.0.0.1", 0)
    settings = IdpSettings(
        port=int(sock.getsockname()[1]),
        access_token_ttl=access_token_ttl,
        refresh_token_rotation=rotation,
        round_expiry_up=round_expiry_up,
        auto_login="demo",
        resource_servers=(ResourceServerConfig(resource_id),),
        **idp,
    ).resolved()
    app = create_app(settings)
    counter = TokenRequestCounter(app.wsgi_app)
    app.wsgi_app = counter  # type: ignore[method-assign]
    server = create_server(app, sockets=[sock], threads=4, expose_tracebacks=False)
    thread = threading.Thread(target=server.run, name="e2e-idp", daemon=True)
    thread.start()
    with resource_sock, RunningIdp(settings=settings, server=server, thread=thread):
        resource = start_resource(
            ResourceSettings(
                port=resource_port,
                issuer=settings.issuer,
                clock_skew=0,
                require_id_token=require_id_token,
                **(resource or {}),
            ),
            sock=resource_sock,
        )
        try:
            yield DemoStack(settings.issuer, resource.settings.mcp_url, counter, access_token_ttl)
        finally:
            resource.close()


@dataclasses.dataclass
class BrokerCli:
    """``mcp-broker`` as a user runs it: a subprocess with its own home, keyring and browser."""

    env: dict[str, str]
    # Every finished run: what a user's terminal showed (for the canary checks).
    runs: list[subprocess.CompletedProcess[str]] = dataclasses.field(
        default_factory=list, repr=False
    )

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "broker.cli", *args]

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            self.argv(*args),
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        self.runs.append(done)
        return done

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.argv(*args),
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )

    def ok(self, *args: str) -> str:
        done = self.run(*args)
        assert done.returncode == 0, f"{args} exited {done.returncode}:\n{done.stderr}"
        return done.stdout


@pytest.fixture
def broker_cli(
    tmp_path: Path,
    secret_service_daemons: SecretServiceDaemons,  # noqa: F811
) -> Iterator[BrokerCli]:
    if secret_service_daemons.is_locked():
        secret_service_daemons.unlock()
    home = tmp_path / "broker-home"
    env = {
        **secret_service_daemons.environ(),
        "MCP_BROKER_HOME": str(home),
        "BROWSER": browser_command(tmp_path),
        "PYTHON_KEYRING_BACKEND": "keyring.backends.SecretService.Keyring",
        "PYTHONPATH": str(ROOT),
    }
    env.pop("MCP_BROKER_CONFIG", None)
    yield BrokerCli(env)
    shutil.rmtree(home, ignore_errors=True)


def require_chromium() -> None:
    require(shutil.which("/usr/bin/chromium") is not None, "Chromium", "apt-get install chromium")
