"""``mcp-broker idp ...`` and the assertion-grant options of ``mcp-broker add``: enterprise-managed
authorization (ID-JAG, MCP SEP-990) and workload identity federation (SEP-1933).

    mcp-broker idp add NAME --issuer URL --client-id ID [--client-secret] [--scope S ...]
    mcp-broker idp list [--json]          the IdPs, their sign-in and their servers
    mcp-broker idp login NAME             sign in at the IdP in the browser (once for all)
    mcp-broker idp logout NAME            sign out there (its servers' next tokens need a login)
    mcp-broker idp remove NAME            sign out there and forget it (no server may use it)
    mcp-broker add URL --enterprise NAME --client-id ID     (secret on stdin, or --private-key-jwt)
    mcp-broker add URL --workload-token-file PATH --client-id ID
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TextIO

from broker.errors import ConfigError, InteractionRequired
from broker.safetext import safe_text

if TYPE_CHECKING:
    from broker.config import Config, ServerConfig
    from broker.idps import IdpConfig

    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]

DESCRIPTION = """\
Enterprise-managed authorization (MCP extension SEP-990): sign in once at your organisation's
identity provider (OpenID Connect), and the broker gets tokens for every MCP server added with
`mcp-broker add URL --enterprise NAME` without a browser: it exchanges the IdP sign-in's ID token
at the IdP for an ID-JAG naming that server (RFC 8693 token exchange) and redeems it at the
server's authorization server (RFC 7523 JWT bearer grant). When the IdP sign-in ends, one
`mcp-broker idp login NAME` renews every server of that IdP. The IdP and the servers'
authorization servers must support this (Okta's cross-app access, for one); Cognito can be the
IdP's sign-in but issues no ID-JAGs itself.
"""


def configure_idp_parser(subparsers: Subparsers) -> argparse.ArgumentParser:
    from broker.config import PROVIDERS
    from broker.oauth.providers import FIXED_CALLBACK_PORTS

    parser: argparse.ArgumentParser = subparsers.add_parser(
        "idp",
        help="organisation identity providers for enterprise-managed authorization (ID-JAG)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="idp_command", metavar="ACTION", required=True)
    add = sub.add_parser(
        "add",
        help="add (or change) an IdP",
        description="Add an IdP, or change one. Nothing is sent anywhere; sign in afterwards "
        "with `mcp-broker idp login NAME`.",
    )
    add.add_argument("name", metavar="NAME", help="a short name for it, e.g. corp")
    add.add_argument("--issuer", required=True, metavar="URL", help="the IdP's OIDC issuer")
    add.add_argument(
        "--client-id", required=True, metavar="ID", help="the broker's client id at the IdP"
    )
    add.add_argument(
        "--client-secret",
        action="store_true",
        help="the client is confidential: its secret is read from standard input (prompted "
        "for without echo on a terminal; never give it as an argument) into the OS keyring",
    )
    add.add_argument(
        "--scope",
        dest="scopes",
        action="append",
        metavar="SCOPE",
        help="scope of the IdP sign-in, repeatable (openid always; default openid)",
    )
    add.add_argument("--provider", choices=PROVIDERS, default="auto", help="(default auto)")
    add.add_argument(
        "--callback-port",
        dest="callback_ports",
        type=int,
        action="append",
        metavar="N",
        help=f"loopback callback port to try, repeatable (default {FIXED_CALLBACK_PORTS})",
    )
    add.add_argument(
        "--id-token-file",
        metavar="PATH",
        help="no browser sign-in: the ID token is in this file, which the environment keeps "
        "current (read on each use; e.g. written by your organisation's SSO agent)",
    )
    add.set_defaults(run=_add)
    listing = sub.add_parser("list", help="the IdPs, their sign-in and their servers")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(run=_list)
    login = sub.add_parser(
        "login",
        help="sign in at the IdP in the browser (once for all its servers)",
        description="Sign in at the IdP (Authorization Code + PKCE in the browser, as `login` "
        "does for a server). The ID token and refresh token go to the OS keyring; every server "
        "added with --enterprise NAME then gets its tokens without a browser.",
    )
    login.add_argument("name", metavar="NAME")
    headless = login.add_mutually_exclusive_group()
    headless.add_argument(
        "--no-browser", action="store_true", help="print the link; paste the final address"
    )
    headless.add_argument("--device", action="store_true", help="sign in with a code (RFC 8628)")
    login.set_defaults(run=_login)
    logout = sub.add_parser(
        "logout",
        help="sign out at the IdP (its servers need a new IdP sign-in for their next token)",
        description="Delete the IdP sign-in's tokens and revoke its refresh token where the IdP "
        "can. The servers keep their current access tokens until they expire.",
    )
    logout.add_argument("name", metavar="NAME")
    logout.set_defaults(run=_logout)
    remove = sub.add_parser(
        "remove", help="sign out at the IdP and forget it (no server may still use it)"
    )
    remove.add_argument("name", metavar="NAME")
    remove.set_defaults(run=_remove)
    return parser


def add_assertion_arguments(add: argparse.ArgumentParser) -> None:
    """The options of ``mcp-broker add`` for servers whose tokens come from an assertion."""
    group = add.add_argument_group(
        "enterprise-managed authorization and workload identity",
        "Tokens from the JWT bearer grant (RFC 7523), no browser per server. --client-id is "
        "the client at the server's authorization server.",
    )
    how = group.add_mutually_exclusive_group()
    how.add_argument(
        "--enterprise",
        metavar="IDP",
        help="get this server's tokens from the sign-in at the IdP named IDP (`mcp-broker idp "
        "add`): an ID-JAG of the IdP redeemed at the server's authorization server. The "
        "client's secret is read from standard input (or use --private-key-jwt)",
    )
    how.add_argument(
        "--workload-token-file",
        metavar="PATH",
        help="workload identity federation, for agents and CI: authenticate with the JWT in "
        "this file (a Kubernetes projected service-account token, a CI OIDC token), read "
        "anew on each use; no secret",
    )


def add_assertion_server(
    args: argparse.Namespace, broker: Any, out: TextIO, server: ServerConfig
) -> int:
    """``mcp-broker add URL --enterprise IDP | --workload-token-file PATH``."""
    from pathlib import Path

    from broker.cli import _UsageError

    if not args.client_id:
        raise _UsageError("--enterprise and --workload-token-file need --client-id")
    if args.client_credentials:
        raise _UsageError("--client-credentials does not go with these options")
    server = replace(server, grant=None, client_auth=None, issuer=None)
    if args.workload_token_file:
        path = str(Path(args.workload_token_file).expanduser().absolute())
        saved = broker.add(replace(server, workload_token_file=path))
        what = f"the workload's JWT in {path}"
    else:
        broker.config.load()  # a bad file fails before the secret is asked for
        if broker.config.load().get_idp(args.enterprise) is None:
            raise ConfigError(
                f"no IdP named {args.enterprise}: add it first with `mcp-broker idp add "
                f"{args.enterprise} --issuer URL --client-id ID`"
            )
        if args.private_key_jwt:
            from broker.cli import _read_private_key

            credential, auth = _read_private_key(args.private_key_jwt), "private_key_jwt"
        else:
            from broker.cli import _read_secret

            credential, auth = _read_secret(args.client_id), None
        enterprise = replace(server, enterprise=args.enterprise, client_auth=auth)
        saved = broker.add_machine(enterprise, credential)
        what = f"the sign-in at {args.enterprise}"
    print(f"Added {saved.url}: its tokens come from {what}.", file=out)
    try:
        tokens = broker.token(saved.url)
    except InteractionRequired as exc:
        print(f"No token yet: {safe_text(str(exc))}", file=out)
        return 0
    print(
        f"Got a token from {tokens.key.issuer}; the broker renews it before it expires.", file=out
    )
    return 0


# -- idp commands --------------------------------------------------------------------------------


def _add(args: argparse.Namespace, broker: Any, out: TextIO) -> int:
    from broker.idps import DEFAULT_SCOPES, IdpConfig
    from broker.oauth.providers import FIXED_CALLBACK_PORTS

    id_token_file = None
    if args.id_token_file:
        from pathlib import Path

        id_token_file = str(Path(args.id_token_file).expanduser().absolute())
    idp = IdpConfig(
        name=args.name,
        issuer=args.issuer,
        client_id=args.client_id,
        scopes=tuple(args.scopes) if args.scopes else DEFAULT_SCOPES,
        provider=args.provider,
        callback_ports=tuple(args.callback_ports or FIXED_CALLBACK_PORTS),
        id_token_file=id_token_file,
    )
    if args.client_secret:
        from broker.cli import _read_secret

        # The keyring first: a refusing keyring leaves the config as it was.
        broker.store.put_client_secret(idp.issuer, idp.client_id, _read_secret(idp.client_id))
    broker.config.update(lambda config: with_idp(config, idp))
    then = "" if id_token_file else f" Sign in with: mcp-broker idp login {idp.name}"
    print(f"Added the IdP {idp.name} ({safe_text(idp.issuer)}).{then}", file=out)
    return 0


def _list(args: argparse.Namespace, broker: Any, out: TextIO) -> int:
    rows = idp_rows(broker)
    if args.json:
        print(json.dumps({"idps": rows}, indent=2), file=out)
        return 0
    if not rows:
        print("No IdPs configured. Add one with: mcp-broker idp add NAME --issuer URL", file=out)
        return 0
    for row in rows:
        print(idp_line(row), file=out)
        for url in row["servers"]:
            print(f"  {safe_text(url)}", file=out)
    return 0


def _login(args: argparse.Namespace, broker: Any, out: TextIO) -> int:
    from broker.cli import _headless

    idp = _idp(broker, args.name)
    if idp.id_token_file is not None:
        raise ConfigError(f"{idp.name} takes its ID token from {idp.id_token_file}: no sign-in")
    headless = _headless(args)
    if headless is None:
        print("Opening the browser to sign in…", file=sys.stderr)
    tokens = broker.login_idp(idp.name, headless)
    who = f" as {tokens.user}" if tokens.user else ""
    print(f"Signed in at {idp.name}{who}. Its servers now get tokens without a browser.", file=out)
    return 0


def _logout(args: argparse.Namespace, broker: Any, out: TextIO) -> int:
    result = broker.logout_idp(_idp(broker, args.name).name)
    if result.removed == 0:
        print(f"{args.name}: not signed in.", file=out)
        return 0
    revoked = ", refresh token revoked" if result.revoked else ""
    print(f"Signed out at {args.name}{revoked}.", file=out)
    if result.problem:
        print(f"mcp-broker: warning: {safe_text(result.problem)}", file=sys.stderr)
    return 0


def _remove(args: argparse.Namespace, broker: Any, out: TextIO) -> int:
    from broker.idps import servers_of

    idp = _idp(broker, args.name)
    users = servers_of(idp.name, broker.servers())
    if users:
        names = ", ".join(server.url for server in users)
        raise ConfigError(f"{idp.name} still gets the tokens of {names}: change those first")
    broker.logout_idp(idp.name)
    broker.config.update(lambda config: without_idp(config, idp.name))
    print(f"Removed the IdP {idp.name} and its sign-in.", file=out)
    return 0


# -- helpers -------------------------------------------------------------------------------------


def with_idp(config: Config, idp: IdpConfig) -> Config:
    idps = tuple(i for i in config.idps if i.name != idp.name)
    return replace(config, idps=(*idps, idp))


def without_idp(config: Config, name: str) -> Config:
    return replace(config, idps=tuple(i for i in config.idps if i.name != name))


def _idp(broker: Any, name: str) -> IdpConfig:
    idp: IdpConfig | None = broker.config.load().get_idp(name)
    if idp is None:
        raise ConfigError(f"no IdP named {name}; add it with: mcp-broker idp add {name} ...")
    return idp


def idp_rows(broker: Any) -> list[dict[str, Any]]:
    """Each IdP, its sign-in's state (never a token) and the servers it gets tokens for."""
    from dataclasses import asdict

    from broker.idps import idp_summary

    idps = {idp.name: idp for idp in broker.config.load().idps}
    return [
        {**idp_summary(idps[row.name]), **asdict(row), "servers": list(row.servers)}
        for row in broker.idp_status()
    ]


def idp_line(row: dict[str, Any]) -> str:
    """One IdP as ``status`` and ``idp list`` show it."""
    who = f"as {row['user']}" if row.get("user") else (row.get("reason") or "")
    return (
        f"IdP {safe_text(row['name'])} ({safe_text(row['issuer'])})\t{row['state']}\t"
        f"{safe_text(who)}"
    )
