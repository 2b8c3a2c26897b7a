"""The control page is usable without a mouse and at 200 % zoom, in a real Chromium: every
page fits a 1280-pixel screen zoomed to 200 % (640 CSS pixels) without sideways scrolling, the
skip link comes first, and Tab reaches every link, field and button."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.broker.ui.conftest import Page
from tests.broker.ui.test_page_attacks_browser import LANDED, chromium

pytestmark = pytest.mark.integration

PAGES = ("servers", "servers/add", "clients", "connect", "settings")


def test_every_page_fits_at_200_percent_and_tab_reaches_every_control(
    page: Page, artifacts_dir: Path
) -> None:
    with chromium() as browser:
        context = browser.new_context(viewport={"width": 640, "height": 720}, device_scale_factor=2)
        tab = context.new_page()
        tab.goto(page.launch_link())
        tab.wait_for_url(LANDED)
        base = tab.url.removesuffix("/servers")
        tab.get_by_role("link", name="Clients").click()
        tab.get_by_role("textbox", name=re.compile("^Name")).fill("zoomed")
        tab.get_by_role("button", name="Create client").click()  # the secret box, too
        for path in PAGES:
            if path != "clients":
                tab.goto(f"{base}/{path}")
            overflow = tab.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, f"{path} scrolls sideways by {overflow}px at 200 %"
            if path == "servers":
                tab.screenshot(
                    path=str(artifacts_dir / "control-page-zoom-200.png"), full_page=True
                )

            controls = tab.evaluate(
                """[...document.querySelectorAll(
                    'a[href], button:not([disabled]), input:not([type=hidden]), select, summary'
                )].length"""
            )
            tab.keyboard.press("Tab")
            assert tab.evaluate("document.activeElement.className") == "skip", path
            reached = 1
            for _ in range(controls * 2):
                tab.keyboard.press("Tab")
                if tab.evaluate("document.activeElement === document.body"):
                    break
                reached += 1
            assert reached >= controls, f"{path}: Tab reached {reached} of {controls} controls"
