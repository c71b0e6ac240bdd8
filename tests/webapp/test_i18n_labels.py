"""Everything in the reader's language: the `ui` switch by language tag, dates and numbers through Babel
(Thai years in the Buddhist era), stored keys shown as translated labels, messages in every catalog."""

from __future__ import annotations

import datetime as dt
import html as html_text
import re
from pathlib import Path

import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po
from flask_babel import force_locale

from kb.config import Settings
from kb.knowledge_base import KnowledgeBase
from kb.services.cases import CaseFilters, list_cases
from tests.portal_client import signed_in
from webapp import create_app
from webapp.i18n import COOKIE, TRANSLATIONS, buddhist_pattern, local_date, local_datetime
from webapp.labels import status_label, topic_label, visibility_label

REPO = Path(__file__).resolve().parents[2]
CATALOG_LOCALES = ("th", "zh_Hans", "zh_Hant")


@pytest.fixture(scope="module")
def empty_app(tmp_path_factory):
    """A portal over an empty knowledge base: pages that list no documents never load the embedding model."""
    data_dir = tmp_path_factory.mktemp("i18n-labels")
    kb = KnowledgeBase.open(Settings(data_dir=data_dir / "data", models_dir=data_dir / "models"))
    yield create_app({"KB_INSTANCE": kb, "TESTING": True, "KB_WARM_UP": False})
    kb.close()


@pytest.fixture(scope="module")
def corpus_app(corpus_kb):
    return create_app({"KB_INSTANCE": corpus_kb, "TESTING": True, "KB_WARM_UP": False})


def html_lang(html: str) -> str:
    return re.search(r'<html lang="([^"]+)"', html).group(1)


# -- the switch ---------------------------------------------------------------------------


