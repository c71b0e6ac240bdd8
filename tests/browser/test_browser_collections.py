"""A trainer's journey in the real portal: search, collect with one click, reorder, annotate, download the .docx.

Runs against `kb serve` on a copy of the corpus knowledge base (the `portal`
fixture of tests/test_browser.py, started once for this module).
"""

from __future__ import annotations

import io
import re

import docx
import pytest

from kb.documents import short_source
from tests.browser.test_browser import CHROMIUM, browser, page, portal, shot, signed_in_context  # noqa: F401 - fixtures used by name

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is not installed")


def api_get(page, url: str) -> dict:  # noqa: F811
    """The JSON API as this page's signed-in user (the same cookies)."""
    return page.request.get(url).json()


def test_a_trainer_collects_orders_annotates_and_downloads_a_handout(page, portal, tmp_path):  # noqa: F811
    query = "breaking down silos between business units"
    page.goto(f"{portal}/search?q={query.replace(' ', '+')}&ui=en")
    page.wait_for_selector(".results-list .result")
    for n in (1, 2, 3):
        form = page.locator(f"#collect-r{n}")
        form.locator("summary").click()  # one small menu per result
        if n == 1:
            assert form.locator("select option:checked").inner_text().startswith("New collection")
        form.locator("button").click()
        page.wait_for_selector(f"#collect-r{n} .in-collection")
    assert page.locator(".in-collection").count() == 3

    page.click("header nav >> text=Collections")
    page.wait_for_url("**/collections")
    page.click(f".collection-list a >> text={query}")
    page.wait_for_selector(".citem")
    collection_id = int(page.url.rstrip("/").rsplit("/", 1)[1])
    first, second, third = page.locator(".citem").evaluate_all("els => els.map(e => e.id)")

    for _ in range(2):  # the third passage to the top, one place at a time
        page.locator(f"#{third} button", has_text="Move up").click()
        page.wait_for_load_state()
    assert page.locator(".citem").evaluate_all("els => els.map(e => e.id)") == [third, first, second]
    assert page.locator(".citem").first.locator("button", has_text="Move up").is_disabled()

    note = "Ask the group: when did a customer last have to repeat a story to another unit?"
    page.fill(f"#{first} textarea", note)
    page.locator(f"#{first} button", has_text="Save notes").click()
    page.wait_for_load_state()
    assert page.locator(f"#{first} textarea").input_value() == note
    assert page.locator(".citem > blockquote.passage-text[lang]").count() == 3
    shot(page, "collection")

    with page.expect_download() as download_info:
        page.click(".exports >> text=Word (.docx)")
    download = download_info.value
    assert download.suggested_filename == f"{query}.docx"  # from filename*, the collection's own name
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)

    items = api_get(page, f"{portal}/api/v1/collections/{collection_id}")["items"]
    assert [f"item-{i['id']}" for i in items] == [third, first, second]
    document = docx.Document(io.BytesIO(saved.read_bytes()))
    # Paragraphs and table cells in body order: lists are Word lists (no "- " marks), tables are tables.
    body = document.element.body
    text = "\n".join("".join(node.itertext()) for node in body.iterchildren() if node.tag.endswith(("}p", "}tbl")))
    lines = [_plain(line) for item in items for line in item["text"].splitlines() if _plain(line)]
    positions = [text.index(line) for line in lines]
    assert positions == sorted(positions), "the passages are in the new order"
    for item in items:
        # the API names the source as readers see it (folder and file), and so does the handout
        assert item["title"] in text and item["source"] == short_source(item["source"]) and item["source"] in text
    assert not re.search(r"(^|\s)/(tmp|root|work|home)/", text), "no server path in the handout"
    assert note in text and text.index("Sources") > positions[-1]


def test_a_collection_fits_a_phone_screen(browser, portal):  # noqa: F811
    context = signed_in_context(browser, portal, "trainer", viewport={"width": 390, "height": 844}, locale="th-TH",
                                is_mobile=True)
    phone = context.new_page()
    phone.goto(f"{portal}/search?q=คุณภาพข้อมูลลูกค้า")
    phone.wait_for_selector("#collect-r1")
    phone.locator("#collect-r1 summary").click()
    phone.locator("#collect-r1 button").click()
    phone.wait_for_selector("#collect-r1 .in-collection")
    phone.goto(f"{portal}/collections")
    phone.locator(".collection-list a").first.click()
    phone.wait_for_selector(".citem")
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the collection page is {width}px wide on a 390px screen"
    labelled = phone.evaluate("Array.from(document.querySelectorAll('input:not([type=hidden]), select, textarea'))"
                              ".every(e => e.labels && e.labels.length > 0)")
    assert labelled, "every field has a label"
    context.close()


def _plain(line: str) -> str:
    """A stored passage line as a Word document shows it: without list marks; a table row as its first cell."""
    line = re.sub(r"^\s*(?:[-*]|\d+[.)])\s+", "", line.strip())
    if line.startswith("|"):
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        return "" if all(set(cell) <= set("-: ") for cell in cells) else cells[0]
    return line
