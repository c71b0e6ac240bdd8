"""An agent's journey through the case pages in headless chromium: a Thai complaint, an English resolution, "this helped".

Runs on the real `kb serve` (see tests/test_browser.py), with and without
JavaScript; screenshots go to docs/screenshots/.
"""

# ruff: noqa: F811 - the fixtures imported from tests.browser.test_browser are parameters here

from __future__ import annotations

import pytest

from tests.browser.test_browser import CHROMIUM, browser, page, portal, shot, signed_in_context  # noqa: F401 (fixtures)
from tests.services.test_cases import HEADER, ROWS, THAI_ROUTER, notes_csv

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is not installed")

ALL_LABELLED = ("Array.from(document.querySelectorAll('input:not([type=hidden]), select, textarea'))"
                ".every(e => e.labels && e.labels.length > 0)")


def find_similar(page, portal: str):
    page.goto(f"{portal}/cases/similar?ui=en")
    assert page.evaluate(ALL_LABELLED)
    page.fill("#q", THAI_ROUTER)
    page.click(".similar-form button[type=submit]")
    page.wait_for_selector(".results-list .result.case")
    english = page.locator("li.result.case", has=page.locator('.resolution-text[lang="en"]')).first
    assert english.is_visible(), "an English resolution among the results of a Thai complaint"
    assert english.locator("h3 a").get_attribute("lang") == "en"
    return english


def test_an_agent_finds_an_english_resolution_for_a_thai_complaint_and_says_it_helped(page, portal):
    from playwright.sync_api import expect

    english = find_similar(page, portal)
    assert page.locator("li.result.case .meta .status-resolved").count() > 0
    count = english.locator(".helped-count .n")
    before = int(count.inner_text())
    button = english.locator(".helped-button")
    expect(button).to_have_attribute("aria-pressed", "false")
    button.click()
    expect(button).to_have_attribute("aria-pressed", "true")
    expect(count).to_have_text(str(before + 1))
    shot(page, "similar-cases")
    case_url = english.locator("h3 a").get_attribute("href")
    page.goto(f"{portal}{case_url}?ui=en")
    assert page.locator(".helped-count .n").inner_text() == str(before + 1)
    expect(page.locator(".helped-button")).to_have_attribute("aria-pressed", "true")
    page.locator(".helped-button").click()  # a second press takes it back
    expect(page.locator(".helped-count .n")).to_have_text(str(before))


def test_this_helped_works_without_javascript(browser, portal):
    context = signed_in_context(browser, portal, "agent", java_script_enabled=False)
    page = context.new_page()
    english = find_similar(page, portal)
    doc_id = english.get_attribute("data-doc-id")
    before = int(english.locator(".helped-count .n").inner_text())
    english.locator(".helped-button").click()
    page.wait_for_load_state()
    again = page.locator(f"#case-{doc_id}")
    assert page.url.split("#")[0].endswith("/cases/similar"), "back on the same results"
    assert page.locator("#q").input_value() == THAI_ROUTER
    assert again.locator(".helped-count .n").inner_text() == str(before + 1)
    assert again.locator(".helped-button").get_attribute("aria-pressed") == "true"
    context.close()


def test_similar_cases_fit_a_phone_screen(browser, portal):
    context = signed_in_context(browser, portal, "agent", viewport={"width": 390, "height": 844}, locale="th-TH",
                                is_mobile=True)
    page = context.new_page()
    page.goto(f"{portal}/cases/similar")
    page.fill("#q", THAI_ROUTER)
    page.click(".similar-form button[type=submit]")
    page.wait_for_selector(".results-list .result.case")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page is {width}px wide on a 390px screen"
    assert page.locator("html").get_attribute("lang") == "th"
    shot(page, "similar-cases-phone-th")
    page.goto(f"{portal}/cases")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert page.evaluate(ALL_LABELLED)
    context.close()


def test_an_import_with_a_bad_row_shows_the_row_and_field_before_anything_is_written(page, portal, tmp_path):
    path = tmp_path / "crm-export.csv"
    path.write_bytes(notes_csv([*ROWS, "T-4,31/02/2024,,,,,,The box is dead,,open,"], HEADER))
    page.goto(f"{portal}/cases/import?ui=en")
    page.set_input_files("#file", str(path))
    page.click(".import-upload button[type=submit]")
    page.wait_for_selector("#map-complaint")
    assert page.evaluate(ALL_LABELLED)
    assert page.locator("#map-complaint").input_value() == "Description"
    page.click(".mapping button[type=submit]")
    page.wait_for_selector("table.problems")
    cells = page.locator("table.problems tbody tr").first.locator("td").all_inner_texts()
    assert cells[:3] == ["5", "Date", "Opened on"] and "31/02/2024" in cells[3]
    shot(page, "import-notes-report")
    total = page.request.get(f"{portal}/api/v1/cases?limit=1").json()["total"]
    assert total == 173, "nothing was imported: the corpus's 173 notes only"
