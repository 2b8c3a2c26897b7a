"""An authorization server whose metadata names no PKCE method and no authorization endpoint
(RFC 8414 §2: not required when no grant it supports uses one): the grants without a browser
(client credentials, the workload's JWT, the enterprise ID-JAG, the device flow) get tokens from
it through the one flow, while a sign-in with the browser is refused (MCP authorization: PKCE
S256 or refuse to proceed) before a port is bound, a client registered or a browser opened."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx2
import pytest

from broker.config import Config, ServerConfig, machine_credential_owner
from broker.errors import DiscoveryError, PkceNotSupported
from broker.signin.flow import SignInFlow
from broker.signin.login import CallbackListener, Headless
from broker.store import MemoryTokenStore
from broker.tokens.auth_servers import AuthServerCache
from broker.tokens.enterprise import AssertionGrants
from broker.tokens.grant import RefreshGrant
from broker.tokens.service import TokenService
from broker.tokens.tokenset import CLIENT_CREDENTIALS, ID_JAG, WORKLOAD_JWT, TokenSet
from tests.broker.signin.test_flow import ISSUER, ONE, World, refresh_not_expected
from tests.broker.signin.test_flow_enterprise import IDP, EnterpriseWorld, id_token
from tests.broker.signin.test_flow_headless import DeviceWorld
from tests.broker.signin.test_flow_machine import SECRET, MachineWorld

METADATA = f"{ISSUER}/.well-known/oauth-authorization-server"


def stripped(
    request: httpx2.Request,
    answer: httpx2.Response,
    names: tuple[str, ...] = ("authorization_endpoint", "code_challenge_methods_supported"),
) -> httpx2.Response:
    """The MCP server's authorization server metadata without ``names``."""
    if str(request.url) != METADATA:
        return answer
    body = {k: v for k, v in answer.json().items() if k not in names}
    return httpx2.Response(200, json=body, request=request)


class Recording:
    """Every URL asked of the world, so a test can tell nothing was registered."""

    def __init__(self, world: Any, names: tuple[str, ...] | None = None) -> None:
        self.world = world
        self.urls: list[str] = []
        self.names = names

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.urls.append(str(request.url))
        answer = self.world.send(request)
        if self.names is None:
            return stripped(request, answer)
        return stripped(request, answer, self.names)


def flow_for(
    tmp_path: Path,
    world: World,
    send: Any,
    store: MemoryTokenStore,
    server: ServerConfig,
    idps: tuple[Any, ...] = (),
) -> tuple[SignInFlow, AuthServerCache, list[Config]]:
    config = [Config(tmp_path / "config.toml", servers=(server,), idps=idps)]

    def configured(url: str) -> ServerConfig:
        found = config[0].get_server(url)
        assert found is not None
        return found

    def update(change: Any) -> None:
        config[0] = change(config[0])

    def no_browser(url: str) -> bool:
        raise AssertionError("no browser for a grant without one")

    service = TokenService(store, refresh_not_expected)
    cache = AuthServerCache(tmp_path)
    assertions = AssertionGrants(
        send, cache, store, lambda: config[0], lambda key, force: service.get_token(key)
    )
    flow = SignInFlow(
        send=send,
        head_of=world.head_of,
        service=service,
        auth_servers=cache,
        secrets=store,
        server=configured,
        update_config=update,
        opener=no_browser,
        timeout=5,
        assertions=assertions,
    )
    return flow, cache, config


def test_client_credentials_need_neither_pkce_nor_an_authorization_endpoint(
    tmp_path: Path,
) -> None:
    world, store = MachineWorld(), MemoryTokenStore()
    send = Recording(world)
    store.put_client_secret(machine_credential_owner(ONE), "m2m", SECRET)
    machine = ServerConfig(ONE, client_id="m2m", grant="client_credentials")
    flow, cache, config = flow_for(tmp_path, world, send, store, machine)

    tokens = flow.sign_in(ONE)

    assert tokens.grant == CLIENT_CREDENTIALS and tokens.access_token == "machine-1"
    assert [g["grant_type"] for g in world.grants] == ["client_credentials"]
    assert config[0].servers[0].issuer == ISSUER
    kept = cache.get(ISSUER, "generic")  # as found: refused only by a sign-in with the browser
    assert kept is not None
    assert (kept.authorization_endpoint, kept.code_challenge_methods_supported) == (None, None)
    # The next token from the grant object, with the metadata cached.
    renewed = RefreshGrant(send, cache, lambda: config[0].servers, store)(tokens)
    assert renewed.access_token == "machine-2"


