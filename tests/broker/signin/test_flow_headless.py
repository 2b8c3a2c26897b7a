"""``login --no-browser`` and ``--device`` through the one flow: the link is shown, not opened,
and the pasted address completes the sign-in; the device sign-in polls the token endpoint."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx2
import pytest

from broker.signin.login import Headless
from broker.store import MemoryTokenStore
from tests.broker.signin.test_flow import ISSUER, ONE, World, make_flow


@pytest.mark.integration  # the real loopback callback listener
def test_no_browser_shows_the_link_and_takes_the_pasted_address(tmp_path: Path) -> None:
    world = World()
    store = MemoryTokenStore()

    def no_browser(url: str) -> bool:
        raise AssertionError("--no-browser never opens a browser")

    flow = make_flow(world, tmp_path, store, no_browser)
    read_end, write_end = os.pipe()
    told: list[str] = []
    link = threading.Event()

    def tell(line: str) -> None:
        told.append(line)
        if line.startswith("  http"):
            link.set()

    result: list[object] = []
    paste_from = os.fdopen(read_end, "r")
    thread = threading.Thread(
        target=lambda: result.append(
            flow.sign_in(ONE, headless=Headless("paste", tell, paste_from))
        )
    )
    thread.start()
    assert link.wait(30)
    url = next(line.strip() for line in told if line.startswith("  http"))
    params = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    with world.lock:  # the authorization server issues a code for this request
        world._codes["pasted-code"] = (params["code_challenge"], params.get("scope", ""))
    answer = {"code": "pasted-code", "state": params["state"], "iss": ISSUER}
    with os.fdopen(write_end, "w") as keyboard:
        keyboard.write(f"{params['redirect_uri']}?{urlencode(answer)}\n")
    thread.join(30)
    paste_from.close()

    (tokens,) = result
    assert getattr(tokens, "access_token", None) == "access-1"
    assert world.token_requests == 1
    assert "pasted-code" not in "\n".join(told)


class DeviceWorld(World):
    def __init__(self) -> None:
        super().__init__()
        self.polls = 0

    def send(self, request: httpx2.Request) -> httpx2.Response:
        url = str(request.url)
        if url == f"{ISSUER}/.well-known/oauth-authorization-server":
            answer = super().send(request)
            body = {**answer.json(), "device_authorization_endpoint": f"{ISSUER}/device"}
            return httpx2.Response(200, json=body, request=request)
        if url == f"{ISSUER}/device":
            body = {
                "device_code": "dc",
                "user_code": "BCDF-GHJK",
                "verification_uri": f"{ISSUER}/verify",
                "expires_in": 60,
                "interval": 1,
            }
            return httpx2.Response(200, json=body, request=request)
        if url == f"{ISSUER}/token":
            self.polls += 1
            if self.polls == 1:
                return httpx2.Response(
                    400, json={"error": "authorization_pending"}, request=request
                )
            body = {"access_token": "device-token", "token_type": "Bearer", "expires_in": 60}
            return httpx2.Response(200, json=body, request=request)
        return super().send(request)


def test_device_sign_in_through_the_flow(tmp_path: Path) -> None:
    world = DeviceWorld()
    store = MemoryTokenStore()
    flow = make_flow(world, tmp_path, store, world.open)
    # A pre-registered client allowed the device flow (DCR is not used for it).
    from dataclasses import replace

    told: list[str] = []
    server = flow._server(ONE)
    flow._server = lambda url: replace(server, client_id="device-client")  # type: ignore[method-assign]
    tokens = flow.sign_in(ONE, headless=Headless("auto", told.append))

    assert tokens.access_token == "device-token"
    assert world.polls == 2 and world.opened == []
    assert any("BCDF-GHJK" in line for line in told)


class LinkWorld(DeviceWorld):
    """Offers the device flow; its token endpoint redeems codes (PKCE checked) as World's."""

    def __init__(self) -> None:
        super().__init__()
        self.device_requests = 0

    def send(self, request: httpx2.Request) -> httpx2.Response:
        if str(request.url) == f"{ISSUER}/device":
            self.device_requests += 1
        if str(request.url) == f"{ISSUER}/token":
            return World.send(self, request)
        return super().send(request)


@pytest.mark.integration  # the real loopback callback listener
def test_link_hands_out_the_link_once_and_the_loopback_callback_completes_it(
    tmp_path: Path,
) -> None:
    """The tray's "Copy sign-in link": the link alone goes to ``tell`` (no browser opened, no
    paste read, no device flow even where the authorization server offers one); a browser on
    this machine then delivers the callback to the loopback listener."""
    world = LinkWorld()
    store = MemoryTokenStore()

    def no_browser(url: str) -> bool:
        raise AssertionError("the link is handed out, never opened by the broker")

    flow = make_flow(world, tmp_path, store, no_browser)
    links: list[str] = []
    tokens = flow.sign_in(
        ONE, headless=Headless("link", lambda link: (links.append(link), world.open(link)))
    )

    (link,) = links
    assert link.startswith(f"{ISSUER}/authorize?") and "code_challenge=" in link
    assert world.opened == [ONE] and world.device_requests == 0
    assert tokens.access_token.startswith("access-")
