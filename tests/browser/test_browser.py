"""The real portal (`kb serve`, gunicorn, two workers) driven in headless Debian chromium with Playwright.

Screenshots of the main pages are written to docs/screenshots/ on every run.
Skipped where chromium is not installed (`.ci/run` installs it).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from kb.services.accounts import ROLES
from tests.conftest import REPO, run_kb
from tests.webapp.test_api import make_docx

CHROMIUM = Path(os.environ.get("KB_TEST_CHROMIUM", "/usr/bin/chromium"))
SCREENSHOTS = REPO / "docs" / "screenshots"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is not installed")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def portal(corpus_data_dir, models_dir, tmp_path_factory):
    """The URL of `kb serve` on a copy of the corpus knowledge base (uploads must not touch the shared one)."""
    data_dir = tmp_path_factory.mktemp("portal") / "data"
    shutil.copytree(corpus_data_dir, data_dir, ignore=shutil.ignore_patterns("*.lock"))
    # Made on the command line, as the first admin of a real install is (the copied corpus
    # knowledge base may hold some already: other tests sign in to it with the same passwords).
    listed = run_kb("user", "list", "--json", data_dir=data_dir, models_dir=models_dir).stdout
    existing = {u["username"] for u in json.loads(listed)["users"]}
    for role in ROLES:
        if f"test-{role}" not in existing:
            run_kb("user", "add", f"test-{role}", "--role", role, "--password-stdin", data_dir=data_dir,
                   models_dir=models_dir, input=password_of(role) + "\n")
    env = {**os.environ, "KB_DATA_DIR": str(data_dir), "KB_MODELS_DIR": str(models_dir)}
    env.pop("KB_DATABASE_URL", None)
    with kb_serve(env, data_dir / "serve.log", workers=2) as url:
        yield url


@contextmanager
def kb_serve(env: dict[str, str], log_file: Path, workers: int) -> Iterator[str]:
    """`kb serve` on a free port with `env`, its URL once /readyz answers; stopped on the way out."""
    port = free_port()
    with log_file.open("w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "cli.main", "serve", "--port", str(port),
                                 "--workers", str(workers)], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 180
            while not _ready(url):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError("kb serve did not become ready:\n" + log_file.read_text()[-3000:])
                time.sleep(0.5)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


def password_of(role: str) -> str:
    return f"test-{role}-test-password"


def sign_in(page, portal: str, role: str) -> None:
    """Sign in through the real form, as a person would."""
    page.goto(f"{portal}/login")
    page.fill("#username", f"test-{role}")
    page.fill("#password", password_of(role))
    page.click("form.login button[type=submit]")
    page.wait_for_selector("header .who")


def signed_in_context(browser, portal: str, role: str = "admin", **options):
    """A browser context (its own cookies) signed in with `role`."""
    options.setdefault("locale", "en-GB")
    context = browser.new_context(**options)
    page = context.new_page()
    sign_in(page, portal, role)
    page.close()
    return context


@pytest.fixture
def page(browser, portal):
    context = signed_in_context(browser, portal, "admin", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    yield page
    context.close()


def shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def test_thai_search_shows_highlighted_thai_results(page, portal):
    page.goto(f"{portal}/?ui=th")
    shot(page, "home-th")
    page.fill("#q", "ลูกค้ารอสายนาน ควรแก้ไขอย่างไร")
    page.press("#q", "Enter")
    page.wait_for_selector(".results-list .result")
    assert "q=" in page.url
    marks = page.locator('.snippet[lang="th"] mark')
    assert marks.count() > 0
    assert any("\u0e00" <= ch <= "\u0e7f" for ch in "".join(marks.all_inner_texts()))
    assert page.locator("html").get_attribute("lang") == "th"
    shot(page, "search-th")


def test_interface_switches_to_chinese_and_remembers_it(page, portal):
    page.goto(f"{portal}/search?q=data+quality")
    page.click("nav.ui-lang >> text=简体中文")
    page.wait_for_load_state()
    assert page.locator("html").get_attribute("lang") == "zh-Hans"
    assert page.locator("header nav a", has_text="搜索").count() == 1
    page.goto(f"{portal}/ask?q=如何处理客户投诉的电话等候时间过长?")
    assert page.locator("h1").inner_text() == "提出问题"
    shot(page, "ask-zh")
    page.click("nav.ui-lang >> text=繁體中文")
    page.wait_for_load_state()
    assert page.locator("h1").inner_text() == "提出問題"


def test_uploaded_docx_is_found_by_a_phrase_inside_it(page, portal, tmp_path):
    path = tmp_path / "ข้อตกลงบริการ.docx"
    path.write_bytes(make_docx("Service agreement for partners",
                               "Partners must answer a TVPlus 4K Box outage report within thirty minutes, "
                               "and the agreement names the escalation desk as the single contact."))
    page.goto(f"{portal}/add?ui=en")
    page.set_input_files("#files", str(path))
    page.click("#add-form button[type=submit]")
    outcome = page.wait_for_selector(".outcome.added", timeout=120_000)
    assert path.name in outcome.inner_text()
    shot(page, "add")
    page.goto(f"{portal}/search?q=escalation+desk+as+the+single+contact")
    first = page.locator(".results-list .result h3 a").first
    assert first.inner_text() == path.stem  # a .docx without a title property is named after its file
    first.click()
    page.wait_for_url("**/documents/**")
    with page.expect_download() as download:
        page.click("a.download")
    assert download.value.suggested_filename == path.name
    assert Path(download.value.path()).read_bytes() == path.read_bytes()  # the author's file, byte for byte


def test_a_result_leads_to_its_document_with_the_passage_marked(page, portal):
    page.goto(f"{portal}/search?q=breaking+down+silos+between+business+units&ui=en")
    first = page.locator(".results-list .result h3 a").first
    title = first.inner_text()
    first.click()
    page.wait_for_url("**/documents/**")
    assert page.locator("h1").inner_text() == title
    passage = page.locator("#passage")
    assert passage.is_visible()
    box, viewport = passage.bounding_box(), page.viewport_size
    assert box and 0 <= box["y"] < viewport["height"], "the matched passage is scrolled into view"
    assert page.locator(".related li").count() > 0
    shot(page, "document")


def test_search_page_fits_a_phone_screen(browser, portal):
    context = signed_in_context(browser, portal, viewport={"width": 390, "height": 844}, locale="zh-TW", is_mobile=True)
    page = context.new_page()
    page.goto(f"{portal}/search?q=客戶資料品質")
    page.wait_for_selector(".results-list .result")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page is {width}px wide on a 390px screen"
    assert page.locator("html").get_attribute("lang") == "zh-Hant"
    shot(page, "search-phone-zh-hant")
    context.close()


def test_keyboard_users_can_skip_to_the_content_and_every_field_has_a_label(page, portal):
    page.goto(f"{portal}/search?q=CRM&ui=en")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    labels = page.evaluate("Array.from(document.querySelectorAll('input:not([type=hidden]), select, textarea')).every("
                           "e => e.labels && e.labels.length > 0)")
    assert labels


def test_an_employee_browses_a_topic_in_every_language(browser, portal):
    context = signed_in_context(browser, portal, "employee", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(f"{portal}/?ui=zh_Hans")
    page.click("header nav >> text=主题")
    page.wait_for_url("**/topics")
    page.click(".topic-list a.topic-name[href$='/topics/data-quality']")
    page.wait_for_url("**/topics/data-quality")
    sections = page.locator("section.topic-lang h2")
    assert sections.first.get_attribute("lang") == "zh", "the reader's own language comes first"
    assert sorted(sections.evaluate_all("els => els.map(e => e.lang)")) == ["en", "th", "zh"]
    shot(page, "topic-zh")
    page.locator("section.topic-lang").nth(1).locator(".doclist a").first.click()
    page.wait_for_url("**/documents/**")
    assert page.locator(".doc-meta a.term[href$='/topics/data-quality']").count() == 1
    assert page.locator(".related li").count() > 0, "the same guidance in the other languages"
    context.close()


XSS = '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 1">'


def test_script_stored_in_a_document_or_typed_as_a_query_never_runs(page, portal):
    page.goto(f"{portal}/add?ui=en")
    page.fill("#title", f"Escalation rules {XSS}")
    page.fill("#text", f"Quarantine escalation rules for xsscanary outages. {XSS} Call the duty desk.")
    page.click("#add-form button[type=submit]")
    page.wait_for_selector(".outcome.added", timeout=120_000)
    page.goto(f"{portal}/search?q=xsscanary+quarantine+{XSS}")
    first = page.locator(".results-list .result h3 a").first
    assert "<script>" in first.inner_text(), "the title is shown as text"
    assert page.evaluate("window.__xss") is None
    first.click()
    page.wait_for_url("**/documents/**")
    assert "<img src=x" in page.locator(".doc-text").inner_text()
    assert page.evaluate("window.__xss") is None
    for url in (f"/ask?q={XSS}+xsscanary+escalation", f"/topics/{XSS}", f"/cases/similar?q={XSS}"):
        page.goto(portal + url)
        assert page.evaluate("window.__xss") is None, url
