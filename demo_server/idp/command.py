"""The ``mcp-demo-server idp`` command: options → ``IdpSettings`` → ``start`` → wait."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from demo_server.idp import extension_options
from demo_server.idp.config_file import ConfigError, FileConfig, load_config
from demo_server.idp.running import RunningIdp, start
from demo_server.idp.settings import (
    DEFAULT_DEVICE_CODE_TTL,
    DEFAULT_DEVICE_INTERVAL,
    DEFAULT_HOST,
    DEFAULT_POOL_ID,
    DEFAULT_PORT,
    DEFAULT_RESOURCE_SERVER,
    DEMO_CLIENT_ID,
    DEMO_USERNAME,
    M2M_CLIENT_ID,
    MAX_ROTATION_GRACE_SECONDS,
    IdpSettings,
    ResourceServerConfig,
)

logger = logging.getLogger(__name__)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the ``idp`` options to ``parser`` and make ``run`` its handler."""
    add = parser.add_argument
    add("--host", default=DEFAULT_HOST, help="loopback address to bind (default %(default)s)")
    add("--port", type=int, default=DEFAULT_PORT, help="port (default %(default)s; 0 = any)")
    add("--pool-id", default=DEFAULT_POOL_ID, help="user pool id, the issuer's path")
    add("--access-token-ttl", type=positive, default=3600, metavar="SECONDS")
    add("--id-token-ttl", type=positive, default=3600, metavar="SECONDS")
    add("--refresh-token-ttl", type=positive, default=30 * 24 * 3600, metavar="SECONDS")
    add(
        "--round-expiry-up",
        action="store_true",
        help="round exp up to a whole second, so a token lives at least expires_in (Cognito "
        "rounds down: its tokens die up to a second early); for very short token lifetimes",
    )
    add(
        "--refresh-token-rotation", action="store_true", help="issue a new refresh token on refresh"
    )
    add(
        "--rotation-grace-seconds",
        type=grace,
        default=0,
        metavar="0-60",
        help="how long a rotated-out refresh token stays usable",
    )
    add(
        "--advertise-pkce",
        action="store_true",
        help='add code_challenge_methods_supported ["S256"] to discovery (Cognito omits it)',
    )
    add("--auto-login", metavar="USER", help="DEV ONLY: skip the sign-in form, sign in as USER")
    add("--demo-password", help="password of the user 'demo' (default: random, printed)")
    add(
        "--m2m-secret",
        metavar="SECRET",
        help=f"client secret of the machine client {M2M_CLIENT_ID!r} (default: random, printed)",
    )
    add(
        "--device-flow",
        action="store_true",
        help="NOT Cognito behaviour (Cognito has no device flow): enable the OAuth device "
        "authorization grant (RFC 8628) for demo-broker: device_authorization_endpoint in "
        "discovery, a verification page at /device, the device_code grant at the token endpoint",
    )
    add(
        "--device-code-ttl",
        type=positive,
        default=DEFAULT_DEVICE_CODE_TTL,
        metavar="SECONDS",
        help="with --device-flow: lifetime of a device and user code (%(default)s)",
    )
    add(
        "--device-interval",
        type=positive,
        default=DEFAULT_DEVICE_INTERVAL,
        metavar="SECONDS",
        help="with --device-flow: minimum polling interval (%(default)s)",
    )
    add(
        "--resource-server",
        action="append",
        metavar="URL",
        help=f"resource server identifier, repeatable (default {DEFAULT_RESOURCE_SERVER})",
    )
    add(
        "--config",
        type=Path,
        metavar="FILE",
        help="TOML or JSON file: users, clients, resource servers, keys",
    )
    extension_options.add_options(parser)
    parser.set_defaults(run=run)


def positive(value: str) -> int:
    number = int(value)
    if number <= 0:
        raise argparse.ArgumentTypeError("must be a positive number of seconds")
    return number


def grace(value: str) -> int:
    number = int(value)
    if not 0 <= number <= MAX_ROTATION_GRACE_SECONDS:
        raise argparse.ArgumentTypeError("must be between 0 and 60")
    return number


def settings_from_args(args: argparse.Namespace) -> IdpSettings:
    identifiers = args.resource_server or [DEFAULT_RESOURCE_SERVER]
    cli_servers = tuple(ResourceServerConfig(url.rstrip("/")) for url in identifiers)
    config = load_config(args.config, cli_servers) if args.config else FileConfig()
    servers = cli_servers + config.resource_servers
    return IdpSettings(
        host=args.host,
        port=args.port,
        pool_id=args.pool_id,
        access_token_ttl=args.access_token_ttl,
        id_token_ttl=args.id_token_ttl,
        refresh_token_ttl=args.refresh_token_ttl,
        refresh_token_rotation=args.refresh_token_rotation,
        rotation_grace_seconds=args.rotation_grace_seconds,
        advertise_pkce=args.advertise_pkce,
        round_expiry_up=args.round_expiry_up,
        auto_login=args.auto_login,
        demo_password=args.demo_password,
        m2m_secret=args.m2m_secret,
        device_flow=args.device_flow,
        device_code_ttl=args.device_code_ttl,
        device_interval=args.device_interval,
        resource_servers=servers,
        users=config.users,
        clients=config.clients,
        keys=config.keys,
        **extension_options.settings_from_args(args, config.trusted_workloads),
    )


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT or SIGTERM."""
    try:
        running = start(settings_from_args(args))
    except (ConfigError, ValueError, OSError) as error:
        print(f"mcp-demo-server idp: {error}", file=sys.stderr)
        return 2
    try:
        announce(running)
        wait_for_signal()
    finally:
        running.close()
    return 0


def announce(running: RunningIdp) -> None:
    """Tell the human what to use; the demo password and the M2M client's secret are printed here
    and nowhere else."""
    settings = running.settings
    print(f"Local Cognito-compatible authorization server: {running.url}", flush=True)
    print(f"  issuer:    {running.issuer}")
    print(f"  discovery: {running.issuer}/.well-known/openid-configuration")
    print(f"  client id: {DEMO_CLIENT_ID} (public, PKCE S256)")
    print(f"  user:      {DEMO_USERNAME}")
    print(f"  password:  {running.demo_password}")
    print(f"  m2m client: {M2M_CLIENT_ID}  secret: {running.m2m_secret}", flush=True)
    if settings.device_flow:
        print(f"  device flow (RFC 8628, not Cognito behaviour): {running.url}/device", flush=True)
    if settings.auto_login:
        banner = "!" * 72
        print(
            f"{banner}\n!! DEV ONLY: --auto-login signs in EVERY request as "
            f"{settings.auto_login!r}\n"
            f"!! without a password. Never use this outside a local test.\n{banner}",
            file=sys.stderr,
            flush=True,
        )
        logger.warning("auto-login is ON for user %s: no password is asked", settings.auto_login)


def wait_for_signal() -> None:
    stop = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        stop.wait()  # a signal interrupts the wait (POSIX), so nothing needs to poll
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
