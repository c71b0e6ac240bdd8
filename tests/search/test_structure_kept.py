"""Structure and characters kept from file to answer: heading paths, lists, tables, full-width punctuation."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from indexer.readers import read_file
from kb.search.answer import answer_question
from kb.storage.models import Chunk, Document
from kb.text.structure import embed_text, parse_blocks

RETURNS_MD = """# Returns guide

Everything staff need to know about returned goods.

## Refunds

Refunds go back to the original card within fourteen days of the parcel arriving at our warehouse.

### Store credit

1. Offer store credit when the card has expired.
2. Record the credit note number in the case.
   - Attach the receipt.

| Plan | Days to return |
|------|----------------|
| Gold | 60 |
| Basic | 14 |

## Exchanges

Exchanges of faulty routers are sent by courier the next working day.
"""

ZH_MD = """# 退货指南

## 退款

客户（会员）问：退款多久到账？答：退款将在１４个工作日内退回原卡，请耐心等待。
"""


def _ingest(kb, tmp_path: Path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    outcomes = kb.add_documents(read_file(path).documents)
    assert outcomes[0].status == "added", outcomes[0].error
    return path


def test_search_results_and_answers_carry_the_heading_path(make_kb, tmp_path):
    kb = make_kb(chunk_tokens=48)  # small chunks: about one section each
    _ingest(kb, tmp_path, "returns.md", RETURNS_MD)
    hit = kb.search("exchange faulty router courier", k=3).results[0]
    assert hit.heading_path == ["Returns guide", "Exchanges"]
    assert hit.to_dict()["heading_path"] == ["Returns guide", "Exchanges"]
    answer = answer_question(kb.engine, "How are faulty routers exchanged?", min_confidence=0.0)
    assert answer.citations[0].to_dict()["heading_path"][0] == "Returns guide"
    with kb.engine.store.session() as s:
        paths = [c.headings for c in s.scalars(select(Chunk).order_by(Chunk.start))]
        doc = s.scalars(select(Document)).one()
        headings = [(doc.text[a:b], level) for a, b, level in doc.headings]
    # The h1 repeats the title, which leads every path anyway; a chunk under ### sits under ## too.
    assert [("Returns guide", 1), ("Refunds", 2), ("Store credit", 3), ("Exchanges", 2)] == headings
    assert all(path is None or path[0] in ("Refunds", "Exchanges") for path in paths)


def test_each_chunk_knows_its_own_section_and_the_model_reads_it(make_kb, tmp_path):
    kb = make_kb(chunk_tokens=48)  # small chunks: one section each
    _ingest(kb, tmp_path, "returns.md", RETURNS_MD)
    with kb.engine.store.session() as s:
        rows = s.execute(select(Chunk.text, Chunk.headings).order_by(Chunk.start)).all()
    by_text = {text: headings for text, headings in rows}
    credit = next(h for t, h in by_text.items() if "Offer store credit" in t)
    assert credit == ["Refunds", "Store credit"]
    exchanges = next(h for t, h in by_text.items() if "by courier" in t)
    assert exchanges == ["Exchanges"]
    assert embed_text("guidance", "Returns guide", exchanges, "Sent by courier.") == (
        "Returns guide > Exchanges\nSent by courier."
    )
    assert embed_text("note", "N-1 · Router", ["Section"], "Complaint.") == "Complaint."
    assert embed_text("guidance", "Returns guide", [], "Intro.") == "Intro."  # no section: as it is


def test_lists_and_tables_stay_lists_and_tables_in_stored_text(make_kb, tmp_path):
    kb = make_kb()
    _ingest(kb, tmp_path, "returns.md", RETURNS_MD)
    with kb.engine.store.session() as s:
        text = s.scalars(select(Document.text)).one()
    blocks = parse_blocks(text)
    kinds = [b.kind for b in blocks]
    assert "list" in kinds and "table" in kinds
    items = next(b for b in blocks if b.kind == "list").items
    assert [(i.depth, i.number, text[i.lines[0][0] : i.lines[0][1]]) for i in items] == [
        (0, 1, "Offer store credit when the card has expired."),
        (0, 2, "Record the credit note number in the case."),
        (1, None, "Attach the receipt."),
    ]
    rows = next(b for b in blocks if b.kind == "table").rows
    assert [[text[a:b] for a, b in row] for row in rows] == [
        ["Plan", "Days to return"], ["Gold", "60"], ["Basic", "14"],
    ]


def test_full_width_punctuation_is_shown_as_written_and_still_matched(make_kb, tmp_path):
    kb = make_kb()
    _ingest(kb, tmp_path, "zh.md", ZH_MD)
    hit = kb.search("退款多久到账?", k=1).results[0]  # typed with an ASCII question mark
    assert "客户（会员）问：退款多久到账？" in hit.text
    assert "１４个工作日" in hit.text
    assert hit.heading_path == ["退货指南", "退款"]
    snippet = hit.best.snippet
    marked = [snippet.text[a:b] for a, b in snippet.highlights]
    assert "退款" in marked and all(m in snippet.text for m in marked)
    # A number typed in ASCII still finds and marks the full-width one, exactly.
    hit = kb.search("14 工作日", k=1, mode="keyword").results[0]
    marked = [hit.best.snippet.text[a:b] for a, b in hit.best.snippet.highlights]
    assert "１４" in marked
    answer = answer_question(kb.engine, "退款多久到账？", min_confidence=0.0)
    assert answer.answer is None or "（" in answer.answer or "，" in answer.answer or "１４" in answer.answer
    assert "：" in answer.citations[0].text or "，" in answer.citations[0].text
