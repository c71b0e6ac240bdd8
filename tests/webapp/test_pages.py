"""The portal's pages through Flask's test client: languages of the interface, search, documents, adding."""

from __future__ import annotations

import io
import re

import pytest

from kb.config import Settings
from kb.knowledge_base import KnowledgeBase
from tests.portal_client import signed_in
from tests.webapp.test_api import make_docx
from webapp import create_app
from webapp.i18n import compile_catalogs, locale_from_tag


@pytest.fixture(scope="module")
def app(corpus_kb):
    return create_app({"KB_INSTANCE": corpus_kb, "TESTING": True, "KB_WARM_UP": False})


def heading(html: str) -> str:
    return re.search(r"<h1[^>]*>(.*?)</h1>", html, re.S).group(1).strip()


@pytest.mark.parametrize(("tag", "locale"), [
    ("th-TH", "th"), ("th", "th"), ("zh-CN", "zh_Hans"), ("zh", "zh_Hans"), ("zh-Hans-SG", "zh_Hans"),
    ("zh-TW", "zh_Hant"), ("zh-HK", "zh_Hant"), ("zh-Hant", "zh_Hant"), ("en-GB", "en"), ("fr", None),
])
def test_language_tags_map_to_our_locales(tag, locale):
    assert locale_from_tag(tag) == locale


@pytest.mark.parametrize(("accept", "lang", "title"), [
    ("th-TH,th;q=0.9", "th", "ค้นหาสิ่งที่เพื่อนร่วมงานรู้อยู่แล้ว"),
    ("zh-TW,zh;q=0.8", "zh-Hant", "查找同事們已經知道的知識"),
    ("zh-CN,zh;q=0.8", "zh-Hans", "查找同事们已经知道的知识"),
    ("fr-FR,en;q=0.5", "en", "Find what our colleagues already know"),
])
def test_interface_language_follows_the_browser(app, accept, lang, title):
    html = signed_in(app).get("/", headers={"Accept-Language": accept}).get_data(as_text=True)
    assert f'<html lang="{lang}">' in html and heading(html) == title


