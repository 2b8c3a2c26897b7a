"""Enterprise-managed authorization end to end (issue 13 item 1): one sign-in at the organisation's
IdP in a real browser, then two MCP servers called through the bridge with no further browser.

The local stack plays every part over real HTTP on 127.0.0.1: the local authorization server as
the enterprise IdP (``--enterprise-idp``: token exchange issuing ID-JAGs), and each of the two
demo MCP servers behind its own local authorization server trusting that IdP (``--trust-idp``:
JWT bearer grant for a confidential client). The user runs the real commands as subprocesses
(``mcp-broker idp add``, ``add --enterprise``, ``idp login`` with headless Debian Chromium
filling in the IdP's login form), tokens go to a real (private) Secret Service, and each server
is called by the mcp SDK's stdio client through ``mcp-broker connect``.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from broker.idps import IdpConfig
from broker.paths import HOME_ENV as HOME
from broker.store import KeyringTokenStore
from broker.tokens.tokenset import TokenKey, TokenSet
from demo_server.idp import ClientConfig, IdpSettings, ResourceServerConfig, RunningIdp
from demo_server.idp import start as start_idp
from demo_server.idp.extension_settings import (
    DpopSettings,
    EnterpriseSettings,
    IdJagAudience,
    TrustedIdp,
)
from demo_server.resource import ResourceSettings, RunningResourceServer
from demo_server.resource import start as start_resource
from demo_server.resource.server import bind_loopback
from tests.broker.bridge.stdio import bridged_client
from tests.e2e.conftest import BrokerCli, TokenRequestCounter, require_chromium
from tests.support.browser import CHROMIUM_DRIVER, browser_command
from tests.support.canaries import files_under, leaks
from tests.support.procs import ServerProcess, demo_server_cmd, fixed_port
from tests.support.secret_service import SecretServiceHandle

pytestmark = pytest.mark.integration

POOL = "us-east-1_Demo00001"
CLIENT = "ent-client"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


@dataclass
class EnterpriseStack:
    idp: RunningIdp
    idp_counter: TokenRequestCounter
    auths: list[RunningIdp]
    auth_counters: list[TokenRequestCounter]
    servers: list[RunningResourceServer]
    password: str
    secret: str


def counted(running: RunningIdp) -> TokenRequestCounter:
    """Count the token requests by grant type, in front of the running app."""
    server = running.server
    counter = TokenRequestCounter(server.application)  # type: ignore[attr-defined]
    server.application = counter  # type: ignore[attr-defined]
    return counter


@contextmanager
def enterprise_stack(access_token_ttl: int = 3600, dpop: bool = False) -> Iterator[EnterpriseStack]:
    """The IdP, and two MCP servers each behind its own authorization server trusting it;
    ``access_token_ttl``: the MCP servers' access tokens' lifetime; ``dpop``: the authorization
    servers issue DPoP-bound tokens and demand nonces (``--dpop --dpop-nonce``), the MCP servers
    take bound tokens only (``--dpop-required --dpop-nonce``)."""
    password = "CANARY-pw-" + secrets.token_urlsafe(12)
    secret = "CANARY-ent-secret-" + secrets.token_urlsafe(12)
    sockets = [bind_loopback("127.0.0.1", 0), bind_loopback("127.0.0.1", 0)]
    urls = [f"http://127.0.0.1:{s.getsockname()[1]}/mcp" for s in sockets]
    idp_issuer = f"http://127.0.0.1:{fixed_port()}/{POOL}"
    with ExitStack() as stack:
        for sock in sockets:
            stack.callback(sock.close)
        auths = []
        for url in urls:
            client = ClientConfig(
                client_id=CLIENT,
                client_secret=secret,
                callback_urls=(),
                allowed_scopes=(f"{url}/tools",),
                allowed_flows=("jwt-bearer",),
            )
            auth = start_idp(
                IdpSettings(
                    port=0,
                    access_token_ttl=access_token_ttl,
                    advertise_pkce=True,
                    resource_servers=(ResourceServerConfig(url),),
                    clients=(client,),
                    enterprise=EnterpriseSettings(trusted_idps=(TrustedIdp(idp_issuer),)),
                    dpop=DpopSettings(enabled=dpop, require_nonce=dpop),
                )
            )
            stack.callback(auth.close)
            auths.append(auth)
        audiences = tuple(IdJagAudience(auth.issuer, CLIENT) for auth in auths)
        idp = start_idp(
            IdpSettings(
                port=int(idp_issuer.split(":")[2].split("/")[0]),
                demo_password=password,
                enterprise=EnterpriseSettings(issue_id_jags=True, audiences=audiences),
            )
        )
        stack.callback(idp.close)
        assert idp.issuer == idp_issuer
        servers = []
        for sock, auth in zip(sockets, auths, strict=True):
            settings = ResourceSettings(
                port=0,
                issuer=auth.issuer,
                client_ids=(CLIENT,),
                dpop=dpop,
                dpop_required=dpop,
                dpop_nonce=dpop,
            )
            server = start_resource(settings, sock)
            stack.callback(server.close)
            servers.append(server)
        counters = [counted(a) for a in auths]
        yield EnterpriseStack(idp, counted(idp), auths, counters, servers, password, secret)


def add_enterprise(
    cli: BrokerCli, url: str, secret: str, client_id: str = CLIENT
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        cli.argv("add", url, "--enterprise", "corp", "--client-id", client_id),
        env=cli.env,
        input=secret + "\n",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    cli.runs.append(done)
    return done


def set_up(cli: BrokerCli, stack: EnterpriseStack, tmp_path: Path) -> None:
    """The user's setup: the IdP (the local one is Cognito-compatible: PKCE without advertising
    it, so Cognito as the IdP), then both servers with the secret on standard input."""
    cli.env["BROWSER"] = browser_command(tmp_path, CHROMIUM_DRIVER)
    cli.env["E2E_DEMO_PASSWORD"] = stack.password
    idp = ["--issuer", stack.idp.issuer, "--client-id", "demo-broker", "--provider", "cognito"]
    cli.ok("idp", "add", "corp", *idp)
    for server in stack.servers:
        added = add_enterprise(cli, server.url, stack.secret)
        assert added.returncode == 0, added.stderr
        assert "mcp-broker idp login corp" in added.stdout  # no sign-in yet: no token


async def call_whoami(cli: BrokerCli, url: str, errlog: Path) -> str:
    async with bridged_client(cli, url, errlog) as client:
        result = await client.call_tool("whoami", {})
    assert not result.is_error, result
    return str(result.content)


def test_one_idp_sign_in_gives_two_servers_tokens_through_the_bridge(
    broker_cli: BrokerCli, secret_service: SecretServiceHandle, tmp_path: Path
) -> None:
    require_chromium()
    with enterprise_stack() as stack:
        cli = broker_cli
        set_up(cli, stack, tmp_path)
        assert stack.idp_counter.counts[TOKEN_EXCHANGE] == 0

        cli.ok("idp", "login", "corp")  # the one browser sign-in
        assert stack.idp_counter.counts["authorization_code"] == 1

        errlog = tmp_path / "bridge.log"
        for server, auth in zip(stack.servers, stack.auths, strict=True):
            who = asyncio.run(call_whoami(cli, server.url, errlog))
            # A token of this server's own authorization server, for the enterprise client.
            assert f'"issuer": "{auth.issuer}"' in who and f'"client_id": "{CLIENT}"' in who
        assert stack.idp_counter.counts["authorization_code"] == 1  # no further browser
        assert stack.idp_counter.counts[TOKEN_EXCHANGE] == 2
        assert [c.counts[JWT_BEARER] for c in stack.auth_counters] == [1, 1]

        status = cli.ok("status")
        lines = status.splitlines()
        idp_line = next(i for i, line in enumerate(lines) if line.startswith("IdP corp"))
        assert "valid" in lines[idp_line] and "as demo" in lines[idp_line], status
        under = [line for line in lines[idp_line + 1 :] if line.startswith("  ")]
        assert sorted(u.split()[0] for u in under) == sorted(s.url for s in stack.servers)

        # Canaries: nothing the broker holds reaches a terminal, a log or a file.
        store = KeyringTokenStore(secret_service.backend, timeout=30)
        try:
            idp_key = IdpConfig("corp", stack.idp.issuer, "demo-broker").key
            idp_tokens = store.get(idp_key)
            server_tokens = [
                store.get(TokenKey(auth.issuer, CLIENT, server.url))
                for auth, server in zip(stack.auths, stack.servers, strict=True)
            ]
        finally:
            store.close()
        assert idp_tokens is not None and idp_tokens.id_token and idp_tokens.refresh_token
        assert all(t is not None and t.refresh_token is None for t in server_tokens)
        canaries = [idp_tokens.id_token, idp_tokens.refresh_token, idp_tokens.access_token]
        canaries += [t.access_token for t in server_tokens if t is not None]
        canaries += [stack.secret, stack.password]
        places = {f"file {n}": t for n, t in files_under(Path(cli.env[HOME])).items()}
        places["bridge log"] = errlog.read_text()
        for number, done in enumerate(cli.runs):
            places[f"run {number} argv"] = " ".join(map(str, done.args))
            places[f"run {number} stdout"] = done.stdout
            places[f"run {number} stderr"] = done.stderr
        assert leaks(canaries, places) == []


def test_dpop_enabled_authorization_servers_bind_the_tokens_of_id_jags(
    broker_cli: BrokerCli, secret_service: SecretServiceHandle, tmp_path: Path
) -> None:
    """DPoP (RFC 9449) on the JWT bearer grant, end to end: both authorization servers issue
    bound tokens and demand nonces (``--dpop --dpop-nonce``), both MCP servers take bound tokens
    only. The bridge's ID-JAG redemption carries a proof of a key per server (one
    ``use_dpop_nonce`` round each), the bound token is kept with that key and sent as
    ``Authorization: DPoP`` with proofs; a renewal proves the same key; ``status`` says
    DPoP-bound, ``token`` refuses, ``configure claude-code`` gives them the bridge."""
    import json as jsonlib

    from broker.oauth import dpop as proofs
    from tests.e2e.test_cli_e2e import claims

    require_chromium()
    ttl = 10
    with enterprise_stack(access_token_ttl=ttl, dpop=True) as stack:
        cli = broker_cli
        set_up(cli, stack, tmp_path)
        cli.ok("idp", "login", "corp")
        errlog = tmp_path / "bridge.log"
        for server, auth in zip(stack.servers, stack.auths, strict=True):
            who = asyncio.run(call_whoami(cli, server.url, errlog))
            assert f'"issuer": "{auth.issuer}"' in who and f'"client_id": "{CLIENT}"' in who
        # One use_dpop_nonce round at each authorization server: the nonce is retried once.
        assert [c.counts[JWT_BEARER] for c in stack.auth_counters] == [2, 2]

        def stored() -> list[TokenSet]:
            store = KeyringTokenStore(secret_service.backend, timeout=30)
            try:
                found = [
                    store.reload(TokenKey(auth.issuer, CLIENT, server.url))
                    for auth, server in zip(stack.auths, stack.servers, strict=True)
                ]
            finally:
                store.close()
            assert all(t is not None for t in found)
            return [t for t in found if t is not None]

        first = stored()
        for tokens in first:
            assert tokens.token_type == "DPoP" and tokens.dpop_key is not None
            key = proofs.key_from_text(tokens.dpop_key)
            assert claims(tokens.access_token)["cnf"] == {"jkt": proofs.thumbprint(key)}
        assert first[0].dpop_key != first[1].dpop_key  # a key per server

        url = stack.servers[0].url
        refused = cli.run("token", url)
        assert refused.returncode == 3 and f"mcp-broker connect {url}" in refused.stderr
        lines = [line for line in cli.ok("status").splitlines() if line.startswith("  ")]
        assert len(lines) == 2 and all(line.endswith(", DPoP-bound") for line in lines), lines
        rows = jsonlib.loads(cli.ok("status", "--json"))["servers"]
        assert [row["dpop_bound"] for row in rows] == [True, True]
        entry = cli.run("configure", "claude-code", "--server", url, "--print")
        assert entry.returncode == 0, entry.stderr
        assert '"connect"' in entry.stdout and "headersHelper" not in entry.stdout
        assert "DPoP-bound" in entry.stderr
        helper = cli.run("configure", "claude-code", "--server", url, "--via", "helper")
        assert helper.returncode != 0 and "DPoP-bound" in helper.stderr

        time.sleep(ttl + 1)  # expired: the next call renews with a new ID-JAG, the same key
        asyncio.run(call_whoami(cli, url, errlog))
        renewed = stored()[0]
        assert renewed.access_token != first[0].access_token
        assert renewed.dpop_key == first[0].dpop_key and renewed.token_type == "DPoP"
        assert stack.idp_counter.counts[TOKEN_EXCHANGE] == 3

        # Stolen from the store and replayed as Bearer: the MCP server refuses it.
        import httpx2

        ping = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
        headers = {
            "Accept": "application/json, text/event-stream",
            "Authorization": f"Bearer {renewed.access_token}",
        }
        stolen = httpx2.post(url, json=ping, headers=headers, timeout=30, trust_env=False)
        assert stolen.status_code == 401

    keys = [t.dpop_key or "" for t in first]
    privates = [str(proofs.key_from_text(k).as_dict(private=True)["d"]) for k in keys]
    canaries = [*keys, *privates, *(t.access_token for t in first), renewed.access_token]
    places = {f"file {n}": t for n, t in files_under(Path(cli.env[HOME])).items()}
    places["bridge log"] = errlog.read_text()
    for number, done in enumerate(cli.runs):
        places[f"run {number} stdout"] = done.stdout
        places[f"run {number} stderr"] = done.stderr
    assert leaks(canaries, places) == []


async def refused_call(cli: BrokerCli, url: str, errlog: Path) -> str:
    """What the MCP client is told when the bridge cannot get a token."""
    from mcp.shared.exceptions import MCPError

    def messages(exc: BaseException) -> list[str]:
        if isinstance(exc, MCPError):
            return [str(exc)]
        inner = exc.exceptions if isinstance(exc, BaseExceptionGroup) else []
        return [m for e in inner for m in messages(e)] + messages_of_cause(exc)

    def messages_of_cause(exc: BaseException) -> list[str]:
        cause = exc.__cause__ or exc.__context__
        return messages(cause) if cause is not None else []

    try:
        await call_whoami(cli, url, errlog)
    except Exception as exc:
        found = messages(exc)
        assert found, exc
        return found[0]
    raise AssertionError("the call was served")


def test_when_the_idp_sign_in_ends_one_idp_sign_in_renews_every_server(
    broker_cli: BrokerCli, tmp_path: Path
) -> None:
    require_chromium()
    ttl = 10
    with enterprise_stack(access_token_ttl=ttl) as stack:
        cli = broker_cli
        set_up(cli, stack, tmp_path)
        first, second = (s.url for s in stack.servers)
        cli.ok("login", first)  # a server's login signs in at its IdP (the browser, once)
        assert stack.idp_counter.counts["authorization_code"] == 1
        errlog = tmp_path / "bridge.log"
        asyncio.run(call_whoami(cli, second, errlog))  # no browser for the second server
        assert stack.idp_counter.counts[TOKEN_EXCHANGE] == 2

        time.sleep(ttl + 1)  # both servers' tokens expire: each is renewed with a new ID-JAG
        for url in (first, second):
            asyncio.run(call_whoami(cli, url, errlog))
        assert stack.idp_counter.counts[TOKEN_EXCHANGE] == 4
        assert stack.idp_counter.counts["authorization_code"] == 1

        cli.ok("idp", "logout", "corp")  # the IdP sign-in ends
        time.sleep(ttl + 1)
        for url in (first, second):
            message = asyncio.run(refused_call(cli, url, errlog))
            assert "mcp-broker idp login corp" in message, message
        assert stack.idp_counter.counts[TOKEN_EXCHANGE] == 4  # nothing to exchange

        cli.ok("idp", "login", "corp")  # one sign-in renews them all
        for url in (first, second):
            asyncio.run(call_whoami(cli, url, errlog))
        assert stack.idp_counter.counts["authorization_code"] == 2
        assert stack.idp_counter.counts[TOKEN_EXCHANGE] == 6


def test_the_demo_stack_with_an_enterprise_idp_serves_the_broker(
    broker_cli: BrokerCli, tmp_path: Path
) -> None:
    """``mcp-demo-server stack --enterprise-idp-port 0``, as the README shows it: the broker
    signs in at its IdP (the auto-login browser driver follows the redirects) and calls the
    stack's MCP server with a token from an ID-JAG."""
    args = demo_server_cmd(
        "stack", "--port", "0", "--idp-port", "0", "--enterprise-idp-port", "0",
        "--auto-login", "demo", "--advertise-pkce",
    )  # fmt: skip
    with ServerProcess(args, tmp_path / "stack.log") as stack:
        log = stack.log()
        idp_issuer = re.search(r"Enterprise IdP.*\n\s+issuer:\s+(\S+)", log)
        secret = re.search(r"demo-enterprise\s+secret: (\S+)", log)
        assert idp_issuer and secret, log
        cli = broker_cli
        idp = ["--issuer", idp_issuer.group(1), "--client-id", "demo-broker"]
        cli.ok("idp", "add", "corp", *idp, "--provider", "cognito")
        added = add_enterprise(cli, stack.url, secret.group(1), client_id="demo-enterprise")
        assert added.returncode == 0, added.stderr
        cli.ok("idp", "login", "corp")
        who = cli.ok("call", stack.url, "whoami", "--json")
        assert '\\"client_id\\": \\"demo-enterprise\\"' in who, who
        assert secret.group(1) not in "".join(r.stdout + r.stderr for r in cli.runs)
