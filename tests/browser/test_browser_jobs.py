"""Uploading with a queue, in the real browser: `kb serve` and `kb worker` on Redis, the Add page's script
following the job until the worker has ingested the file, and the job page in Thai.

Skipped without chromium or without KB_TEST_REDIS_URL.
"""

# ruff: noqa: F811 - the fixtures imported from tests.browser.test_browser are parameters here

from __future__ import annotations

import os
import uuid

import pytest

from tests.browser.test_browser import (  # noqa: F401 (browser is a fixture)
    CHROMIUM,
    browser,
    kb_serve,
    password_of,
    shot,
    signed_in_context,
)
from tests.conftest import run_kb
from tests.indexer.test_jobs import Worker

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is not installed")


@pytest.fixture(scope="module")
def queued_portal(tmp_path_factory, models_dir):
    """`kb serve` and one `kb worker` on an empty knowledge base of their own, sharing a Redis queue."""
    queue_url = os.environ.get("KB_TEST_REDIS_URL")
    if not queue_url:
        pytest.skip("KB_TEST_REDIS_URL is not set; queue tests skipped")
    root = tmp_path_factory.mktemp("queued-portal")
    data_dir = root / "data"
    run_kb("user", "add", "test-employee", "--role", "employee", "--password-stdin", data_dir=data_dir,
           models_dir=models_dir, input=password_of("employee") + "\n")
    env = {**os.environ, "KB_DATA_DIR": str(data_dir), "KB_MODELS_DIR": str(models_dir), "KB_QUEUE_URL": queue_url,
           "KB_QUEUE_NAME": f"kb_test_{uuid.uuid4().hex[:10]}"}
    env.pop("KB_DATABASE_URL", None)
    worker = Worker(env, root / "worker.log")
    try:
        with kb_serve(env, root / "serve.log", workers=1) as url:
            yield url
    finally:
        worker.stop()


def test_an_upload_with_a_queue_is_followed_until_the_worker_has_ingested_it(browser, queued_portal, tmp_path):
    context = signed_in_context(browser, queued_portal, "employee", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    try:
        guide = tmp_path / "คู่มือโทรกลับ.md"
        guide.write_text("# การโทรกลับลูกค้า\n\nโทรกลับลูกค้าภายใน 24 ชั่วโมงเมื่อเรื่องร้องเรียนยังไม่ปิด\n",
                         encoding="utf-8")
        page.goto(f"{queued_portal}/add?ui=en")
        page.set_input_files("#files", str(guide))
        page.click("#add-form button[type=submit]")
        outcome = page.locator("#outcomes li").first
        outcome.locator("a").first.wait_for(timeout=120_000)  # the document's link: the worker has ingested it
        assert "added" in outcome.inner_text()

        page.goto(f"{queued_portal}/jobs?ui=th")
        assert "งานนำเข้าเอกสาร" in page.inner_text("h1")
        page.click("table.jobs a")
        summary = page.inner_text(".job-summary")
        assert "เสร็จแล้ว" in summary and "1 จาก 1" in summary, summary
        assert "คู่มือโทรกลับ.md" in page.inner_text(".outcomes")
        shot(page, "job-th")
    finally:
        context.close()
