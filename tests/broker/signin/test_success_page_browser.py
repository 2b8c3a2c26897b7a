"""The sign-in's success page in real Chromium (playwright): after a real sign-in at the local
authorization server, it names the demo server by its PRM ``resource_name`` and the user signed
in, never a token; ``status`` names the server the same way. A screenshot is kept."""

from __future__ import annotations

import queue
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.config import ServerConfig
from broker.paths import HOME_ENV, broker_paths
from broker.root import build
from broker.store.memory import MemoryTokenStore
from broker.tokens.tokenset import TokenSet
from demo_server.stack import RunningStack, StackSettings, running
from tests.support.browser import chromium_page

pytestmark = pytest.mark.integration

DEMO_NAME = "mcp-oauth-broker demo server"
JWT = re.compile(r"eyJ[\w-]+\.[\w-]+\.")


@pytest.fixture
def stack() -> Iterator[RunningStack]:
    with running(StackSettings(idp_port=0, port=0, auto_login="demo")) as started:
        yield started


def test_success_page_names_the_server_and_the_user(
    stack: RunningStack, tmp_path: Path, artifacts_dir: Path
) -> None:
    opened: queue.Queue[str] = queue.Queue()

    def opener(url: str) -> bool:  # like webbrowser.open: hands the URL over and returns
        opened.put(url)
        return True

    paths = broker_paths({HOME_ENV: str(tmp_path / "home")})
    broker = build(paths, paths.config_file, store=MemoryTokenStore(), opener=opener).broker
    url = stack.server.url
    broker.add(ServerConfig(url, client_id="demo-broker", provider="cognito"))
    signed_in: list[TokenSet] = []
    worker = threading.Thread(target=lambda: signed_in.append(broker.login(url)))
    worker.start()
    try:
        with chromium_page() as page:
            page.goto(opened.get(timeout=60))  # auto-login: straight on to the callback
            page.wait_for_selector("h1")
            heading, text = page.inner_text("h1"), page.inner_text("p")
            page.screenshot(path=str(artifacts_dir / "sign-in-success.png"))
            html = page.content()
    finally:
        worker.join(60)
        broker.close()

    assert heading == "Signed in"
    assert text.startswith(f"Signed in to {DEMO_NAME} as demo.")
    (tokens,) = signed_in
    assert tokens.access_token not in html and not JWT.search(html)
    (status,) = [s for s in broker.status() if s.url == url]
    assert status.name == DEMO_NAME and status.display_name == DEMO_NAME
