"""``mcp-broker``: sign in to OAuth-protected MCP servers and hand their tokens to local clients.

Exit codes: 0 success, 1 other failure, 2 usage error, 3 bad configuration, 4 sign-in required,
5 cannot answer now (retry later), 6 a broker already runs (see :mod:`broker.errors`).
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TextIO

from broker.cli.helpers import (
    HelperTokens,
    configure_headers_parser,
    configure_token_parser,
    helper_parser,
    is_helper_command,
    top_parser,
)
from broker.errors import BrokerError, InteractionRequired
from broker.safetext import safe_lines, safe_text

# Each command's modules load when the full parser is built or the command runs: the per-use
# helpers (`token`, `headers`) build only their own parser and need none of them.
if TYPE_CHECKING:
    from broker.config import ServerConfig

logger = logging.getLogger(__name__)

#: RFC 6749 §3.3 scope-token.
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")

# A factory so tests can hand in a broker with fakes; the real one is built lazily because
# it imports the keyring and HTTP stacks.
BrokerFactory = Callable[[argparse.Namespace], Any]


def build_parser() -> argparse.ArgumentParser:
    from broker.bridge import configure_connect_parser
    from broker.cli.clients import configure_clients_parser
    from broker.cli.demo import configure_demo_parser
    from broker.cli.idp import configure_idp_parser
    from broker.desktop.autostart import configure_install_parsers
    from broker.integrations.configure import configure_configure_parser
    from broker.ui.command import configure_open_parser

    parser = top_parser()
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = sub.add_parser(
        "run",
        help="run the broker: tray icon, local token API and background refresh (the default)",
        description=(
            "Run the broker until Quit: the tray icon when a display is available (headless "
            "otherwise, with one log line saying why), the local token API on 127.0.0.1 and "
            "the background refresher. One broker runs per user; a second start exits naming "
            "the running one. `mcp-broker` with no command does the same."
        ),
    )
    run.add_argument(
        "--headless", action="store_true", help="no tray icon: token API and refresher only"
    )
    run.set_defaults(run=_run, needs_broker=False, headless=False)
    _add_add(sub)
    login = _add_url_command(
        sub,
        "login",
        _login,
        "sign in to a server in the browser",
        "Sign in to a configured server in the browser. --scope adds scopes to what the server "
        "asks for (a tool that needs more, e.g. after an insufficient_scope answer). With no "
        "browser here (SSH, a server: on Linux no DISPLAY, WAYLAND_DISPLAY or BROWSER) the "
        "device sign-in is used when the authorization server offers it, else --no-browser. "
        "For a machine identity (add --client-credentials) this gets its token.",
    )
    login.add_argument(
        "--scope",
        dest="scopes",
        action="append",
        metavar="SCOPE",
        help="also ask for this scope, repeatable (added to the server's own)",
    )
    headless = login.add_mutually_exclusive_group()
    headless.add_argument(
        "--no-browser",
        action="store_true",
        help="print the sign-in link instead of opening it; open it in a browser on any "
        "machine, then paste the address the browser ends on (it may fail to load) here",
    )
    headless.add_argument(
        "--device",
        action="store_true",
        help="sign in with a code on another device (RFC 8628 device authorization), where "
        "the authorization server offers it (Cognito does not)",
    )
    _add_url_command(
        sub,
        "logout",
        _logout,
        "sign out: delete the server's tokens and revoke its refresh token",
        "Deletes every stored entry of the server's tokens and, where the authorization server "
        "has a revocation endpoint, revokes the refresh token. The server stays configured.",
    )
    status = sub.add_parser(
        "status",
        help="show each configured server and its sign-in state (never a token)",
        description="Show each configured server, whether it is signed in and until when.",
    )
    status.add_argument("--json", action="store_true", help="print JSON instead of a table")
    status.set_defaults(run=_status)
    configure_token_parser(sub)
    call = _add_url_command(
        sub,
        "call",
        _call,
        "call a tool on a server with a broker token and print the result",
        "Connects to the MCP server with the mcp SDK (Streamable HTTP), calls TOOL with the "
        "arguments in --args and prints the result. Each request carries the broker's current "
        "token; after a 401 it is renewed once and the request retried, and a 403 "
        "insufficient_scope signs in again in the browser with the added scope, as the "
        "bridge does.",
    )
    call.add_argument("tool", metavar="TOOL", help="the tool's name")
    call.add_argument(
        "--json",
        action="store_true",
        help="print the whole result as JSON (control characters escaped) instead of its text; "
        "the text is shown without control characters or escape sequences",
    )
    call.add_argument(
        "--args", dest="tool_args", default="{}", metavar="JSON", help="arguments as a JSON object"
    )
    configure_connect_parser(sub)
    configure_clients_parser(sub)
    configure_idp_parser(sub)
    configure_headers_parser(sub)
    configure_configure_parser(sub)
    configure_install_parsers(sub)
    configure_demo_parser(sub)
    configure_open_parser(sub)
    return parser


def _add_add(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from broker.cli.idp import add_assertion_arguments
    from broker.config import PROVIDERS
    from broker.integrations.cloudformation import add_from_cloudformation_argument
    from broker.oauth.providers import FIXED_CALLBACK_PORTS

    add = sub.add_parser(
        "add",
        help="add (or change) a server",
        description=(
            "Add an MCP server to the config, or change one; sign in afterwards with "
            "`mcp-broker login URL`. On a server already added, the settings you name change "
            "and the others stay as they are (--defaults: back to their defaults). Nothing is "
            "sent anywhere, except that a change the current sign-in no longer fits (another "
            "--client-id or --send, --reset-issuer, --defaults on a server sent the ID token) "
            "signs out of it first: its tokens are deleted and its refresh token revoked."
        ),
    )
    add.add_argument("url", metavar="URL", help="the MCP server URL, e.g. https://host/mcp")
    add.add_argument("--client-id", metavar="ID", help="a client id registered for the broker")
    add.add_argument(
        "--client-metadata-url",
        metavar="URL",
        help="the https URL of a Client ID Metadata Document describing the broker (hosted by "
        "you): the client id at authorization servers that support such documents",
    )
    add.add_argument(
        "--provider",
        choices=PROVIDERS,
        help="authorization server profile: cognito assumes PKCE S256 and fixed callback "
        "ports; auto picks cognito for Cognito issuers (default auto)",
    )
    add.add_argument(
        "--callback-port",
        dest="callback_ports",
        type=int,
        action="append",
        metavar="N",
        help=f"loopback callback port to try, repeatable (default {FIXED_CALLBACK_PORTS})",
    )
    resource = add.add_mutually_exclusive_group()
    resource.add_argument(
        "--resource-param",
        dest="send_resource",
        action="store_const",
        const=True,
        help="send the RFC 8707 resource parameter (the default; undoes --no-resource-param)",
    )
    resource.add_argument(
        "--no-resource-param",
        dest="send_resource",
        action="store_const",
        const=False,
        help="do not send the RFC 8707 resource parameter, for authorization servers that reject "
        "it. This gives up audience binding: the token is then not tied to this server and works "
        "on any server that trusts the same authorization server and accepts its scopes",
    )
    add.add_argument(
        "--scope",
        dest="scopes",
        action="append",
        metavar="SCOPE",
        help="scope to ask for, repeatable (default: what the server asks for)",
    )
    add.add_argument(
        "--reset-issuer",
        action="store_true",
        help="forget the authorization server pinned at the last sign-in and trust the one "
        "the server names next time",
    )
    add.add_argument(
        "--defaults",
        action="store_true",
        help="for a server already added: every setting not named here goes back to its "
        "default (profile, callback ports, resource parameter, scopes, token sent, DPoP)",
    )
    add.add_argument(
        "--send",
        choices=("access-token", "id-token"),
        help="which token the server gets (default access-token). WARNING: id-token is a "
        "workaround for gateways that accept only OpenID Connect ID tokens (e.g. AWS Bedrock "
        "AgentCore Gateway whose allowed audience is the Cognito app client). An ID token is "
        "not an access token: it is meant for the client that signed in, carries no scopes and "
        "is not bound to this server, so any service that accepts it can use it as you. The "
        "broker then asks for openid at sign-in and renews the ID token like the access token; "
        "use it only for such a gateway",
    )
    dpop = add.add_mutually_exclusive_group()
    dpop.add_argument(
        "--dpop",
        action="store_const",
        const=True,
        help="always ask for DPoP-bound tokens (RFC 9449), and refuse Bearer ones. Default: "
        "DPoP when the authorization server offers it (Cognito does not). A bound token is "
        "useless without the broker's key: MCP clients then connect through `mcp-broker "
        "connect URL`; the token API and `token`/`headers` refuse it (dpop_bound)",
    )
    dpop.add_argument(
        "--no-dpop",
        dest="dpop",
        action="store_const",
        const=False,
        help="never ask for DPoP-bound tokens, e.g. for a client that can only use the token API",
    )
    machine = add.add_argument_group(
        "machine identity",
        "For agents, CI and servers with no person: the broker holds a confidential client and "
        "gets tokens with the client credentials grant (RFC 6749 4.4), no browser and no "
        "refresh token. The secret or key goes into the OS keyring, never into a file.",
    )
    how = machine.add_mutually_exclusive_group()
    how.add_argument(
        "--client-credentials",
        action="store_true",
        help="--client-id is a confidential client; its secret is read from standard input "
        "(prompted for without echo on a terminal; never give it as an argument)",
    )
    how.add_argument(
        "--private-key-jwt",
        metavar="KEYFILE",
        help="--client-id is a confidential client that authenticates with a JWT signed by "
        "this unencrypted PEM private key (RFC 7523); the key is copied into the keyring",
    )
    add_assertion_arguments(add)
    add_from_cloudformation_argument(add)
    add.set_defaults(run=_add)


def _add_url_command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    run: Callable[[argparse.Namespace, Any, TextIO], int],
    help_text: str,
    description: str | None = None,
) -> argparse.ArgumentParser:
    parser = sub.add_parser(name, help=help_text, description=description or help_text)
    parser.add_argument("url", metavar="URL", help="the MCP server URL, as added")
    parser.set_defaults(run=run)
    return parser


# -- commands ---------------------------------------------------------------------------------


def _run(args: argparse.Namespace, broker: Any, out: TextIO) -> int:
    from broker.desktop.runner import run

    return run(True if args.headless else None, config=args.config, verbose=bool(args.verbose))


def _add(args: argparse.Namespace, broker: Any, out: TextIO) -> int:
    from dataclasses import replace

    from broker.config import ServerConfig, replacing, same_sign_in
    from broker.integrations.cloudformation import server_config_from_outputs

    existing = _existing(broker, args.url)
    if args.send == "id-token" and (args.client_credentials or args.private_key_jwt):
        raise _UsageError("--send id-token needs a person's sign-in: a machine has no ID token")
    # What is not named stays as it is on a server already added (unless --defaults).
    base = existing if existing is not None and not args.defaults else ServerConfig(args.url)
    machine = bool(args.client_credentials or args.private_key_jwt)
    send = "id-token" if args.send == "id-token" else None
    if args.send is None and not machine:
        send = base.send
    from broker.oauth.registration import is_client_metadata_url

    if args.client_metadata_url and not is_client_metadata_url(args.client_metadata_url):
        raise _UsageError("--client-metadata-url must be an https URL with a path")
    wanted = ServerConfig(
        url=args.url,
        client_id=args.client_id,
        client_metadata_url=args.client_metadata_url,
        provider=args.provider or base.provider,
        callback_ports=tuple(args.callback_ports or base.callback_ports),
        send_resource=base.send_resource if args.send_resource is None else args.send_resource,
        scopes=tuple(args.scopes) if args.scopes else base.scopes,
        send=send,
        dpop=base.dpop if args.dpop is None else args.dpop,
    )
    server = replacing(existing, wanted, reset_issuer=args.reset_issuer)
    if args.enterprise or args.workload_token_file:
        from broker.cli.idp import add_assertion_server

        return add_assertion_server(args, broker, out, server)
    if args.client_credentials or args.private_key_jwt:
        return _add_machine(args, broker, out, server)
    if existing is not None and (existing.machine or existing.assertion_grant):
        # Its client comes with a secret, key or JWT given with the option that set it up.
        if args.client_id not in (None, existing.client_id):
            raise _UsageError(
                f"{existing.url}'s client comes with a secret or key: give the new one with "
                "--client-credentials, --private-key-jwt, --enterprise or --workload-token-file "
                "as when it was added"
            )
        if existing.machine and send is not None:
            raise _UsageError(f"{existing.url} is a machine identity: it has no ID token to send")
        server = replace(
            server,
            grant=existing.grant,
            client_auth=existing.client_auth,
            enterprise=existing.enterprise,
            workload_token_file=existing.workload_token_file,
        )
    if args.from_cloudformation:
        # The stack's outputs set client, issuer and provider; explicit flags still win.
        stack = server_config_from_outputs(args.from_cloudformation, args.url)
        server = replace(
            stack,
            client_id=args.client_id or stack.client_id,
            provider=args.provider or stack.provider,
            callback_ports=tuple(args.callback_ports or stack.callback_ports),
            send_resource=args.send_resource is not False and stack.send_resource,
            scopes=tuple(args.scopes) if args.scopes else stack.scopes,
            send=send,
            dpop=base.dpop if args.dpop is None else args.dpop,
            client_metadata_url=server.client_metadata_url,
            resource_name=server.resource_name,
        )
    saved = broker.add(server)
    if existing is not None and not same_sign_in(existing, saved):
        print(
            f"Changed {saved.url}; its sign-in was for the old settings and is signed out. "
            f"Sign in with: mcp-broker login {saved.url}",
            file=out,
        )
    elif existing is not None:
        print(f"Changed {saved.url}.", file=out)
    else:
        print(f"Added {saved.url}. Sign in with: mcp-broker login {saved.url}", file=out)
    if saved.sends_id_token:
        print(
            "It will be sent the ID token instead of the access token: a workaround for "
            "gateways that accept only ID tokens (see mcp-broker add --help).",
            file=out,
        )
    return 0


def _add_machine(args: argparse.Namespace, broker: Any, out: TextIO, server: ServerConfig) -> int:
    from dataclasses import replace

    if not args.client_id:
        raise _UsageError("a machine identity needs --client-id")
    if args.private_key_jwt:
        credential = _read_private_key(args.private_key_jwt)
        auth = "private_key_jwt"
    else:
        credential = _read_secret(args.client_id)
        auth = None
    server = replace(server, grant="client_credentials", client_auth=auth, issuer=None)
    saved = broker.add_machine(server, credential)
    print(
        f"Added {saved.url} for the machine client {safe_text(args.client_id, 200)} (its "
        f"{'private key' if auth else 'secret'} is in the OS keyring).",
        file=out,
    )
    # The first token at once: it proves the secret (or key) and pins the issuer.
    tokens = broker.login(saved.url)
    print(
        f"Got a token from {tokens.key.issuer} (until {_local_time(tokens.expires_at)}); "
        "the broker gets a new one before it expires.",
        file=out,
    )
    return 0


def _read_secret(client_id: str) -> str:
    """The client secret from standard input: prompted for without echo on a terminal, else
    the first line. Never from argv or the environment, where other users and logs see it."""
    import getpass

    if sys.stdin.isatty():
        secret = getpass.getpass(f"Client secret of {safe_text(client_id, 100)}: ")
    else:
        secret = sys.stdin.readline().rstrip("\r\n")
    if not secret:
        raise _UsageError("no client secret on standard input")
    return secret


def _read_private_key(path: str) -> str:
    """The PEM private key in ``path``, checked to be one the broker can sign with."""
    from pathlib import Path

    from broker.oauth.client_assertion import signing_alg

    try:
        text = Path(path).read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise _UsageError(
            f"cannot read the private key file {path}: {exc.__class__.__name__}"
        ) from None
    signing_alg(text)  # raises ConfigError, never repeating the file's content
    return text


def _existing(broker: Any, url: str) -> ServerConfig | None:
    try:
        server: ServerConfig = broker.server(url)
    except BrokerError:
        return None
    return server


def _login(args: argparse.Namespace, broker: Any, out: TextIO) -> int:
    for scope in args.scopes or ():
        if not _SCOPE_TOKEN.fullmatch(scope):
            raise _UsageError(f"--scope {scope!r} is not one scope (RFC 6749 3.3: no spaces)")
    extra = " ".join(args.scopes) if args.scopes else None
    headless = _headless(args)
    if headless is None:
        print("Opening the browser to sign in…", file=sys.stderr)
        tokens = broker.login(args.url, extra_scope=extra)
    else:
        tokens = broker.login(args.url, extra_scope=extra, headless=headless)
    until = _local_time(tokens.expires_at)
    print(
        f"Signed in to {tokens.key.resource} at {tokens.key.issuer} (token until {until}).",
        file=out,
    )
    return 0


def _headless(args: argparse.Namespace) -> Any:
    """How to sign in without a browser here, or None to open the browser."""
    import os

    from broker.signin.login import Headless

    def tell(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    if args.no_browser:
        return Headless("paste", tell, sys.stdin)
    if args.device:
        return Headless("device", tell)
    no_display = not any(os.environ.get(n) for n in ("DISPLAY", "WAYLAND_DISPLAY", "BROWSER"))
    if sys.platform.startswith("linux") and no_display:
        return Headless("auto", tell, sys.stdin)
    return None


def _logout(args: argparse.Namespace, broker: Any, out: TextIO) -> int:
    result = broker.logout(args.url)
    if result.removed == 0:
        print(f"{args.url}: nothing stored; already signed out.", file=out)
        return 0
    revoked = (
        f", refresh token revoked ({result.revoked})"
        if result.revoked
        else ("" if result.revocation_supported else "; the server offers no revocation")
    )
    print(f"Signed out of {args.url}{revoked}.", file=out)
    if result.problem:
        print(f"mcp-broker: warning: {safe_text(result.problem)}", file=sys.stderr)
    return 0


def _status(args: argparse.Namespace, broker: Any, out: TextIO) -> int:
    from dataclasses import asdict

    rows = _with_running_view(broker.status(), getattr(broker, "paths", None))
    now = time.time()
    if args.json:
        data = []
        for row in rows:
            item = asdict(row)
            item["expires_in"] = None if row.expires_at is None else round(row.expires_at - now)
            data.append(item)
        from broker.cli.idp import idp_rows

        idps = idp_rows(broker) if hasattr(broker, "config") else []
        print(json.dumps({"servers": data, **({"idps": idps} if idps else {})}, indent=2), file=out)
        return 0
    if not rows:
        print("No servers configured. Add one with: mcp-broker add URL", file=out)
        return 0
    from broker.cli.idp import idp_line, idp_rows

    idps = idp_rows(broker) if hasattr(broker, "config") else []
    under_idp = {url for idp in idps for url in idp["servers"]}
    for row in rows:
        if row.url not in under_idp:
            print(_status_line(row), file=out)
    for idp in idps:  # an IdP sign-in, with the servers that get their tokens from it
        print(idp_line(idp), file=out)
        for row in rows:
            if row.url in idp["servers"]:
                print(f"  {_status_line(row)}", file=out)
    return 0


def _status_line(row: Any) -> str:
    detail = row.reason or ""
    if row.expires_at is not None and row.state == "valid":
        who = f"as {row.user}, " if row.user else ""
        if getattr(row, "machine", False) and row.client_id:
            who = f"as machine client {row.client_id}, "
        detail = f"{who}token until {_local_time(row.expires_at)}"
    if getattr(row, "dpop_bound", False):  # only the bridge and `call` can use its tokens
        detail = f"{detail}, DPoP-bound" if detail else "DPoP-bound"
    # The server's own name (PRM resource_name) when it publishes one, and its URL.
    server = f"{safe_text(row.name)} ({safe_text(row.url)})" if row.name else safe_text(row.url)
    return f"{server}\t{row.state}\t{safe_text(detail)}"


def _with_running_view(rows: list[Any], paths: Any) -> list[Any]:
    """The running broker's state of each server where it has one: only it knows that its
    refreshes cannot reach the authorization server (the store still holds a token)."""
    from dataclasses import replace

    from broker.api.endpoint import running_status

    if paths is None:
        return rows
    try:
        running = {row.get("url"): row for row in running_status(paths)}
    except BrokerError as exc:
        logger.debug("no running broker to ask for its status: %s", exc)
        return rows
    merged = []
    for row in rows:
        seen = running.get(row.url)
        if seen is not None and isinstance(seen.get("state"), str):
            expires_at = seen.get("expires_at")
            row = replace(
                row,
                state=seen["state"],
                reason=seen.get("reason") if isinstance(seen.get("reason"), str) else None,
                expires_at=expires_at if isinstance(expires_at, int | float) else None,
            )
        merged.append(row)
    return merged


def _call(args: argparse.Namespace, broker: Any, out: TextIO) -> int:
    try:
        arguments = json.loads(args.tool_args)
    except ValueError as exc:
        raise _UsageError(f"--args is not valid JSON: {exc}") from None
    if not isinstance(arguments, dict):
        raise _UsageError("--args must be a JSON object")
    from broker.bridge.library_tokens import LibraryTokens
    from broker.cli.call import call_tool, render_result

    broker.token(args.url)  # fail fast (and with the right exit code) before connecting
    try:
        result = call_tool(args.url, args.tool, arguments, LibraryTokens(broker, args.url))
    except Exception as exc:
        inner = _broker_error_in(exc)
        if inner is not None:
            raise inner from exc
        raise BrokerError(f"the call failed: {_describe(exc)}") from exc
    if args.json:  # for programs: JSON escapes what the terminal must not see
        dumped = result.model_dump(mode="json", by_alias=True, exclude_none=True)
        print(json.dumps(dumped, ensure_ascii=True), file=out)
    else:  # escape sequences in a server's text must not reach the terminal
        print(safe_lines(render_result(result)), file=out)
    return 1 if result.is_error else 0


# -- plumbing ---------------------------------------------------------------------------------


class _UsageError(Exception):
    pass


def _broker_error_in(exc: BaseException) -> BrokerError | None:
    """The BrokerError behind ``exc``: the SDK wraps errors of the auth flow in groups."""
    if isinstance(exc, BrokerError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _broker_error_in(inner)
            if found is not None:
                return found
    cause = exc.__cause__ or exc.__context__
    return _broker_error_in(cause) if cause is not None else None


def _describe(exc: BaseException) -> str:
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return safe_text(f"{type(exc).__name__}: {exc}")


def _local_time(epoch: float) -> str:
    import datetime

    return datetime.datetime.fromtimestamp(epoch).astimezone().isoformat(timespec="seconds")


def _default_factory(args: argparse.Namespace) -> Any:
    from broker.root import from_environment

    return from_environment(args.config).broker


class LazyBroker:
    """The broker of a command that needs it only sometimes (``configure``): ``get()`` builds
    it on first use; ``close()`` closes it if it was."""

    def __init__(self, factory: Callable[[], Any]) -> None:
        self._factory = factory
        self._broker: Any = None

    def get(self) -> Any:
        if self._broker is None:
            self._broker = self._factory()
        return self._broker

    def close(self) -> None:
        if self._broker is not None:
            self._broker.close()


def _configure_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def main(
    argv: Sequence[str] | None = None,
    broker_factory: BrokerFactory = _default_factory,
    out: TextIO | None = None,
) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    parser = helper_parser() if is_helper_command(words) else build_parser()
    args = parser.parse_args(words)
    if args.command is None:  # plain `mcp-broker` runs the tray app
        args = parser.parse_args([*words, "run"])
    _configure_logging(args.verbose)
    broker: Any = None
    try:
        needs_broker = getattr(args, "needs_broker", True)
        if needs_broker == "on_demand":
            # The running broker serves its own configuration: --config goes to the library.
            broker = HelperTokens(lambda: broker_factory(args), use_api=args.config is None)
        elif needs_broker == "lazy":  # built only if the command asks for it
            broker = LazyBroker(lambda: broker_factory(args))
        elif needs_broker:
            broker = broker_factory(args)
        code: int = args.run(args, broker, out or sys.stdout)
        return code
    except _UsageError as exc:
        parser.error(str(exc))
    except BrokerError as exc:
        message = str(exc)
        url = getattr(args, "url", None)
        if isinstance(exc, InteractionRequired) and url and "mcp-broker login" not in message:
            message += f". Sign in with: mcp-broker login {url}"
        print(f"mcp-broker: {safe_text(message)}", file=sys.stderr)
        logger.debug("failed", exc_info=True)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    finally:
        if broker is not None:
            broker.close()
    return 1  # not reached: parser.error exits
