"""Headless Debian Chromium driven by playwright (never ``playwright install``)."""

from __future__ import annotations

import shutil
import stat
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.support.realparts import require

TESTS = Path(__file__).resolve().parents[1]
AUTO_LOGIN_DRIVER = TESTS / "e2e" / "browser_driver.py"  # follows the auto-login redirects
CHROMIUM_DRIVER = TESTS / "support" / "chromium_browser_driver.py"  # a real Chromium signs in

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextmanager
def chromium_page() -> Iterator[Any]:
    """Yield a fresh playwright page in headless Debian Chromium."""
    require(shutil.which(CHROMIUM) is not None, "Chromium", "apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context()
            yield context.new_page()
        finally:
            browser.close()


def browser_command(tmp_path: Path, driver: Path = AUTO_LOGIN_DRIVER) -> str:
    """``BROWSER`` must name one executable (webbrowser does not split it): a wrapper script
    that runs ``driver`` with this interpreter."""
    wrapper = tmp_path / f"browser-{driver.stem}"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{driver}" "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return str(wrapper)
