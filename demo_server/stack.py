"""Run the local authorization server and the demo MCP server, wired to each other.

The authorization server's issuer is http://127.0.0.1:<idp-port>/<pool-id>; the MCP server at
http://127.0.0.1:<port>/mcp trusts that issuer and the demo-broker client, and the authorization
server knows the MCP server as a resource server with the scopes <url>/tools and <url>/admin.
The MCP server accepts the access tokens of demo-broker (people) and demo-m2m (the machine client,
client_credentials). Both bind 127.0.0.1 only. Ctrl-C stops both.

Not Cognito behaviour, on request: an enterprise IdP issuing ID-JAGs (``--enterprise-idp-port``,
demo_server/enterprise_stack.py), and trusted workload issuers (``--trust-workload``, workload
identity federation) whose JWTs the public client ``demo-workload`` redeems.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any, TextIO

from demo_server import idp, resource
from demo_server.enterprise_stack import ENTERPRISE_CLIENT_ID, EnterpriseIdp
from demo_server.idp.command import announce
from demo_server.idp.extension_options import workload
from demo_server.idp.extension_settings import EnterpriseSettings, TrustedIdp
from demo_server.idp.running import RunningIdp
from demo_server.idp.settings import (
    DEFAULT_POOL_ID,
    DEMO_CLIENT_ID,
    M2M_CLIENT_ID,
    WORKLOAD_JWT_FLOW,
    ClientConfig,
    IdpSettings,
    ResourceServerConfig,
)
from demo_server.resource.server import bind_loopback
from demo_server.resource.settings import ResourceSettings

STACK_CLIENTS = (DEMO_CLIENT_ID, M2M_CLIENT_ID)
WORKLOAD_CLIENT_ID = "demo-workload"


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
    #: Not Cognito behaviour: also run an enterprise IdP on this port (0: any) whose ID-JAGs the
    #: authorization server redeems (demo_server/enterprise_stack.py); None: no IdP.
    enterprise_idp_port: int | None = None
    enterprise_secret: str | None = None
    #: Not Cognito behaviour: workload issuers whose JWTs the public client demo-workload may
    #: redeem with the JWT bearer grant (workload identity federation, SEP-1933).
    trusted_workloads: tuple[TrustedIdp, ...] = ()


@dataclass
class RunningStack:
    idp: idp.RunningIdp
    server: resource.RunningResourceServer
    enterprise_idp: RunningIdp | None = None
    enterprise_secret: str | None = None

    def close(self) -> None:
        self.server.close()
        if self.enterprise_idp is not None:
            self.enterprise_idp.close()
        self.idp.close()


@contextlib.contextmanager
def running(settings: StackSettings) -> Iterator[RunningStack]:
    """Start both servers and stop them after. The MCP server's socket is bound first: the
    authorization server must know its URL (port 0 included) before it starts."""
    mcp_sock = bind_loopback("127.0.0.1", settings.port)
    enterprise: EnterpriseIdp | None = None
    try:
        if settings.enterprise_idp_port is not None:
            enterprise = EnterpriseIdp(
                settings.enterprise_idp_port, settings.pool_id, settings.enterprise_secret
            )
        yield from _serve(settings, mcp_sock, enterprise)
    finally:
        mcp_sock.close()
        if enterprise is not None:
            enterprise.close()


def _serve(
    settings: StackSettings, mcp_sock: socket.socket, enterprise: EnterpriseIdp | None = None
) -> Iterator[RunningStack]:
    mcp_port = int(mcp_sock.getsockname()[1])
    mcp_url = f"http://127.0.0.1:{mcp_port}/mcp"
    extra = enterprise.auth_server_fields(mcp_url) if enterprise is not None else {}
    clients = (*STACK_CLIENTS, ENTERPRISE_CLIENT_ID) if enterprise else STACK_CLIENTS
    if settings.trusted_workloads:
        extra = with_workloads(extra, mcp_url, settings.trusted_workloads)
        clients = (*clients, WORKLOAD_CLIENT_ID)
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
        **extra,
    )
    running_idp = idp.start(idp_settings)
    enterprise_idp: RunningIdp | None = None
    try:
        if enterprise is not None:
            fields = {"auto_login": settings.auto_login, "demo_password": settings.demo_password}
            enterprise_idp = enterprise.start(running_idp.issuer, **fields)
        server = resource.start(
            ResourceSettings(port=mcp_port, issuer=running_idp.issuer, client_ids=clients),
            sock=mcp_sock,
        )
    except BaseException:
        if enterprise_idp is not None:
            enterprise_idp.close()
        running_idp.close()
        raise
    secret = enterprise.secret if enterprise is not None else None
    stack = RunningStack(running_idp, server, enterprise_idp, secret)
    try:
        yield stack
    finally:
        stack.close()


def with_workloads(
    fields: dict[str, Any], mcp_url: str, trusted: tuple[TrustedIdp, ...]
) -> dict[str, Any]:
    """``IdpSettings`` fields plus the public client ``demo-workload`` (the JWT is its only
    credential; any subject of the trusted issuers) and the trust in the workload issuers."""
    client = ClientConfig(
        client_id=WORKLOAD_CLIENT_ID,
        callback_urls=(),
        allowed_scopes=(f"{mcp_url}/tools", f"{mcp_url}/admin"),
        allowed_flows=(WORKLOAD_JWT_FLOW,),
    )
    enterprise = fields.get("enterprise", EnterpriseSettings())
    return {
        **fields,
        "clients": (*fields.get("clients", ()), client),
        "enterprise": replace(enterprise, trusted_workloads=trusted),
    }


def describe(stack: RunningStack, out: TextIO) -> None:
    announce(stack.idp)
    if stack.enterprise_idp is not None:
        ent = stack.enterprise_idp
        print(
            f"Enterprise IdP (issues ID-JAGs; not Cognito behaviour): {ent.url}\n"
            f"  issuer:    {ent.issuer}\n"
            f"  client id: {DEMO_CLIENT_ID} (public)  user: demo  password: {ent.demo_password}\n"
            f"  enterprise client at the authorization server: {ENTERPRISE_CLIENT_ID}  "
            f"secret: {stack.enterprise_secret}",
            file=out,
            flush=True,
        )
    trusted = stack.idp.settings.enterprise.trusted_workloads
    if trusted:
        print(
            "Workload identity (not Cognito behaviour): JWTs of "
            + ", ".join(t.issuer for t in trusted)
            + f" with aud {stack.idp.issuer}\n"
            f"  client id: {WORKLOAD_CLIENT_ID} (public: the JWT is its credential)",
            file=out,
            flush=True,
        )
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
        "--enterprise-idp-port",
        type=int,
        metavar="PORT",
        help="NOT Cognito behaviour: also run an enterprise IdP on PORT (0 = any) that issues "
        "ID-JAGs (SEP-990) which the authorization server redeems for the confidential client "
        f"{ENTERPRISE_CLIENT_ID} (JWT bearer grant); its secret is printed",
    )
    add("--enterprise-secret", help="the enterprise client's secret (default: random, printed)")
    add(
        "--trust-workload",
        action="append",
        type=workload,
        metavar="ISSUER[=JWKS_FILE_OR_URL]",
        help="NOT Cognito behaviour: workload identity federation (SEP-1933); the authorization "
        f"server redeems this issuer's JWTs (aud = its issuer) for the public client "
        f"{WORKLOAD_CLIENT_ID} with the JWT bearer grant, each JWT once; repeatable",
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
    if args.port < 0 or args.idp_port < 0 or (args.enterprise_idp_port or 0) < 0:
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
        enterprise_idp_port=args.enterprise_idp_port,
        enterprise_secret=args.enterprise_secret,
        trusted_workloads=tuple(args.trust_workload or ()),
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
    except ValueError as exc:  # e.g. an unusable --trust-workload JWKS file
        print(f"mcp-demo-server stack: {exc}", file=sys.stderr)
        return 2
    return 0
