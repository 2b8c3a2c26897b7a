"""Run the local authorization server and the demo MCP server, wired to each other.

The authorization server's issuer is http://127.0.0.1:<idp-port>/<pool-id>; the MCP server at
http://127.0.0.1:<port>/mcp trusts that issuer and the demo-broker client, and the authorization
server knows the MCP server as a resource server with the scopes <url>/tools and <url>/admin.
The MCP server accepts the access tokens of demo-broker (people) and demo-m2m (the machine client,
client_credentials). Both bind 127.0.0.1 only. Ctrl-C stops both.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TextIO

from demo_server import idp, resource
from demo_server.idp.command import announce
from demo_server.idp.settings import (
    DEFAULT_POOL_ID,
    DEMO_CLIENT_ID,
    M2M_CLIENT_ID,
    IdpSettings,
    ResourceServerConfig,
)
from demo_server.resource.server import bind_loopback
from demo_server.resource.settings import ResourceSettings

STACK_CLIENTS = (DEMO_CLIENT_ID, M2M_CLIENT_ID)


@dataclass(frozen=True)
class StackSettings:
    idp_port: int = 9000
    port: int = 8000
    pool_id: str = DEFAULT_POOL_ID
    access_token_ttl: int = 3600
    refresh_token_rotation: bool = False
    advertise_pkce: bool = False
    auto_login: str | None = None
    demo_password: str | None = None
    m2m_secret: str | None = None
    device_flow: bool = False
    device_interval: int = 5


@dataclass
class RunningStack:
    idp: idp.RunningIdp
    server: resource.RunningResourceServer

    def close(self) -> None:
        self.server.close()
        self.idp.close()


@contextlib.contextmanager
def running(settings: StackSettings) -> Iterator[RunningStack]:
    """Start both servers and stop them after. The MCP server's socket is bound first: the
    authorization server must know its URL (port 0 included) before it starts."""
    mcp_sock = bind_loopback("127.0.0.1", settings.port)
    try:
        yield from _serve(settings, mcp_sock)
    finally:
        mcp_sock.close()


def _serve(settings: StackSettings, mcp_sock: socket.socket) -> Iterator[RunningStack]:
    mcp_port = int(mcp_sock.getsockname()[1])
    mcp_url = f"http://127.0.0.1:{mcp_port}/mcp"
    idp_settings = IdpSettings(
        port=settings.idp_port,
        pool_id=settings.pool_id,
        access_token_ttl=settings.access_token_ttl,
        refresh_token_rotation=settings.refresh_token_rotation,
        rotation_grace_seconds=30 if settings.refresh_token_rotation else 0,
        advertise_pkce=settings.advertise_pkce,
        auto_login=settings.auto_login,
        demo_password=settings.demo_password,
        m2m_secret=settings.m2m_secret,
        device_flow=settings.device_flow,
        device_interval=settings.device_interval,
        resource_servers=(ResourceServerConfig(mcp_url),),
    )
    running_idp = idp.start(idp_settings)
    try:
        server = resource.start(
            ResourceSettings(port=mcp_port, issuer=running_idp.issuer, client_ids=STACK_CLIENTS),
            sock=mcp_sock,
        )
    except BaseException:
        running_idp.close()
        raise
    stack = RunningStack(running_idp, server)
    try:
        yield stack
    finally:
        stack.close()


def describe(stack: RunningStack, out: TextIO) -> None:
    announce(stack.idp)
    print(f"Demo MCP server: {stack.server.url}\nPress Ctrl-C to stop.", file=out, flush=True)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--idp-port", type=int, default=9000, help="authorization server port (9000; 0 = any)")
    add("--port", type=int, default=8000, help="MCP server port (8000; 0 = any)")
    add("--pool-id", default=DEFAULT_POOL_ID, help=f"pool id in the issuer ({DEFAULT_POOL_ID})")
    add("--access-token-ttl", type=int, default=3600, metavar="SECONDS", help="(3600)")
    add("--refresh-token-rotation", action="store_true", help="rotate refresh tokens")
    add("--advertise-pkce", action="store_true", help="advertise S256 (Cognito does not)")
    add("--auto-login", metavar="USER", help="DEV ONLY: skip the login form, sign in as USER")
    add("--demo-password", help="the demo user's password (default: random, printed)")
    add("--m2m-secret", help="the demo-m2m machine client's secret (default: random, printed)")
    add(
        "--device-flow",
        action="store_true",
        help="NOT Cognito behaviour: also offer the device authorization grant (RFC 8628)",
    )
    add(
        "--device-interval",
        type=int,
        default=5,
        metavar="SECONDS",
        help="with --device-flow: minimum polling interval (5)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.port < 0 or args.idp_port < 0:
        print("mcp-demo-server stack: --port and --idp-port must be 0 or more", file=sys.stderr)
        return 2
    if args.device_interval <= 0:
        print("mcp-demo-server stack: --device-interval must be positive", file=sys.stderr)
        return 2
    settings = StackSettings(
        idp_port=args.idp_port,
        port=args.port,
        pool_id=args.pool_id,
        access_token_ttl=args.access_token_ttl,
        refresh_token_rotation=args.refresh_token_rotation,
        advertise_pkce=args.advertise_pkce,
        auto_login=args.auto_login,
        demo_password=args.demo_password,
        m2m_secret=args.m2m_secret,
        device_flow=args.device_flow,
        device_interval=args.device_interval,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        with running(settings) as stack:
            describe(stack, sys.stdout)
            stop.wait()
    except OSError as exc:
        print(f"mcp-demo-server stack: {exc}", file=sys.stderr)
        return 1
    return 0
