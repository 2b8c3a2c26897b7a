"""The protected demo MCP server (Streamable HTTP), default http://127.0.0.1:8000/mcp.

Tools: whoami (who the access token says you are), echo, add, and admin_report, which needs the
extra scope <resource>/admin so a client's step-up can be seen. Every tool needs <resource>/tools.

Without a valid token it answers 401 with
  WWW-Authenticate: Bearer resource_metadata="<base>/.well-known/oauth-protected-resource/mcp",
                    scope="<resource>/tools"   (plus error="invalid_token" for a rejected token)
and 403 error="insufficient_scope" naming the needed scopes. Protected Resource Metadata (RFC 9728)
is served at /.well-known/oauth-protected-resource/mcp and /.well-known/oauth-protected-resource.

Tokens are RS256 JWTs from --issuer, checked against its JWKS (--jwks-url, or jwks_uri from
<issuer>/.well-known/openid-configuration, fetched lazily). Profiles:
  cognito  iss, token_use=access, client_id in --client-id, scope, exp/nbf; aud, if present,
           must equal the resource (Cognito adds aud only when the client sent `resource`)
  oidc     iss, aud must contain the resource; client_id/azp checked when present
DPoP (RFC 9449; not Cognito behaviour, Cognito issues no bound tokens): a token with cnf.jkt is
accepted only as `Authorization: DPoP` with a proof of that key for this request (htm, htu, iat,
ath, jti never seen before); as `Bearer` it is refused. --dpop advertises DPoP (challenge, PRM),
--dpop-required refuses unbound tokens, --dpop-nonce demands server nonces.
--require-id-token: accept only ID tokens (token_use=id, aud = an allowed --client-id, i.e. the
  app client id), as AWS Bedrock AgentCore Gateway does when its allowed audience is the Cognito
  app client; access tokens are refused with 401 invalid_token saying so. ID tokens carry no
  scopes: a valid one gets <resource>/tools only (admin_report stays out of reach).
Binds loopback only and refuses requests whose Host or Origin is not this server (DNS rebinding).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from demo_server.resource.app import create_app
from demo_server.resource.dpop import add_dpop_options
from demo_server.resource.server import RunningResourceServer, start
from demo_server.resource.settings import (
    DEFAULT_CLIENT_IDS,
    DEFAULT_ISSUER,
    PROFILES,
    ResourceSettings,
    is_loopback_host,
)
from demo_server.resource.stack_outputs import add_from_cloudformation_option

__all__ = [
    "ResourceSettings",
    "RunningResourceServer",
    "configure_parser",
    "create_app",
    "run",
    "start",
]

logger = logging.getLogger(__name__)


def loopback_host(value: str) -> str:
    if not is_loopback_host(value):
        raise argparse.ArgumentTypeError(f"{value!r} is not a loopback address (use 127.0.0.1)")
    return value


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of ``mcp-demo-server serve``."""
    add = parser.add_argument
    add("--host", type=loopback_host, default="127.0.0.1", help="loopback address (127.0.0.1)")
    add("--port", type=int, default=8000, help="port (8000; 0 picks a free one)")
    add("--issuer", default=DEFAULT_ISSUER, help=f"token issuer, exact ({DEFAULT_ISSUER})")
    add(
        "--client-id",
        dest="client_ids",
        action="append",
        metavar="ID",
        help=f"allowed client id, repeatable ({', '.join(DEFAULT_CLIENT_IDS)})",
    )
    add("--resource", help="resource identifier (default: this server's MCP URL)")
    add("--jwks-url", help="JWKS URL (default: jwks_uri from the issuer's OIDC discovery)")
    add("--profile", choices=PROFILES, default="cognito", help="token profile (cognito)")
    add("--clock-skew", type=int, default=60, metavar="SECONDS", help="exp/nbf leeway (60)")
    add("--no-auth", action="store_true", help="no authentication (protocol checks only)")
    add_dpop_options(parser)
    add(
        "--require-id-token",
        action="store_true",
        help="accept only ID tokens whose aud is an allowed --client-id, refuse access tokens "
        "(like AWS Bedrock AgentCore Gateway with the app client as audience)",
    )
    add_from_cloudformation_option(parser)
    parser.set_defaults(run=run)


def settings_from_args(args: argparse.Namespace) -> ResourceSettings:
    return ResourceSettings(
        host=args.host,
        port=args.port,
        issuer=args.issuer,
        client_ids=tuple(args.client_ids or DEFAULT_CLIENT_IDS),
        resource=args.resource,
        jwks_url=args.jwks_url,
        profile=args.profile,
        no_auth=args.no_auth,
        clock_skew=args.clock_skew,
        dpop=args.dpop,
        dpop_required=args.dpop_required,
        dpop_nonce=args.dpop_nonce,
        require_id_token=args.require_id_token,
    )


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT or SIGTERM."""
    if args.no_auth:
        print(
            "WARNING: --no-auth: this server accepts requests without any token.", file=sys.stderr
        )
    try:
        server = start(settings_from_args(args))
    except (ValueError, OSError) as exc:
        print(f"mcp-demo-server serve: {exc}", file=sys.stderr)
        return 2
    print(f"demo MCP server: {server.url}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        # Once a second: notice a server thread that died (the signal handler wakes it at once).
        while server.running and not stop.wait(1.0):
            pass
    finally:
        server.close()
    return 0 if stop.is_set() else 1
