"""Sign-in against the project's local, Cognito-compatible authorization server (a subprocess).

Like Cognito, it serves discovery only at ``<issuer>/.well-known/openid-configuration``, does not
advertise PKCE, matches callback URLs exactly (the fixed ports) and has no registration endpoint.
``--auto-login`` approves at once, so an authorizer can stand in for the browser. Without the
Cognito profile, discovery takes it as it is: the machine client gets its token (client
credentials use no PKCE) while a sign-in with the browser refuses to start.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest

from broker.errors import PkceNotSupported
from broker.net.limited_http import LimitedSender
from broker.oauth.discovery import Discovered, drive, find_auth_server
from broker.oauth.providers import FIXED_CALLBACK_PORTS, profile_for
from broker.oauth.registration import ClientCredentials
from broker.signin import login
from broker.signin.login import ClientRegistry, SignIn, SignInOptions
from broker.tokens.grant import refresh_tokens
from broker.tokens.machine import client_credentials_tokens
from tests.support.procs import ISSUER, ServerProcess, demo_server_cmd

RESOURCE = "http://127.0.0.1:8000/mcp"
COGNITO = SignInOptions(profile="cognito", timeout=60)
M2M_SECRET = "CANARY-local-m2m-secret"


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("idp") / "idp.log"
    args = demo_server_cmd("idp", "--port", "0", "--auto-login", "demo", "--m2m-secret", M2M_SECRET)
    with ServerProcess(args, Path(log), announce=ISSUER) as idp:
        yield idp.url


@pytest.fixture
def send() -> Iterator[LimitedSender]:
    with httpx2.Client(trust_env=False, follow_redirects=False) as client:
        yield LimitedSender(client)


REDIRECTS: list[str] = []


def approve(url: str) -> bool:
    """Follow the hosted UI's redirects and deliver the last one to the broker's listener."""
    REDIRECTS.append(parse_qs(urlsplit(url).query)["redirect_uri"][0])
    with httpx2.Client(follow_redirects=False, trust_env=False, timeout=10) as http:
        for _ in range(5):
            answer = http.get(url)
            location = answer.headers.get("location")
            assert location, f"no redirect from the authorization server: {answer.status_code}"
            url = str(answer.url.join(location))
            if url.startswith("http://127.0.0.1:") and "/callback?" in url:
                http.get(url)
                return True
    raise AssertionError("the authorization server never redirected back")


@pytest.mark.integration
def test_cognito_profile_signs_in_on_a_fixed_port_and_refreshes(
    issuer: str, send: LimitedSender
) -> None:
    server = drive(find_auth_server(issuer, profile_for(issuer, "cognito")), send)
    assert server is not None and server.registration_endpoint is None
    found = Discovered(RESOURCE, RESOURCE, server)
    client = ClientCredentials("demo-broker", issuer)
    sign_in = SignIn(send, ClientRegistry([client]), approve)
    tokens = sign_in.sign_in(found, "openid", COGNITO)
    assert tokens.key.client_id == "demo-broker" and tokens.refresh_token
    refreshed = refresh_tokens(send, found, tokens, client, COGNITO.send_resource)
    assert refreshed.access_token != tokens.access_token
    assert refreshed.refresh_token == tokens.refresh_token  # no rotation by default
    assert urlsplit(REDIRECTS[-1]).port in FIXED_CALLBACK_PORTS


@pytest.mark.integration
def test_without_the_cognito_profile_the_sign_in_does_not_start(
    issuer: str, send: LimitedSender, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = drive(find_auth_server(issuer, profile_for(issuer)), send)
    assert server is not None and server.code_challenge_methods_supported is None
    found = Discovered(RESOURCE, RESOURCE, server)
    opened: list[str] = []

    def no_listener(*args: object) -> object:
        raise AssertionError("a callback port was bound for a sign-in that cannot start")

    monkeypatch.setattr(login.CallbackListener, "bind", no_listener)
    sign_in = SignIn(
        send, ClientRegistry([ClientCredentials("demo-broker", issuer)]), opened.append
    )
    with pytest.raises(PkceNotSupported, match="does not advertise PKCE"):
        sign_in.sign_in(found, "openid", SignInOptions(timeout=60))
    assert opened == []


@pytest.mark.integration
def test_without_the_cognito_profile_the_machine_client_gets_its_token(
    issuer: str, send: LimitedSender
) -> None:
    server = drive(find_auth_server(issuer, profile_for(issuer)), send)
    assert server is not None and server.profile.name == "generic"
    found = Discovered(RESOURCE, RESOURCE, server)
    client = ClientCredentials("demo-m2m", issuer, client_secret=M2M_SECRET)
    tokens = client_credentials_tokens(send, found, client, None)
    assert tokens.access_token and tokens.key.client_id == "demo-m2m"
    assert tokens.refresh_token is None
