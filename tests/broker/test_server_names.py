"""Names people recognise (issue 12 item 6): a server is named by its PRM ``resource_name``
(RFC 9728 §2) when it publishes one — sanitised, it comes from the network — else by host and
path; the sign-in's success page names the server and the user, the failure page says what to
do next."""

from __future__ import annotations

import http.client
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx2
import pytest

from broker.config import Config, ServerConfig, dumps_config, load_config, server_label
from broker.desktop.menu import View, server_entry
from broker.errors import AuthorizationError
from broker.oauth.discovery import Discovered
from broker.oauth.prm import build_prm_request, handle_prm_response
from broker.signin.callback import TRY_AGAIN, CallbackListener
from broker.signin.login import ClientRegistry, SignIn, failure_page_text, success_page_text
from broker.tokens.status import ServerStatus
from broker.tokens.tokenset import TokenKey, TokenSet
from tests.broker.signin.test_login import FOUND, RESOURCE, FakeAS

URL = "http://127.0.0.1:48709/mcp"
HOSTILE = "Evil\x1b]52;c;aGk=\x07 \u202eserver\x1b[2J"


def prm(name: Any) -> Any:
    body = {"resource": URL, "authorization_servers": ["http://127.0.0.1:9000/pool"]}
    if name is not None:
        body["resource_name"] = name
    response = httpx2.Response(200, json=body, request=build_prm_request(URL))
    return handle_prm_response(response, URL)


def test_prm_resource_name_is_kept_for_display() -> None:
    assert prm("Team wiki").resource_name == "Team wiki"


@pytest.mark.parametrize("name", [None, "", "   ", "\x1b\x07"])
def test_no_or_blank_resource_name_is_none(name: Any) -> None:
    assert prm(name).resource_name is None


def test_resource_name_from_the_network_is_sanitised_and_capped() -> None:
    shown = prm(HOSTILE + "x" * 500).resource_name

    assert "\x1b" not in shown and "\x07" not in shown and "\u202e" not in shown
    assert shown.startswith("Evil ]52;c;aGk=")
    assert len(shown) <= 80


def test_label_is_the_name_else_host_and_path() -> None:
    assert server_label(URL, "Team wiki") == "Team wiki"
    assert server_label(URL, None) == "127.0.0.1:48709/mcp"
    assert server_label(URL, "  ") == "127.0.0.1:48709/mcp"
    assert "\x1b" not in server_label(URL, HOSTILE)


def test_the_name_is_kept_in_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    server = ServerConfig(URL, client_id="c", resource_name='Wiki "main" \\ 1')
    path.write_text(dumps_config(Config(path, {}, (server,))))

    loaded = load_config(path).get_server(URL)

    assert loaded is not None and loaded.resource_name == 'Wiki "main" \\ 1'
    assert loaded.display_name == 'Wiki "main" \\ 1'


def test_the_tray_names_the_server_by_its_resource_name() -> None:
    named = ServerStatus(URL, "valid", "iss", "c", name="Team wiki", expires_at=None)
    unnamed = replace(named, name=None)

    assert server_entry(named, View(servers=(named,))).label.startswith("Team wiki: ")
    assert server_entry(unnamed, View(servers=(unnamed,))).label.startswith("127.0.0.1:48709/mcp: ")
    hostile = replace(named, name=HOSTILE)
    assert "\x1b" not in server_entry(hostile, View(servers=(hostile,))).label


def tokens(user: str | None) -> TokenSet:
    key = TokenKey("https://auth.example.com", "c", URL)
    return TokenSet(key, "CANARY-ACCESS", 1e12, user=user)


def test_success_page_names_the_server_and_the_user_never_a_token() -> None:
    found = Discovered(URL, URL, FOUND.auth_server, prm("Team wiki"))

    text = success_page_text(found, tokens("alice"))

    assert text.startswith("Signed in to Team wiki as alice.")
    assert "CANARY" not in text


def test_success_page_without_a_name_or_user_uses_host_and_path() -> None:
    found = Discovered(URL, URL, FOUND.auth_server)

    assert success_page_text(found, tokens(None)).startswith("Signed in to 127.0.0.1:48709/mcp.")


def test_failure_page_says_what_to_do_next() -> None:
    text = failure_page_text(AuthorizationError("the token endpoint refused the code"))

    assert "refused the code" in text and TRY_AGAIN in text
    assert "mcp-broker login" in TRY_AGAIN
    assert "could not be completed" in failure_page_text(RuntimeError("internal CANARY"))
    assert "CANARY" not in failure_page_text(RuntimeError("internal CANARY"))


def get(url: str) -> tuple[int, str]:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        connection.request("GET", f"{parts.path}?{parts.query}")
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


@pytest.mark.integration  # a real loopback callback listener
def test_the_callback_page_waits_for_the_outcome_and_escapes_it() -> None:
    listener: CallbackListener[str] = CallbackListener.bind()
    try:
        listener.expect(lambda p: p.get("state") == "s", lambda p: p["code"])
        listener.wait_for_outcome()
        answers: list[tuple[int, str]] = []
        browser = threading.Thread(
            target=lambda: answers.append(get(f"{listener.redirect_uri}?code=x&state=s"))
        )
        browser.start()
        assert listener.wait(10) == "x"
        assert not answers  # the page waits for the outcome
        listener.show(200, "Signed in", "Signed in to <b>Wiki</b> as alice.")
        browser.join(10)
    finally:
        listener.close()

    ((status, page),) = answers
    assert status == 200
    assert "Signed in to &lt;b&gt;Wiki&lt;/b&gt; as alice." in page


@pytest.mark.integration  # a real loopback callback listener
def test_a_sign_in_shows_its_outcome_on_the_page() -> None:
    """The whole SignIn: the browser (a thread, like a real one) gets the page that names the
    server, after the code was redeemed."""
    fake = FakeAS()
    pages: list[tuple[int, str]] = []

    def browser_open(url: str) -> bool:
        def deliver() -> None:
            from urllib.parse import parse_qs, urlencode

            params = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
            fake.challenge = params["code_challenge"]
            answer = {"code": "CANARY-CODE-7f3a", "state": params["state"], "iss": fake.iss}
            pages.append(get(f"{params['redirect_uri']}?{urlencode(answer)}"))

        threading.Thread(target=deliver).start()
        return True

    sign_in = SignIn(fake.send, ClientRegistry(()), opener=browser_open)
    found = Discovered(RESOURCE, RESOURCE, FOUND.auth_server, prm_for_resource("Files"))

    sign_in.sign_in(found, "files:read")
    for _ in range(100):
        if pages:
            break
        threading.Event().wait(0.05)

    ((status, page),) = pages
    assert status == 200 and "Signed in to Files." in page
    assert "CANARY" not in page


def prm_for_resource(name: str) -> Any:
    body = {"resource": RESOURCE, "authorization_servers": ["https://auth.example.com"]}
    body["resource_name"] = name
    response = httpx2.Response(200, json=body, request=build_prm_request(RESOURCE))
    return handle_prm_response(response, RESOURCE)
