"""Pages shaped by role: no control a role cannot use, and a refusal that says what to do instead, in the user's language."""

from __future__ import annotations

import pytest

from tests.portal_client import signed_in
from webapp import create_app


@pytest.fixture(scope="module")
def app(corpus_kb):
    return create_app({"KB_INSTANCE": corpus_kb, "TESTING": True, "KB_WARM_UP": False})


def test_a_partner_search_page_has_no_collect_controls_a_trainer_has_them(app):
    query = {"q": "choosing a CRM vendor"}
    partner = signed_in(app, "partner").get("/search", query_string=query).get_data(as_text=True)
    trainer = signed_in(app, "trainer").get("/search", query_string=query).get_data(as_text=True)
    assert 'class="result"' in partner and 'class="result"' in trainer
    assert 'class="collect"' not in partner
    assert 'class="collect"' in trainer


@pytest.mark.parametrize(("ui", "heading", "instead"), [
    ("en", "Your role cannot use this page.", "What you can do instead:"),
    ("th", "บทบาทของคุณใช้หน้านี้ไม่ได้", "สิ่งที่คุณทำได้แทน:"),
    ("zh_Hans", "您的角色无法使用此页面。", "您可以改为："),
])
def test_a_refusal_is_a_helpful_page_in_the_users_language(app, ui, heading, instead):
    response = signed_in(app, "partner").get("/collections", query_string={"ui": ui})
    page = response.get_data(as_text=True)
    assert response.status_code == 403
    assert heading in page and instead in page and "Forbidden" not in page
    assert 'href="/search"' in page and 'href="/topics"' in page
