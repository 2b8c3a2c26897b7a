"""The BROWSER of the end-to-end tests: "opens" the sign-in URL without a human.

``E2E_BROWSER=chromium`` loads it in headless Debian Chromium (playwright) and waits until the
page lands on the broker's loopback callback; otherwise httpx2 follows the redirects there (the
local authorization server runs with ``--auto-login``, so no form is shown). Exits 0 once the
callback page was served, non-zero otherwise (``webbrowser`` then reports no browser).
"""

from __future__ import annotations

import os
import re
import sys

CALLBACK = re.compile(r"^http://(127\.0\.0\.1|localhost):\d+/callback\?")


def with_httpx(url: str) -> int:
    import httpx2

    response = httpx2.get(url, follow_redirects=True, timeout=60)
    landed = str(response.url)
    return 0 if CALLBACK.match(landed) and response.status_code == 200 else 1


def with_chromium(url: str) -> int:
    from playwright.sync_api import sync_playwright

    from tests.support.browser import CHROMIUM, CHROMIUM_ARGS

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(url)
            page.wait_for_url(CALLBACK, timeout=60_000)
            page.wait_for_load_state()
            return 0
        finally:
            browser.close()


def main() -> int:
    url = sys.argv[1]
    if os.environ.get("E2E_BROWSER") == "chromium":
        return with_chromium(url)
    return with_httpx(url)


if __name__ == "__main__":
    sys.exit(main())
