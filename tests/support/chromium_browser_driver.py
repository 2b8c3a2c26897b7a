"""A ``BROWSER`` for end-to-end tests: signs in through the real login form in headless Chromium.

The broker opens the sign-in URL with ``webbrowser``, which runs ``$BROWSER URL`` and waits for
it. This script loads the URL in headless Debian Chromium (playwright), expects the authorization
server's ``/login`` form, fills in the demo user (``E2E_USERNAME``, default ``demo``) with the
password from ``E2E_DEMO_PASSWORD``, submits it, and waits until the broker's loopback callback
page has loaded. With ``E2E_SCREENSHOT_DIR`` set it saves ``e2e-login-page.png`` (the filled form)
and ``e2e-success-page.png`` (the broker's page) there, and ``e2e-browser-failure.png`` when a
step fails.

Exits 0 once the callback page was shown, non-zero otherwise (``webbrowser`` then reports that
no browser could be started, and the sign-in fails).
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CALLBACK = re.compile(r"^http://(127\.0\.0\.1|localhost):\d+/callback\?")
LOGIN = re.compile(r"/login(\?|$)")
TIMEOUT_MS = 60_000

LOGIN_SHOT = "e2e-login-page.png"
SUCCESS_SHOT = "e2e-success-page.png"
FAILURE_SHOT = "e2e-browser-failure.png"


def shoot(page: Any, name: str) -> None:
    folder = os.environ.get("E2E_SCREENSHOT_DIR")
    if folder:
        page.screenshot(path=str(Path(folder) / name), full_page=True)


def sign_in(page: Any, url: str, username: str, password: str) -> None:
    """Load ``url``, complete the login form and wait for the callback page to load."""
    page.goto(url, timeout=TIMEOUT_MS)
    page.wait_for_url(LOGIN, timeout=TIMEOUT_MS)
    page.fill("#username", username)
    page.fill("#password", password)
    shoot(page, LOGIN_SHOT)
    page.click("#signin")
    page.wait_for_url(CALLBACK, timeout=TIMEOUT_MS)
    page.wait_for_load_state("load", timeout=TIMEOUT_MS)
    shoot(page, SUCCESS_SHOT)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: chromium_browser_driver.py URL", file=sys.stderr)
        return 2
    password = os.environ.get("E2E_DEMO_PASSWORD")
    if not password:
        print("E2E_DEMO_PASSWORD is not set", file=sys.stderr)
        return 2
    sys.path.insert(0, str(ROOT))
    from playwright.sync_api import sync_playwright

    from tests.support.browser import CHROMIUM, CHROMIUM_ARGS

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            try:
                sign_in(page, argv[1], os.environ.get("E2E_USERNAME", "demo"), password)
            except Exception as exc:
                print(f"sign-in in Chromium failed at {page.url}: {exc}", file=sys.stderr)
                shoot(page, FAILURE_SHOT)
                return 1
            return 0
        finally:
            browser.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
