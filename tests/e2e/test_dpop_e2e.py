"""DPoP end to end (RFC 9449, MCP SEP-1932; issue 13 item 2): the local authorization server
issuing DPoP-bound tokens (``idp --dpop``, with and without ``--dpop-nonce``), the demo MCP server
taking bound tokens only (``serve --dpop-required``, and ``--dpop-nonce``), ``mcp-broker login``
through a real browser, tokens and the key in a real (private) Secret Service, and a tool called
through the real bridge (``mcp-broker connect``, launched by the mcp SDK's stdio client), with and
without a running broker (whose token API refuses bound tokens). A token stolen from the wire is
refused by the demo server: replayed as Bearer, or with a proof for another URL or of another key.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest

from broker.oauth import dpop as proofs
from broker.paths import HOME_ENV as HOME
from broker.store import KeyringTokenStore
from broker.tokens.tokenset import TokenKey, TokenSet
from demo_server.idp.extension_settings import DpopSettings
from tests.broker.bridge.stdio import bridged_client
from tests.broker.bridge.test_connect_e2e import whoami
from tests.broker.desktop.brokerrun import BrokerRun
from tests.e2e.conftest import BrokerCli, DemoStack, demo_stack, require_chromium
from tests.e2e.test_cli_e2e import claims, sign_in
from tests.support.canaries import files_under, leaks
from tests.support.desktop import wait_for
from tests.support.secret_service import SecretServiceHandle

pytestmark = pytest.mark.integration


def dpop_stack(nonces: bool, access_token_ttl: int = 3600) -> Any:
    return demo_stack(
        access_token_ttl=access_token_ttl,
        rotation=True,
        dpop=DpopSettings(enabled=True, require_nonce=nonces),
        resource={"dpop_required": True, "dpop_nonce": nonces},
    )


def stored(secret_service: SecretServiceHandle, stack: DemoStack) -> TokenSet:
    store = KeyringTokenStore(secret_service.backend, timeout=30)
    try:
        tokens = store.reload(TokenKey(stack.issuer, "demo-broker", stack.mcp_url))
    finally:
        store.close()
    assert tokens is not None
    return tokens


def call_whoami(cli: BrokerCli, url: str, log: Path) -> list[dict[str, Any]]:
    async def session() -> list[dict[str, Any]]:
        async with bridged_client(cli, url, log) as client:
            return [await whoami(client) for _ in range(3)]

    return anyio.run(session)


def replay(url: str, headers: dict[str, str]) -> httpx2.Response:
    """A ``tools/list`` with stolen credentials, as an attacker would send it."""
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    accept = {"Accept": "application/json, text/event-stream", **headers}
    return httpx2.post(url, json=body, headers=accept, timeout=30, trust_env=False)


@pytest.mark.parametrize("nonces", [False, True], ids=["no-nonce", "nonces"])
def test_a_dpop_bound_sign_in_calls_tools_through_the_bridge_and_a_stolen_token_is_useless(
    broker_cli: BrokerCli,
    secret_service: SecretServiceHandle,
    tmp_path: Path,
    nonces: bool,
) -> None:
    require_chromium()
    log = tmp_path / "bridge.log"
    with dpop_stack(nonces) as stack:
        sign_in(broker_cli, stack)
        tokens = stored(secret_service, stack)
        # Bound: token_type DPoP, cnf.jkt = the thumbprint of the key kept with the tokens.
        assert tokens.token_type == "DPoP" and tokens.dpop_key is not None
        key = proofs.key_from_text(tokens.dpop_key)
        assert claims(tokens.access_token)["cnf"] == {"jkt": proofs.thumbprint(key)}

        seen = call_whoami(broker_cli, stack.mcp_url, log)
        assert [me["username"] for me in seen] == ["demo"] * 3

        # The token API's helpers refuse it and name the bridge (exit 3).
        refused = broker_cli.run("token", stack.mcp_url)
        assert refused.returncode == 3 and refused.stdout == ""
        assert f"mcp-broker connect {stack.mcp_url}" in refused.stderr

        # Stolen from the wire: as Bearer, with a proof for another URL (even one signed by the
        # broker's own key), with a proof of the thief's key: all refused.
        token = tokens.access_token
        other = stack.mcp_url.replace("/mcp", "/other")
        attempts = {
            "bearer": {"Authorization": f"Bearer {token}"},
            "dpop without proof": {"Authorization": f"DPoP {token}"},
            "proof for another url": {
                "Authorization": f"DPoP {token}",
                "DPoP": proofs.build_proof(key, "POST", other, time.time(), access_token=token),
            },
            "thief's key": {
                "Authorization": f"DPoP {token}",
                "DPoP": proofs.build_proof(
                    proofs.new_key(), "POST", stack.mcp_url, time.time(), access_token=token
                ),
            },
        }
        for what, headers in attempts.items():
            answer = replay(stack.mcp_url, headers)
            assert answer.status_code == 401, what
            assert token not in answer.text and "tools" not in answer.text, what

        # The private key is in the keyring (with the tokens), and leaves it at sign-out.
        private_d = str(key.as_dict(private=True)["d"])
        assert any(private_d in v for v in secret_service.entries("mcp-oauth-broker").values())
        broker_cli.ok("logout", stack.mcp_url)
        assert not any(private_d in v for v in secret_service.entries("mcp-oauth-broker").values())

    secrets = [private_d, token, tokens.refresh_token or "", tokens.dpop_key]
    places = {f"files: {n}": t for n, t in files_under(Path(broker_cli.env[HOME])).items()}
    places["bridge log"] = log.read_text()
    for number, done in enumerate(broker_cli.runs):
        places[f"run {number} stdout"] = done.stdout
        places[f"run {number} stderr"] = done.stderr
    assert leaks(secrets, places) == []


def test_a_bound_token_is_refreshed_with_its_key_and_nonces(
    broker_cli: BrokerCli, secret_service: SecretServiceHandle, tmp_path: Path
) -> None:
    require_chromium()
    with dpop_stack(nonces=True, access_token_ttl=4) as stack:
        sign_in(broker_cli, stack)
        first = stored(secret_service, stack)
        time.sleep(5)  # expired: the next call refreshes, with a proof of the same key
        assert "demo" in broker_cli.ok("call", stack.mcp_url, "whoami")
        assert stack.counter.refreshes >= 1
        again = stored(secret_service, stack)
    assert again.access_token != first.access_token
    assert again.token_type == "DPoP" and again.dpop_key == first.dpop_key
    assert first.dpop_key is not None
    key = proofs.key_from_text(first.dpop_key)
    assert claims(again.access_token)["cnf"] == {"jkt": proofs.thumbprint(key)}


def test_with_a_broker_running_the_bridge_signs_its_own_proofs(
    broker_cli: BrokerCli, secret_service: SecretServiceHandle, tmp_path: Path
) -> None:
    require_chromium()
    with dpop_stack(nonces=True) as stack:
        sign_in(broker_cli, stack)
        env = {k: v for k, v in broker_cli.env.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
        broker = BrokerRun(env, tmp_path / "broker.log", "--headless")
        try:
            wait_for("the broker's API", lambda: "token API listening" in broker.log() or None, 120)
            seen = call_whoami(broker_cli, stack.mcp_url, tmp_path / "bridge.log")
            refused = broker_cli.run("headers", stack.mcp_url)  # through the running API
        finally:
            broker.kill()
        tokens = stored(secret_service, stack)
    assert [me["username"] for me in seen] == ["demo"] * 3
    assert refused.returncode == 3 and "DPoP-bound" in refused.stderr
    bridge_log = (tmp_path / "bridge.log").read_text()
    assert "DPoP-bound; using the broker library" in bridge_log
    assert tokens.dpop_key is not None
    private_d = str(proofs.key_from_text(tokens.dpop_key).as_dict(private=True)["d"])
    logs = {"broker log": broker.log(), "bridge log": bridge_log, "headers": refused.stdout}
    assert leaks([private_d, tokens.access_token, tokens.dpop_key], logs) == []


def test_a_machine_identity_gets_dpop_bound_tokens_too(
    broker_cli: BrokerCli, secret_service: SecretServiceHandle
) -> None:
    from tests.e2e.test_machines_e2e import add_machine

    secret = "CANARY-m2m-dpop-secret"
    with demo_stack(
        access_token_ttl=3600,
        rotation=False,
        m2m_secret=secret,
        dpop=DpopSettings(enabled=True, require_nonce=True),
        resource={"dpop_required": True, "dpop_nonce": True},
    ) as stack:
        added = add_machine(broker_cli, stack.mcp_url, secret)
        assert added.returncode == 0, added.stderr
        assert "machine client demo-m2m" in broker_cli.ok("call", stack.mcp_url, "whoami")
        store = KeyringTokenStore(secret_service.backend, timeout=30)
        try:
            tokens = store.reload(TokenKey(stack.issuer, "demo-m2m", stack.mcp_url))
        finally:
            store.close()
    assert tokens is not None and tokens.token_type == "DPoP" and tokens.dpop_key
    key = proofs.key_from_text(tokens.dpop_key)
    assert claims(tokens.access_token)["cnf"] == {"jkt": proofs.thumbprint(key)}
