"""Each role's start page and a results page, in the four interface languages, at desktop and phone widths,
in the real browser: what each role sees first, that Thai and Chinese render, and that nothing overflows a phone.

Screenshots go to docs/screenshots/ (role-<role>-<ui>[-phone].png).
"""

# ruff: noqa: F811 - the fixtures imported from tests.browser.test_browser are parameters here

from __future__ import annotations

import pytest

from tests.browser.test_browser import (  # noqa: F401 (fixtures)
    CHROMIUM,
    SCREENSHOTS,
    browser,
    portal,
    signed_in_context,
)

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is not installed")

# (role, interface language, what its start page offers first)
ROLES = [
    ("agent", "th", "/cases/similar"),
    ("trainer", "zh_Hans", "/collections"),
    ("employee", "zh_Hant", None),
    ("partner", "en", None),
    ("admin", "th", "/collections"),
]


@pytest.mark.parametrize(("role", "ui", "first_task"), ROLES)
def test_each_role_starts_where_it_works_in_its_language_on_desktop_and_phone(browser, portal, role, ui, first_task):
    for width, height, suffix in ((1280, 900, ""), (390, 844, "-phone")):
        context = signed_in_context(browser, portal, role, viewport={"width": width, "height": height})
        page = context.new_page()
        try:
            page.goto(f"{portal}/?ui={ui}")
            task = page.locator(".start-task a.button")
            if first_task:
                assert first_task in task.first.get_attribute("href")
            else:
                assert task.count() == 0
            page.goto(f"{portal}/search?q=ลูกค้ารอสายนาน")
            page.wait_for_selector(".results-list .result, .results .empty")
            tabs = page.locator(".kind-tabs a")
            assert tabs.count() == (0 if role == "partner" else 2)
            if role == "partner":
                assert page.locator("form.collect").count() == 0
            overflow = page.evaluate("document.documentElement.scrollWidth")
            assert overflow <= width, f"{role} {ui}: the results page is {overflow}px wide on a {width}px screen"
            header = page.evaluate("document.querySelector('header').getBoundingClientRect().height")
            assert header <= height * 0.25, f"{role} {ui}: the header takes {header}px of {height}"
            page.goto(f"{portal}/?ui={ui}")
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / f"role-{role}-{ui}{suffix}.png"))
        finally:
            context.close()
