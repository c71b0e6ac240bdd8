"""Hybrid search as users meet it: across languages, exact codes, filters, grouping, deletes."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

from kb.config import Settings
from kb.index.chunk_table import SearchFilters
from kb.knowledge_base import KnowledgeBase
from kb.search.query import MAX_QUERY_CHARS, clean_query
from kb.search.types import MODES, EmptyQueryError
from kb.storage.models import Chunk
from tests.test_knowledge_base import EN, TH, ZH, guidance, note

CANTEEN_EN = "Our canteen serves lunch from noon. Bring your own cup and return trays to the rack."
PARKING_ZH = "员工停车场在大楼后面。请把车停在白线以内,访客车位留给客户。"
ROUTER_NOTES = [
    note("N-1", "The SmartHome Hub reboots every night and the lights go offline.",
         "Replaced the power adapter; no more reboots."),
    note("N-2", "SmartHome Hub SH-210 on firmware FW-7731-B drops Zigbee devices after an update.",
         "Rolled back to FW-7720 and opened a ticket with the vendor."),
    note("N-3", "My hub keeps losing its devices after updating the firmware.",
         "Factory reset and re-paired all devices."),
    note("N-4", "Router firmware update failed and the internet is down.", "Sent a technician."),
]


def test_thai_query_finds_a_chinese_only_document(make_kb):
    kb = make_kb()
    kb.add_documents([guidance("zh.md", ZH), guidance("canteen.md", CANTEEN_EN),
                      guidance("parking.md", PARKING_ZH)])
    for mode in ("hybrid", "dense"):
        hits = kb.search("ผู้บริหารต้องทำให้หน่วยธุรกิจที่แข่งขันกันร่วมมือกัน", k=3, mode=mode).results
        assert hits[0].source == "/docs/zh.md", (mode, [h.source for h in hits])
        assert hits[0].lang == "zh"


def test_exact_product_code_finds_its_note_first(make_kb):
    kb = make_kb()
    kb.add_documents(ROUTER_NOTES + [guidance("en.md", EN)])
    for query in ["FW-7731-B", "fw-7731-b", "hub FW-7731-B problem"]:
        response = kb.search(query, k=4)
        assert response.results[0].source == "/notes/n.csv#N-2", (query, [h.source for h in response.results])
        best = response.results[0]
        marked = {best.best.snippet.text[a:b].lower() for a, b in best.best.snippet.highlights}
        assert "fw-7731-b" in marked
        assert best.keyword_rank == 1


def test_mixed_script_query_uses_both_segmenters(make_kb):
    kb = make_kb()
    kb.add_documents([guidance("th.md", TH), guidance("en.md", EN), guidance("canteen.md", CANTEEN_EN)])
    response = kb.search("ความร่วมมือของ SBU", k=3, mode="keyword")
    assert "sbu" in response.query_terms and "ความร่วมมือ" in response.query_terms
    assert response.results[0].source == "/docs/th.md"
    assert kb.search("ความร่วมมือของ SBU", k=3).results[0].source == "/docs/th.md"


def test_traditional_query_finds_simplified_text_by_keyword(make_kb):
    kb = make_kb()
    kb.add_documents([guidance("zh.md", ZH), guidance("parking.md", PARKING_ZH)])
    response = kb.search("打破部門壁壘", k=2, mode="keyword")  # Traditional characters
    assert [h.source for h in response.results][:1] == ["/docs/zh.md"]
    snippet = response.results[0].best.snippet
    assert any("壁垒" in snippet.text[a:b] for a, b in snippet.highlights)


@pytest.mark.parametrize("query", ["", "   ", "\u200b\n\t "])
def test_empty_query_is_a_clear_error_in_every_mode(make_kb, query):
    kb = make_kb()
    for mode in MODES:
        with pytest.raises(EmptyQueryError, match="empty"):
            kb.search(query, mode=mode)


def test_very_long_query_is_cut_safely_and_still_answers(make_kb):
    kb = make_kb()
    kb.add_documents([guidance("zh.md", ZH), guidance("canteen.md", CANTEEN_EN)])
    query = "canteen lunch " * 2000 + "ลูกค้า" * 500
    assert len(clean_query(query)) <= MAX_QUERY_CHARS
    for mode in MODES:
        assert kb.search(query, k=2, mode=mode).results[0].source == "/docs/canteen.md"


def test_unknown_mode_is_refused_by_name(make_kb):
    kb = make_kb()
    with pytest.raises(ValueError, match="unknown mode 'fuzzy'"):
        kb.search("router", mode="fuzzy")


def test_results_are_grouped_per_document_with_more_passages(make_kb):
    kb = make_kb(chunk_tokens=40)
    long_text = "\n\n".join(
        f"Section {i}. When two business units compete, leadership must induce cooperation and "
        f"share customer information so that every unit sees the whole relationship." for i in range(8)
    )
    kb.add_documents([guidance("long.md", long_text), guidance("en.md", EN), guidance("canteen.md", CANTEEN_EN)])
    grouped = kb.search("business units cooperation", k=5).results
    sources = [h.source for h in grouped]
    assert len(sources) == len(set(sources))
    long_hit = next(h for h in grouped if h.source == "/docs/long.md")
    assert long_hit.more_count >= 3 and long_hit.more
    passages = kb.search("business units cooperation", k=20, group=False).results
    assert sum(h.source == "/docs/long.md" for h in passages) == 1 + long_hit.more_count


def test_snippets_are_cut_at_the_sentences_found_at_ingest_and_older_chunks_get_the_same(make_kb):
    kb = make_kb()
    steps = " ".join(f"Step {n} of the refund procedure is written down in the manual." for n in range(1, 9))
    kb.add_documents([guidance("refund.md", steps + " Escalate a disputed chargeback to the finance team within "
                               "two days. " + steps), guidance("th.md", TH)])
    with kb.store.session() as s:
        stored = s.execute(select(Chunk.id, Chunk.text, Chunk.sentences)).all()
    for _, text, spans in stored:
        assert spans, "every chunk keeps its sentences"
        assert all(0 <= a < b <= len(text) and text[a:b] == text[a:b].strip() for a, b in spans)
    query = "disputed chargeback finance"

    def first_snippet():
        return kb.search(query, k=1).results[0].best.snippet

    found = first_snippet()
    text, spans = next((text, spans) for _, text, spans in stored if "chargeback" in text)
    assert "Escalate a disputed chargeback" in found.text
    assert found.start in {a for a, _ in spans}, "the snippet begins where a sentence does"
    # Chunks stored before their sentences were kept segment again, to the same snippet.
    with kb.store.session() as s:
        s.execute(update(Chunk).values(sentences=None))
    assert first_snippet() == found
    # And the stored sentences are the ones used: one span for the whole text cuts around the matches instead.
    with kb.store.session() as s:
        for chunk_id, text, _ in stored:
            s.execute(update(Chunk).where(Chunk.id == chunk_id).values(sentences=[[0, len(text)]]))
    cut = first_snippet()
    assert "disputed chargeback" in cut.text and cut.start not in {a for a, _ in spans}


@pytest.mark.parametrize("mode", MODES)
def test_filters_never_return_other_languages_or_kinds_and_never_empty_a_page(corpus_kb, mode):
    # An English question about phone queues: filters far from the query still fill the page.
    query = "customers wait too long on the phone before an agent answers"
    for filters in [SearchFilters(lang="th"), SearchFilters(lang="zh"), SearchFilters(kind="note"),
                    SearchFilters(kind="guidance", lang="zh"), SearchFilters(kind="note", lang="en")]:
        results = corpus_kb.search(query, k=5, mode=mode, filters=filters, group=False).results
        if mode != "keyword" or filters.lang in (None, "en"):  # keywords cannot cross languages
            assert len(results) == 5, (filters, len(results))
        for hit in results:
            assert filters.lang is None or hit.lang == filters.lang
            assert filters.kind is None or hit.kind == filters.kind


@pytest.mark.parametrize("mode", MODES)
def test_a_filter_keeps_every_matching_result_a_bigger_unfiltered_page_shows(corpus_kb, mode):
    query = "ลูกค้ารอสายนาน ควรแก้ไขอย่างไร"
    unfiltered = corpus_kb.search(query, k=10, mode=mode, group=False).results
    for filters in [SearchFilters(lang="th"), SearchFilters(kind="note"), SearchFilters(kind="guidance")]:
        shown = {h.chunk_id for h in unfiltered
                 if (filters.lang is None or h.lang == filters.lang)
                 and (filters.kind is None or h.kind == filters.kind)}
        filtered = {h.chunk_id for h in corpus_kb.search(query, k=10, mode=mode, filters=filters,
                                                          group=False).results}
        assert shown <= filtered, (filters, shown - filtered)


def test_note_filters_by_product_status_and_date(corpus_kb):
    filters = SearchFilters(kind="note", product="FiberNet 1000", status="resolved")
    results = corpus_kb.search("internet is slow", k=10, filters=filters).results
    assert results
    for hit in results:
        info = corpus_kb.indexes.table.docs[hit.doc_id]
        assert info.product == "FiberNet 1000" and info.status == "resolved"
    import datetime as dt

    in_2025 = SearchFilters(kind="note", date_from=dt.date(2025, 1, 1), date_to=dt.date(2025, 12, 31))
    for hit in corpus_kb.search("internet is slow", k=10, filters=in_2025).results:
        assert corpus_kb.indexes.table.docs[hit.doc_id].date.year == 2025


def test_paging_gives_the_next_results_without_repeats(corpus_kb):
    query = "data quality"
    first = corpus_kb.search(query, k=5)
    second = corpus_kb.search(query, k=5, offset=5)
    assert first.has_more
    both = [h.doc_id for h in first.results + second.results]
    assert len(both) == len(set(both)) == 10
    assert both == [h.doc_id for h in corpus_kb.search(query, k=10).results]


def test_deleting_a_document_removes_it_from_both_indexes_also_after_reopening(make_kb, tmp_path, embedder,
                                                                               models_dir, database_url):
    kb = make_kb()
    kb.add_documents(ROUTER_NOTES)
    target = kb.search("FW-7731-B", k=1).results[0]
    chunk_ids = set(kb.indexes.table.ids[kb.indexes.table.doc_ids == target.doc_id].tolist())
    kb.delete([target.source])
    for mode in MODES:
        assert target.doc_id not in {h.doc_id for h in kb.search("FW-7731-B firmware", k=10, mode=mode).results}
    assert not chunk_ids & set(kb.indexes.vectors.ids().tolist())
    assert not chunk_ids & set(kb.indexes.keywords.ids().tolist())
    kb.close()
    reopened = KnowledgeBase.open(
        Settings(data_dir=tmp_path / "data", models_dir=models_dir, database_url=database_url), embedder=embedder)
    try:
        assert not chunk_ids & set(reopened.indexes.keywords.ids().tolist())
        assert reopened.search("FW-7731-B", k=5, mode="keyword").results == []
    finally:
        reopened.close()


def test_json_keeps_the_core_contract_and_adds_explanations(make_kb):
    kb = make_kb()
    kb.add_documents(ROUTER_NOTES)
    payload = kb.search("FW-7731-B", k=2).to_dict()
    hit = payload["results"][0]
    core = {"doc_id", "chunk_id", "title", "source", "kind", "lang", "score", "text", "start", "end"}
    assert core <= set(hit)
    assert {"snippet", "highlights", "more_passages", "explain", "doc_lang"} <= set(hit)
    assert 0.0 <= hit["explain"]["keyword_share"] <= 1.0
    assert payload["query"]["mode"] == "hybrid" and "fw-7731-b" in payload["query"]["terms"]


def test_new_dictionary_words_are_applied_to_stored_chunks_at_the_next_open(make_kb, tmp_path):
    from sqlalchemy import select

    from kb.storage.models import Chunk

    kb = make_kb()
    kb.add_documents([guidance("brand.md", "我们的智家宝网关支持远程重启。客户可以在应用里查看状态。")])
    with kb.store.session() as s:
        assert "智家宝" not in s.scalar(select(Chunk.terms)).split()
    kb.close()
    (tmp_path / "data" / "dictionary.txt").write_text("智家宝  # our home gateway\n", encoding="utf-8")
    reopened = make_kb()
    with reopened.store.session() as s:
        assert "智家宝" in s.scalar(select(Chunk.terms)).split()
    response = reopened.search("智家宝", k=1, mode="keyword")
    assert response.query_terms[0] == "智家宝"
    assert response.results[0].source == "/docs/brand.md"


@pytest.mark.parametrize("query", ["xyzzyqwerty", "recipe for chocolate chip cookies", "วิธีทำต้มยำกุ้งให้อร่อย",
                                   "澳大利亚的首都是哪个城市"])
def test_a_query_about_nothing_we_know_finds_nothing_instead_of_padding(corpus_kb, query):
    assert corpus_kb.search(query, k=10).results == []
    assert corpus_kb.search(query, k=10, mode="dense").results == []
    assert corpus_kb.ask(query).citations == []


@pytest.mark.parametrize("query", ["how do we handle a silo between two business units?", "如何打破部门之间的壁垒",
                                   "ลูกค้าร้องเรียนว่ารอสายนาน"])
def test_a_query_about_something_we_know_keeps_a_full_page(corpus_kb, query):
    assert len(corpus_kb.search(query, k=10).results) == 10