def test_language_switch_is_remembered(app):
    client = signed_in(app)
    client.get("/?ui=zh_Hant", headers={"Accept-Language": "en"})
    html = client.get("/ask", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert heading(html) == "提出問題" and '<html lang="zh-Hant">' in html


def test_every_catalog_translates_every_message():
    from babel.messages.pofile import read_po

    from webapp.i18n import TRANSLATIONS

    compile_catalogs()
    for po in TRANSLATIONS.glob("*/LC_MESSAGES/messages.po"):
        with po.open("rb") as fh:
            catalog = read_po(fh)
        untranslated = [m.id for m in catalog if m.id and not (m.string if isinstance(m.string, str) else all(m.string))]
        assert untranslated == [], (po.parent.parent.name, untranslated)
        assert po.with_suffix(".mo").exists()


def test_home_lists_languages_kinds_and_recent_documents(app, corpus_kb):
    html = signed_in(app).get("/", headers={"Accept-Language": "en"}).get_data(as_text=True)
    stats = corpus_kb.stats()
    assert f"{stats.documents} documents" in html
    for lang in ("th", "zh", "en"):
        assert f'href="/search?lang={lang}"' in html
    assert html.count('<li><a href="/documents/') == 8


def test_thai_search_marks_thai_words_and_keeps_the_query_in_the_url(app):
    client = signed_in(app)
    html = client.get("/search?q=ลูกค้ารอสายนาน", headers={"Accept-Language": "th"}).get_data(as_text=True)
    snippets = re.findall(r'<p class="snippet" lang="th">(.*?)</p>', html, re.S)
    assert snippets and any("<mark>" in s for s in snippets)
    marked = re.findall(r"<mark>(.*?)</mark>", "".join(snippets))
    assert any(re.search("[\u0e00-\u0e7f]", m) for m in marked)
    assert 'value="ลูกค้ารอสายนาน"' in html
    assert 'rel="next"' in html and "page=2" in html


def test_facets_filter_and_scope_only_mine(app):
    client = signed_in(app)
    html = client.get("/search?q=customer+complaint&kind=note&channel=phone",
                      headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert re.search(r'class="active-filters".*?phone', html, re.S)
    assert re.findall(r'<span class="count">(\d+)</span>', html)
    mine = client.get("/search?q=customer+complaint&scope=mine", headers={"Accept-Language": "zh-CN"}).get_data(as_text=True)
    langs = set(re.findall(r'<p class="snippet" lang="(\w+)">', mine))
    assert langs == {"zh"}


def test_queries_and_texts_are_rendered_escaped(app):
    html = signed_in(app).get('/search?q=<script>alert(1)</script>"><img src=x onerror=alert(1)>').get_data(as_text=True)
    assert "<script>alert(1)</script>" not in html and "<img src=x" not in html
    assert "&lt;script&gt;" in html


def test_bad_filter_value_is_explained_on_the_page(app):
    response = signed_in(app).get("/search?q=x&from=yesterday", headers={"Accept-Language": "en"})
    assert response.status_code == 400 and "from:" in response.get_data(as_text=True)


def test_document_page_marks_the_passage_and_lists_other_languages(app, corpus_kb):
    hit = corpus_kb.search("permission marketing opt-in", k=1, lang="en").results[0]
    html = signed_in(app).get(f"/documents/{hit.doc_id}?passage={hit.chunk_id}&q=opt-in",
                                 headers={"Accept-Language": "en"}).get_data(as_text=True)
    passage = re.search(r'<mark class="passage" id="passage"[^>]*>(.*?)</mark>(?!<)', html, re.S)
    assert passage and "<mark>" in html
    related = re.search(r'<aside class="related".*?</aside>', html, re.S).group(0)
    assert re.search(r'lang="(th|zh)"', related)
    assert signed_in(app).get("/documents/999999").status_code == 404


def test_ask_page_shows_cited_passages(app):
    html = signed_in(app).get("/ask?q=如何处理客户投诉的电话等候时间过长?").get_data(as_text=True)
    assert html.count("<blockquote") >= 3 and 'href="/documents/' in html


def test_add_page_without_javascript_reports_each_file(tmp_path, models_dir, embedder):
    kb = KnowledgeBase.open(Settings(data_dir=tmp_path / "data", models_dir=models_dir), embedder=embedder)
    try:
        app = create_app({"KB_INSTANCE": kb, "TESTING": True, "KB_WARM_UP": False})
        client = signed_in(app)
        response = client.post("/add", headers={"Accept-Language": "en"}, content_type="multipart/form-data", data={
            "files": [(io.BytesIO(make_docx("Refund rule", "Refunds above 5,000 baht need a supervisor.")), "refund.docx"),
                      (io.BytesIO(b"junk"), "junk.exe")],
            "text": "", "title": ""})
        html = response.get_data(as_text=True)
        assert re.search(r'class="outcome added"><strong>refund.docx</strong>', html)
        assert re.search(r'class="outcome failed"><strong>junk.exe</strong>.*?unsupported', html, re.S)
        empty = client.post("/add", data={"text": "  "}, headers={"Accept-Language": "en"})
        assert empty.status_code == 400 and "Choose a file or paste some text." in empty.get_data(as_text=True)
    finally:
        kb.close()


STRUCTURED_MD = """# Refund handbook

## Store credit

1. Offer store credit when the card has expired `<script>alert(1)</script>`.
2. Record the credit note number in the case.
   - Attach the receipt.

| Plan | Days to return |
|------|----------------|
| Gold | 60 |

## 退款

客户（会员）问：退款多久到账？答：在１４个工作日内退回原卡。
"""


def test_document_and_result_pages_show_headings_lists_tables_and_original_characters(tmp_path, models_dir,
                                                                                        embedder):
    from indexer.readers import read_file

    kb = KnowledgeBase.open(Settings(data_dir=tmp_path / "data", models_dir=models_dir), embedder=embedder)
    try:
        path = tmp_path / "refunds.md"
        path.write_text(STRUCTURED_MD, encoding="utf-8")
        doc_id = kb.add_documents(read_file(path).documents)[0].doc_id
        client = signed_in(create_app({"KB_INSTANCE": kb, "TESTING": True, "KB_WARM_UP": False}))
        hit = kb.search("退款多久到账", k=1).results[0]
        html = client.get(f"/documents/{doc_id}?passage={hit.chunk_id}&q=退款",
                          headers={"Accept-Language": "en"}).get_data(as_text=True)
        marked = html.split('<div class="doc-text">', 1)[1].split("</article>", 1)[0]
        assert 'id="passage"' in marked and "<mark>退款</mark>" in marked
        text = re.sub(r"</?mark[^>]*>", "", marked)
        assert "Refund handbook</h2>" not in text  # the title is the page's own <h1>
        assert '<h3 class="doc-heading">Store credit</h3>' in text
        assert re.search(r"<ol><li>Offer store credit.*?<ul><li>Attach the receipt.</li></ul></li></ol>", text)
        assert "<td>Gold</td><td>60</td>" in text
        assert "&lt;script&gt;" in text and "<script>" not in text
        assert "客户（会员）问：退款多久到账？" in text and "１４" in text
        page = client.get("/search?q=credit+note+receipt", headers={"Accept-Language": "en"}).get_data(as_text=True)
        assert '<p class="crumbs" lang="en">Store credit</p>' in page
    finally:
        kb.close()


def _tabs(html: str) -> tuple[dict[str, int], str | None]:
    """The kind tabs of a results page: {kind: count} and the one shown."""
    nav = re.search(r'<nav class="kind-tabs".*?</nav>', html, re.S)
    if nav is None:
        return {}, None
    links = re.findall(r'<a href="[^"]*kind=(\w+)[^"]*"( aria-current="page")?>.*?<span class="count">([\d,]+)</span>',
                       nav.group(0), re.S)
    return ({kind: int(count.replace(",", "")) for kind, _, count in links},
            next((kind for kind, current, _ in links if current), None))


def test_guidance_and_notes_are_tabs_with_counts_and_each_role_starts_where_it_works(app):
    query = "/search?q=customer+waits+too+long+on+the+phone"
    employee = signed_in(app, "employee")
    html = employee.get(query, headers={"Accept-Language": "en"}).get_data(as_text=True)
    counts, shown = _tabs(html)
    assert shown == "guidance" and counts["guidance"] > 0 and counts["note"] > 0
    assert set(re.findall(r'<li class="result">.*?<span>(Guidance|Customer note)</span>', html, re.S)) == {"Guidance"}

    agent = signed_in(app, "agent")
    html = agent.get(query, headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert _tabs(html)[1] == "note"
    assert set(re.findall(r'<li class="result">.*?<span>(Guidance|Customer note)</span>', html, re.S)) == {"Customer note"}

    chosen = employee.get(query + "&kind=note")  # the tab, pressed: remembered for the next searches
    assert "results_kind=note" in chosen.headers.get("Set-Cookie", "")
    assert _tabs(employee.get("/search?q=router+keeps+dropping").get_data(as_text=True))[1] == "note"

    partner = signed_in(app, "partner")
    assert _tabs(partner.get(query).get_data(as_text=True)) == ({}, None)


def test_a_result_with_a_translation_links_to_it_in_each_other_language(app, corpus_kb):
    html = signed_in(app, "employee").get("/search?q=breaking+down+silos+between+business+units&lang=en",
                                          headers={"Accept-Language": "en"}).get_data(as_text=True)
    first = html.split('<li class="result">')[1]
    links = dict(re.findall(r'<a href="/documents/(\d+)\?passage=\d+[^"]*" hreflang="(\w+)"', first))
    assert set(links.values()) == {"th", "zh"}
    files = {corpus_kb.get_document(int(doc)).source_file.rsplit("/", 1)[1] for doc in links}
    assert files == {"breaking-silos-sbu.md"}  # the same guide, in Thai and in Chinese


def test_the_start_page_fits_each_role_and_lists_what_nobody_found(app):
    employee = signed_in(app, "employee", "gap-finder")
    employee.get("/search?q=xyzzy+qwerty+warranty")  # nothing relevant: a knowledge gap
    employee.get("/search?q=breaking+down+silos")
    home = employee.get("/", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "Your recent searches" in home and "breaking down silos" in home
    assert "Searches that found nothing" not in home  # the gap list is for trainers
    trainer = signed_in(app, "trainer").get("/", headers={"Accept-Language": "th"}).get_data(as_text=True)
    assert "การค้นหาที่ไม่พบอะไรเลย" in trainer and "xyzzy qwerty warranty" in trainer
    assert "breaking down silos" not in trainer.split('id="gaps"')[1].split("</section>")[0]
    assert "/collections" in trainer.split('class="start-task"')[1].split("</section>")[0]
    agent = signed_in(app, "agent").get("/", headers={"Accept-Language": "zh-CN"}).get_data(as_text=True)
    assert "/cases/similar" in agent.split('class="start-task"')[1].split("</section>")[0]
    assert "热门主题" in agent


def test_documents_and_handouts_show_no_server_paths_and_link_through_the_public_url(corpus_kb, tmp_path):
    settings = corpus_kb.settings.with_overrides(public_url="https://kb.example.com")
    kb = KnowledgeBase(corpus_kb.engine)
    kb.engine.settings, original = settings, corpus_kb.engine.settings
    try:
        app = create_app({"KB_INSTANCE": kb, "TESTING": True, "KB_WARM_UP": False})
        trainer = signed_in(app, "trainer")
        hit = corpus_kb.search("permission marketing opt-in", k=1, lang="en").results[0]
        page = trainer.get(f"/documents/{hit.doc_id}").get_data(as_text=True)
        server_folder = hit.source.rsplit("/", 2)[0]
        assert server_folder not in page and "en/" + hit.source.rsplit("/", 1)[1] in page
        made = trainer.post("/api/v1/collections", json={"name": "Permission workshop"}).get_json()
        trainer.post(f"/api/v1/collections/{made['id']}/items", json={"doc_id": hit.doc_id, "chunk_id": hit.chunk_id})
        handout = trainer.get(f"/api/v1/collections/{made['id']}/export?format=md").get_data(as_text=True)
        assert f"<https://kb.example.com/documents/{hit.doc_id}>" in handout
        assert server_folder not in handout and "localhost" not in handout
    finally:
        kb.engine.settings = original