@pytest.mark.parametrize(("ui", "locale", "lang"), [
    ("zh", "zh_Hans", "zh-Hans"), ("zh-TW", "zh_Hant", "zh-Hant"), ("th-TH", "th", "th"),
    ("zh-hant", "zh_Hant", "zh-Hant"), ("zh_Hans", "zh_Hans", "zh-Hans"),
])
def test_ui_parameter_takes_a_language_tag_and_remembers_our_locale(empty_app, ui, locale, lang):
    client = empty_app.test_client()
    first = client.get("/login", query_string={"ui": ui}, headers={"Accept-Language": "en"})
    assert html_lang(first.get_data(as_text=True)) == lang
    assert client.get_cookie(COOKIE).value == locale
    later = client.get("/login", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert html_lang(later) == lang


def test_an_unknown_ui_value_changes_nothing(empty_app):
    client = empty_app.test_client()
    html = client.get("/login", query_string={"ui": "fr"}, headers={"Accept-Language": "th"}).get_data(as_text=True)
    assert html_lang(html) == "th" and client.get_cookie(COOKIE) is None


# -- dates and numbers --------------------------------------------------------------------


def test_thai_dates_count_years_in_the_buddhist_era(empty_app):
    day, moment = dt.date(2025, 10, 30), dt.datetime(2025, 10, 30, 9, 5)
    with empty_app.test_request_context():
        with force_locale("th"):
            assert local_date(day, "medium") == "30 ต.ค. 2568"
            assert local_date(day, "long") == "30 ตุลาคม พ.ศ. 2568"
            assert local_date(day, "short") == "30/10/68"
            assert local_date("2025-10-30") == "30 ต.ค. 2568"
            assert local_date("early 2025") == "early 2025"  # text that is not a date stays as written
            assert local_datetime(moment, "medium") == "30 ต.ค. 2568 09:05:00"
            assert local_datetime(moment, "short") == "30/10/68 09:05 น."
        with force_locale("zh_Hans"):
            assert local_date(day, "long") == "2025年10月30日"
        with force_locale("en"):
            assert local_date(day) == "Oct 30, 2025"


def test_buddhist_pattern_leaves_quoted_text_and_other_fields_alone():
    assert buddhist_pattern("d MMM y", 2025) == "d MMM '2568'"
    assert buddhist_pattern("EEEEที่ d MMMM G y", 2025) == "EEEEที่ d MMMM 'พ.ศ.' '2568'"
    assert buddhist_pattern("d/M/yy 'year' y", 1999) == "d/M/'42' 'year' '2542'"


def test_a_thai_case_page_shows_a_2025_date_as_2568(corpus_app, corpus_kb):
    cases, _ = list_cases(corpus_kb.engine, CaseFilters(date_from=dt.date(2025, 1, 1), date_to=dt.date(2025, 12, 31)))
    case = cases[0]
    html = signed_in(corpus_app, "agent").get(f"/cases/{case.doc_id}", query_string={"ui": "th"}).get_data(as_text=True)
    shown = re.search(rf'<time datetime="{case.date.isoformat()}">(.*?)</time>', html).group(1)
    assert shown.endswith(str(case.date.year + 543)) and "2025" not in shown


def test_audit_log_shows_times_and_actions_in_the_readers_language(empty_app):
    client = signed_in(empty_app, "admin", "audit-reader")  # signing in writes a "login" entry
    year = dt.datetime.now(dt.UTC).year
    html = client.get("/admin/audit", query_string={"ui": "zh_Hans", "actor": "user:audit-reader"}).get_data(as_text=True)
    row = re.search(r"<tr><td>([^<]*)</td><td>user:audit-reader</td><td>([^<]*)</td>", html)
    assert row.group(2) == "登录"
    assert row.group(1).startswith(f"{year}/")
    thai = client.get("/admin/audit", query_string={"ui": "th", "actor": "user:audit-reader"}).get_data(as_text=True)
    assert f"/{(year + 543) % 100:02d} " in thai and "<td>เข้าสู่ระบบ</td>" in thai


# -- stored keys as labels ----------------------------------------------------------------


def test_case_pages_show_statuses_and_channels_translated_and_keep_the_keys(corpus_app, corpus_kb):
    cases, _ = list_cases(corpus_kb.engine, CaseFilters(channel="line", status="pending"))
    case = cases[0]
    client = signed_in(corpus_app, "agent")
    page = client.get(f"/cases/{case.doc_id}", query_string={"ui": "zh_Hant"}).get_data(as_text=True)
    assert "<dd>待處理</dd>" in page and "<dd>LINE</dd>" in page
    listing = client.get("/cases", query_string={"ui": "th", "channel": "wechat"}).get_data(as_text=True)
    assert '<option value="wechat" selected>WeChat</option>' in listing
    assert '<option value="escalated" >ส่งต่อแล้ว</option>' in listing
    assert '<option value="store" >ที่ร้าน</option>' in listing


def test_topics_show_translated_names_and_link_by_their_tags(corpus_app):
    client = signed_in(corpus_app, "employee")
    html = client.get("/topics", query_string={"ui": "zh_Hans"}).get_data(as_text=True)
    assert re.search(r'href="/topics/crm-vision-leadership">CRM 愿景与领导力</a>', html)
    assert "crm vision leadership" not in html.lower()
    topic = client.get("/topics/human-factors", query_string={"ui": "th"}).get_data(as_text=True)
    assert re.search(r"<h1>ปัจจัยด้านบุคลากร</h1>", topic)


def test_a_topic_without_a_translation_still_reads_as_words(empty_app):
    with empty_app.test_request_context(), force_locale("th"):
        assert topic_label("slow-network") == "Slow network"
        assert topic_label("การเงิน") == "การเงิน"
        assert topic_label("data-quality") == "คุณภาพข้อมูล"
        assert status_label("แก้ไขแล้ว") == "แก้ไขแล้ว"  # an imported status keeps its own word
        assert status_label(" Resolved ") == "แก้ไขแล้ว"
        assert visibility_label("agent,admin") == "เจ้าหน้าที่บริการลูกค้า, ผู้ดูแลระบบ"


# -- messages -----------------------------------------------------------------------------


@pytest.mark.parametrize(("ui", "query", "message"), [
    ("th", {"q": "x", "from": "2025-02-01", "to": "2025-01-01"}, "from: วันที่เริ่มต้นอยู่หลังวันที่สิ้นสุด"),
    ("zh_Hans", {"q": "x", "kind": "poster"}, "kind: 未知的值 'poster'（应为以下之一：guidance, note）"),
])
def test_a_refused_search_parameter_is_explained_in_the_readers_language(empty_app, ui, query, message):
    response = signed_in(empty_app, "employee").get("/search", query_string={**query, "ui": ui})
    assert response.status_code == 400 and message in html_text.unescape(response.get_data(as_text=True))


def test_a_refused_case_filter_is_explained_in_the_readers_language(empty_app):
    response = signed_in(empty_app, "agent").get("/cases", query_string={"from": "soon", "ui": "zh_Hant"})
    page = html_text.unescape(response.get_data(as_text=True))
    assert response.status_code == 400 and "from: 'soon' 不是日期（應為 YYYY-MM-DD 格式）" in page


def test_the_api_keeps_english_messages_without_a_language(empty_app):
    query = {"q": "x", "from": "2025-02-01", "to": "2025-01-01"}
    response = signed_in(empty_app, "employee").get("/api/v1/search", query_string=query)
    assert response.status_code == 400
    assert response.get_json()["error"]["message"] == "from: the start date is after the end date"


# -- the catalogs -------------------------------------------------------------------------


def _catalog(locale: str):
    with (TRANSLATIONS / locale / "LC_MESSAGES" / "messages.po").open("rb") as fh:
        return read_po(fh, locale=locale)


@pytest.mark.parametrize("locale", CATALOG_LOCALES)
def test_no_catalog_entry_is_empty_or_fuzzy(locale):
    problems = []
    for message in _catalog(locale):
        if not message.id:
            continue  # the header
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        if message.fuzzy or not all(strings):
            problems.append(message.id)
    assert problems == []


def _extracted_messages() -> set[tuple[str, str | None]]:
    """Every (msgid, context) the code and templates use, as `pybabel extract -F webapp/babel.cfg` finds them."""
    with (REPO / "webapp" / "babel.cfg").open() as fh:
        method_map, options_map = parse_mapping_cfg(fh)
    keywords = {**DEFAULT_KEYWORDS, "lazy_gettext": None, "lazy_ngettext": (1, 2), "lazy_pgettext": ((1, "c"), 2)}
    found = set()
    for _filename, _line, message, _comments, context in extract_from_dir(str(REPO), method_map, options_map,
                                                                          keywords=keywords):
        found.add((message[0] if isinstance(message, tuple) else message, context))
    return found


@pytest.fixture(scope="module")
def extracted() -> set[tuple[str, str | None]]:
    return _extracted_messages()


def test_extraction_finds_code_and_template_messages(extracted):
    ids = {msgid for msgid, _context in extracted}
    assert "Find what our colleagues already know" in ids  # a template
    assert "CRM vision and leadership" in ids  # webapp/labels.py (lazy_gettext)
    assert "the start date is after the end date" in ids  # webapp/params.py


@pytest.mark.parametrize("locale", CATALOG_LOCALES)
def test_every_message_in_the_code_is_in_each_catalog(extracted, locale):
    catalog = _catalog(locale)
    missing = sorted(msgid for msgid, context in extracted if msgid and catalog.get(msgid, context=context) is None)
    assert missing == []