def test_a_workload_jwt_needs_neither(tmp_path: Path) -> None:
    world, store = EnterpriseWorld(), MemoryTokenStore()
    path = tmp_path / "token"
    path.write_text("eyJhbGciOiJSUzI1NiJ9.e30.CANARY-signature")
    workload = ServerConfig(ONE, client_id="wl", workload_token_file=str(path))
    flow, _, config = flow_for(tmp_path, world, Recording(world), store, workload)

    tokens = flow.without_person(ONE)

    assert tokens.grant == WORKLOAD_JWT and world.opened == []
    assert [p["grant_type"].rsplit(":", 1)[-1] for p in world.posts] == ["jwt-bearer"]
    assert config[0].servers[0].issuer == ISSUER


def test_an_enterprise_id_jag_needs_neither(tmp_path: Path) -> None:
    world, store = EnterpriseWorld(), MemoryTokenStore()
    store.put(TokenSet(IDP.key, "idp-at", time.time() + 3600, id_token=id_token()))
    store.put_client_secret(machine_credential_owner(ONE), "ent", "CANARY-secret")
    enterprise = ServerConfig(ONE, client_id="ent", enterprise="corp")
    flow, _, _ = flow_for(tmp_path, world, Recording(world), store, enterprise, (IDP,))

    tokens = flow.sign_in(ONE)

    assert tokens.grant == ID_JAG and world.opened == []
    grants = [p["grant_type"].rsplit(":", 1)[-1] for p in world.posts]
    assert grants == ["token-exchange", "jwt-bearer"]


@pytest.mark.parametrize("mode", ["device", "auto"])
def test_the_device_flow_needs_neither(tmp_path: Path, mode: str) -> None:
    world, store = DeviceWorld(), MemoryTokenStore()
    person = ServerConfig(ONE, client_id="device-client")
    flow, _, _ = flow_for(tmp_path, world, Recording(world), store, person)
    told: list[str] = []

    tokens = flow.sign_in(ONE, headless=Headless(mode, told.append))  # type: ignore[arg-type]

    assert tokens.access_token == "device-token" and world.opened == []
    assert any("BCDF-GHJK" in line for line in told)


def no_listener(*args: object, **kwargs: object) -> object:
    raise AssertionError("a callback port was bound for a sign-in that cannot start")


@pytest.mark.parametrize(
    ("names", "error", "message"),
    [
        (("code_challenge_methods_supported",), PkceNotSupported, "does not advertise PKCE"),
        (("authorization_endpoint",), DiscoveryError, "no authorization_endpoint"),
    ],
)
def test_a_browser_sign_in_is_refused_before_anything_is_registered_or_opened(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    names: tuple[str, ...],
    error: type[Exception],
    message: str,
) -> None:
    world, store = World(), MemoryTokenStore()
    send = Recording(world, names)
    flow, _, _ = flow_for(tmp_path, world, send, store, ServerConfig(ONE))  # DCR, no client id
    monkeypatch.setattr(CallbackListener, "bind", no_listener)

    for headless in (None, Headless("paste", lambda line: None)):
        with pytest.raises(error, match=message):
            flow.sign_in(ONE, headless=headless)

    assert world.opened == [] and world.token_requests == 0
    assert METADATA in send.urls and f"{ISSUER}/register" not in send.urls


def test_a_device_sign_in_where_none_is_offered_still_says_so(tmp_path: Path) -> None:
    # --device at a server without a device endpoint: the device error, not the PKCE one.
    world, store = World(), MemoryTokenStore()
    flow, _, _ = flow_for(
        tmp_path, world, Recording(world), store, replace(ServerConfig(ONE), client_id="c")
    )
    with pytest.raises(Exception, match="offers no device sign-in"):
        flow.sign_in(ONE, headless=Headless("device", lambda line: None))
