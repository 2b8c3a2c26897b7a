"""Attacks on the control page from web pages, in a real browser (headless Debian Chromium):
a cross-site form post and a frame from a page on another port of 127.0.0.1 (same-site: the
browser sends the session cookie along), a DNS-rebinding hostname, a replayed launch link.
Each is refused, and the page's data never reaches the attacker's page."""

from __future__ import annotations

import importlib.util
import re
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest

from broker.api.clients import ClientsFile
from tests.broker.ui.conftest import SERVER, USER, Page
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS
from tests.support.realparts import require

pytestmark = pytest.mark.integration

REBOUND = "rebind.test"
LANDED = re.compile(r"/ui/s/[A-Za-z0-9_-]+/servers$")


@contextmanager
def attacker_site(pages: dict[str, str]) -> Iterator[str]:
    """A web server on another port of 127.0.0.1 serving ``pages`` (path → HTML)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = pages.get(self.path, "").encode()
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@contextmanager
def chromium() -> Iterator[Any]:
    require(shutil.which(CHROMIUM) is not None, "Chromium", "apt-get install chromium")
    require(
        importlib.util.find_spec("playwright") is not None, "playwright", "pip install playwright"
    )
    from playwright.sync_api import sync_playwright

    args = [*CHROMIUM_ARGS, f"--host-resolver-rules=MAP {REBOUND} 127.0.0.1"]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
        try:
            yield browser
        finally:
            browser.close()


def signed_into_page(browser: Any, page: Page) -> Any:
    tab = browser.new_context().new_page()
    tab.goto(page.launch_link())
    tab.wait_for_url(LANDED)
    assert USER in tab.content()
    return tab


def clients(page: Page) -> set[str]:
    return set(ClientsFile(page.paths.state_dir, page.paths.lock_dir).load())


def test_a_cross_site_form_and_a_frame_from_another_port_are_refused(page: Page) -> None:
    with chromium() as browser:
        tab = signed_into_page(browser, page)
        base = tab.url.removesuffix("/servers")
        tab.goto(f"{base}/clients")
        csrf = tab.get_attribute('input[name="csrf"]', "value")  # even knowing it
        evil = {
            "/form": (
                f'<form method="post" action="{base}/clients/add">'
                f'<input name="csrf" value="{csrf}"><input name="name" value="evil">'
                '<button id="go">win a prize</button></form>'
            ),
            "/frame": f'<iframe id="f" src="{base}/servers"></iframe>',
        }
        with attacker_site(evil) as site:
            tab.goto(f"{site}/form")
            with tab.expect_navigation():
                tab.click("#go")
            refused = tab.content()
            tab.goto(f"{site}/frame")
            tab.wait_for_load_state("load")
            framed = [frame.content() for frame in tab.frames if frame != tab.main_frame]

        assert "Refused" in refused and SERVER not in refused
        assert framed and all(SERVER not in html and USER not in html for html in framed)
        assert clients(page) == set()
        tab.goto(f"{base}/servers")  # the user's own session still works
        assert USER in tab.content()


def test_a_dns_rebinding_hostname_is_refused(page: Page) -> None:
    with chromium() as browser:
        path = urlsplit(signed_into_page(browser, page).url).path
        tab = browser.new_context().new_page()
        answer = tab.goto(f"http://{REBOUND}:{page.port}{path}")
        link = tab.goto(page.launch_link().replace("127.0.0.1", REBOUND))

        assert answer.status == 403 and link.status == 403
        assert SERVER not in tab.content() and USER not in tab.content()
        assert not [c for c in tab.context.cookies() if c["name"] == page.cookie_name]


def test_a_replayed_launch_link_opens_nothing_in_another_browser(page: Page) -> None:
    with chromium() as browser:
        link = page.launch_link()
        first = browser.new_context().new_page()
        first.goto(link)
        first.wait_for_url(LANDED)

        second = browser.new_context().new_page()
        answer = second.goto(link)

        assert answer.status == 403 and "already used" in second.content()
        assert SERVER not in second.content()
        assert not [c for c in second.context.cookies() if c["name"] == page.cookie_name]
        second.goto(first.url)
        assert SERVER not in second.content() and "not open" in second.content()
