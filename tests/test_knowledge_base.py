"""The knowledge base on both databases: add, update, skip, delete, search, and index repair."""

from __future__ import annotations

import datetime as dt
import shutil

import numpy as np
import pytest
from sqlalchemy import select

from kb.config import Settings
from kb.documents import NOTE, DocumentInput, NoteFields
from kb.engine import ModelMismatchError
from kb.index.vectors import DELTA_FILE, INDEX_FILE, MANIFEST_FILE
from kb.knowledge_base import KnowledgeBase
from kb.search.types import EmptyQueryError
from kb.storage.models import Chunk, Document, Note

EN = (
    "Breaking down silos\n\nWhen two strategic business units compete for the same customers, "
    "corporate leadership has to induce cooperation. Each unit should understand its role and the "
    "benefit it gets from sharing information about current and prospective customers.\n\n"
    "Shared customer records let every unit see the whole relationship."
)
TH = (
    "การลดไซโลระหว่างหน่วยธุรกิจ\n\nเมื่อหน่วยธุรกิจ SBU สองหน่วยแข่งขันกันเอง ผู้บริหารระดับสูงต้องทำให้เกิดความร่วมมือ "
    "แต่ละหน่วยต้องเข้าใจบทบาทของตนและประโยชน์ที่ได้รับจากการแบ่งปันข้อมูลลูกค้า"
)
ZH = "打破部门壁垒\n\n当两个事业部争夺同一批客户时,公司领导层必须促成合作。每个事业部都应了解自己的角色以及共享客户信息带来的好处。"


def guidance(name: str, text: str, **kw) -> DocumentInput:
    return DocumentInput(source=f"/docs/{name}", source_file=f"/docs/{name}", title=name, text=text, **kw)


def note(note_id: str, complaint: str, resolution: str = "", **kw) -> DocumentInput:
    fields = NoteFields(note_id=note_id, complaint=complaint, resolution=resolution,
                        customer_name="Jane Roe", customer_email="jane.roe@example.com",
                        customer_phone="+44 20 7946 0999", date=dt.date(2025, 3, 1),
                        product="FiberNet 500", channel="phone", status="resolved", **kw)
    text = complaint + ("\n\n" + resolution if resolution else "")
    return DocumentInput(source=f"/notes/n.csv#{note_id}", source_file="/notes/n.csv",
                         title=f"{note_id}: {complaint[:40]}", text=text, kind=NOTE, note=fields)


def index_ids(kb: KnowledgeBase) -> list[int]:
    return sorted(int(i) for i in kb.indexes.vectors.ids())


def keyword_ids(kb: KnowledgeBase) -> list[int]:
    return sorted(int(i) for i in kb.indexes.keywords.ids())


def db_chunk_ids(kb: KnowledgeBase) -> list[int]:
    return [int(i) for i in kb.store.chunk_ids()]


def test_added_document_keeps_chunks_offsets_languages_and_vectors(make_kb):
    kb = make_kb()
    [outcome] = kb.add_documents([guidance("silos.md", EN, tags=["human-factors"])])
    assert outcome.status == "added" and outcome.chunks >= 1
    doc = kb.get_document(outcome.doc_id)
    assert doc.kind == "guidance" and doc.lang == "en" and doc.is_mixed is False
    assert doc.tag_names == ["human-factors"]
    for chunk in doc.chunks:
        assert doc.text[chunk.start : chunk.end] == chunk.text
        assert chunk.lang == "en"
        assert len(chunk.vector) == 384 * 4
    stats = kb.stats()
    assert stats.documents == 1 and stats.chunks == stats.vectors == len(doc.chunks)
    assert index_ids(kb) == db_chunk_ids(kb)


def test_unchanged_document_is_skipped_and_a_changed_one_replaces_its_chunks(make_kb):
    kb = make_kb()
    [first] = kb.add_documents([guidance("silos.md", EN)])
    old_chunks = db_chunk_ids(kb)
    [again] = kb.add_documents([guidance("silos.md", EN)])
    assert again.status == "skipped" and db_chunk_ids(kb) == old_chunks
    [changed] = kb.add_documents([guidance("silos.md", EN + "\n\nA new closing paragraph about trust.")])
    assert changed.status == "updated" and changed.doc_id == first.doc_id
    new_chunks = db_chunk_ids(kb)
    assert not set(new_chunks) & set(old_chunks)
    assert index_ids(kb) == new_chunks
    assert kb.stats().documents == 1


def test_mixed_language_document_records_main_language_and_mixed_flag(make_kb):
    kb = make_kb()
    [outcome] = kb.add_documents([guidance("both.md", EN + "\n\n" + TH)])
    doc = kb.get_document(outcome.doc_id)
    assert doc.is_mixed is True
    assert set(doc.languages) >= {"en", "th"}
    assert {c.lang for c in doc.chunks} == {"en", "th"}


def test_note_fields_are_stored_but_personal_data_stays_out_of_chunks(make_kb):
    kb = make_kb()
    [outcome] = kb.add_documents([note("N-1", "Router drops the connection every night.", "Firmware updated.")])
    with kb.store.session() as s:
        row = s.get(Note, outcome.doc_id)
        assert row.customer_email == "jane.roe@example.com" and row.status == "resolved"
        texts = s.scalars(select(Chunk.text).where(Chunk.document_id == outcome.doc_id)).all()
    assert texts and not any("Jane" in t or "example.com" in t for t in texts)


def test_bad_documents_are_reported_and_the_rest_still_go_in(make_kb):
    kb = make_kb()
    outcomes = kb.add_documents([
        guidance("empty.md", "   \n "),
        guidance("odd.md", EN, kind="memo"),
        guidance("good.md", EN),
        guidance("only-boilerplate.md", "comments powered by Disqus"),
    ])
    assert [o.status for o in outcomes] == ["failed", "failed", "added", "failed"]
    assert "no text" in outcomes[0].error and "memo" in outcomes[1].error
    assert "cleaning" in outcomes[3].error
    assert kb.stats().documents == 1


def test_delete_by_source_file_or_folder_removes_rows_and_vectors(make_kb):
    kb = make_kb()
    kb.add_documents([guidance("a.md", EN), guidance("b.md", ZH), note("N-1", "Bill charged twice."),
                      note("N-2", "TV box freezes.")])
    assert kb.delete(["/notes/n.csv"]) == ["/notes/n.csv#N-1", "/notes/n.csv#N-2"]
    assert kb.delete(["/docs"]) and kb.stats().documents == 0
    assert db_chunk_ids(kb) == [] and len(kb.indexes.vectors) == 0 and keyword_ids(kb) == []
    with kb.store.session() as s:
        assert s.scalar(select(Note).limit(1)) is None


def test_search_filters_act_inside_retrieval(make_kb):
    kb = make_kb()
    kb.add_documents([guidance("en.md", EN), guidance("th.md", TH), guidance("zh.md", ZH),
                      note("N-1", "Two departments gave me different answers about my contract."),
                      note("N-2", "สองแผนกให้ข้อมูลไม่ตรงกันเรื่องสัญญาของฉัน")])
    query = "cooperation between competing business units"
    for mode in ("hybrid", "dense", "keyword"):
        assert {h.lang for h in kb.search(query, k=10, lang="th", mode=mode).results} <= {"th"}
    notes = kb.search(query, k=10, kind="note").results
    assert {h.kind for h in notes} == {"note"} and len(notes) == 2
    thai_notes = kb.search(query, k=10, kind="note", lang="th").results
    assert [h.source for h in thai_notes] == ["/notes/n.csv#N-2"]
    # A filtered page holds exactly what an unfiltered, larger page holds for that filter, in order.
    every = [h.chunk_id for h in kb.search(query, k=50, group=False).results]
    thai = {h.chunk_id for h in kb.search(query, k=50, lang="th", group=False).results}
    assert [h.chunk_id for h in kb.search(query, k=2, lang="th", group=False).results] == [
        c for c in every if c in thai][:2]


def test_thai_query_finds_the_same_topic_in_chinese_and_english(make_kb):
    kb = make_kb()
    kb.add_documents([guidance("en.md", EN), guidance("zh.md", ZH),
                      guidance("other.md", "Our canteen serves lunch from noon. Bring your own cup.")])
    hits = kb.search("ผู้บริหารต้องทำให้หน่วยธุรกิจที่แข่งขันกันร่วมมือกัน", k=2).results
    assert {h.source for h in hits} == {"/docs/en.md", "/docs/zh.md"}


def test_empty_or_whitespace_query_is_a_clear_error(make_kb):
    kb = make_kb()
    for query in ["", "   \n\t", "\u200b"]:
        with pytest.raises(EmptyQueryError, match="empty"):
            kb.search(query)


def test_missing_index_is_rebuilt_from_stored_vectors_without_loading_the_model(make_kb, tmp_path, models_dir, database_url):
    kb = make_kb()
    kb.add_documents([guidance("en.md", EN), guidance("zh.md", ZH)])
    kb.close()
    expected = db_chunk_ids(kb)
    (tmp_path / "data" / "index" / INDEX_FILE).unlink()
    reopened = KnowledgeBase.open(Settings(data_dir=tmp_path / "data", models_dir=models_dir, database_url=database_url))
    try:
        assert index_ids(reopened) == expected
        assert reopened.stats().vectors == len(expected)
        assert reopened.engine._embedder is None, "rebuilding must not load the model or re-embed"
        assert (tmp_path / "data" / "index" / INDEX_FILE).exists()
    finally:
        reopened.close()


def test_stale_index_from_an_earlier_state_is_repaired_at_open(make_kb, tmp_path, embedder, models_dir, database_url):
    kb = make_kb()
    kb.add_documents([guidance("en.md", EN)])
    kb.save_index()
    saved = tmp_path / "old-index"
    shutil.copytree(tmp_path / "data" / "index", saved)
    kb.add_documents([guidance("zh.md", ZH)])
    kb.delete(["/docs/en.md"])
    kb.close()
    for name in (INDEX_FILE, DELTA_FILE, MANIFEST_FILE):
        shutil.copy(saved / name, tmp_path / "data" / "index" / name)
    reopened = KnowledgeBase.open(
        Settings(data_dir=tmp_path / "data", models_dir=models_dir, database_url=database_url), embedder=embedder)
    try:
        assert index_ids(reopened) == db_chunk_ids(reopened)
        assert [h.source for h in reopened.search("打破部门壁垒", k=5).results] == ["/docs/zh.md"]
    finally:
        reopened.close()


def test_another_instance_sees_new_documents_after_refresh(make_kb, tmp_path, embedder, models_dir, database_url):
    writer = make_kb()
    reader = make_kb()
    assert reader.stats().documents == 0
    writer.add_documents([guidance("zh.md", ZH)])
    hits = reader.search("部门之间的合作", k=3).results
    assert [h.source for h in hits] == ["/docs/zh.md"]
    writer.delete(["/docs/zh.md"])
    assert reader.search("部门之间的合作", k=3).results == []


def test_opening_with_a_different_model_is_refused_with_what_to_do(make_kb, tmp_path, models_dir, database_url):
    kb = make_kb()
    kb.add_documents([guidance("en.md", EN)])
    kb.close()
    other = Settings(data_dir=tmp_path / "data", models_dir=models_dir, database_url=database_url,
                     embed_model="sentence-transformers/all-MiniLM-L6-v2")
    with pytest.raises(ModelMismatchError, match="reindex --reembed"):
        KnowledgeBase.open(other)


def test_vectors_in_database_match_the_index(make_kb):
    kb = make_kb()
    kb.add_documents([guidance("en.md", EN)])
    with kb.store.session() as s:
        chunk = s.scalars(select(Chunk)).first()
        title = s.scalar(select(Document.title))
    stored = np.frombuffer(chunk.vector, dtype="<f4")
    assert np.allclose(stored, kb.indexes.vectors.reconstruct(chunk.id))
    assert abs(float(np.linalg.norm(stored)) - 1.0) < 1e-4
    assert title == "en.md"


def _refuse_one_source(kb: KnowledgeBase, source: str) -> None:
    """A real database trigger that rejects one document, as a broken row would be."""
    from sqlalchemy import text

    with kb.store.engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.execute(text(
                f"CREATE TRIGGER refuse BEFORE INSERT ON documents WHEN NEW.source = '{source}' "
                "BEGIN SELECT RAISE(ABORT, 'refused by trigger'); END"))
        else:
            conn.execute(text(
                "CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN "
                f"IF NEW.source = '{source}' THEN RAISE EXCEPTION 'refused by trigger'; END IF; "
                "RETURN NEW; END $$ LANGUAGE plpgsql"))
            conn.execute(text("CREATE TRIGGER refuse BEFORE INSERT ON documents FOR EACH ROW EXECUTE FUNCTION refuse()"))


def test_a_document_the_database_refuses_fails_alone_and_the_batch_still_goes_in(make_kb):
    kb = make_kb()
    _refuse_one_source(kb, "/docs/bad.md")
    outcomes = kb.add_documents([guidance("a.md", EN), guidance("bad.md", ZH), note("N-1", "Bill charged twice.")])
    assert [o.status for o in outcomes] == ["added", "failed", "added"]
    assert "refused by trigger" in outcomes[1].error
    assert kb.stats().documents == 2
    assert index_ids(kb) == db_chunk_ids(kb)


def test_values_too_long_for_a_column_are_reported_by_field(make_kb):
    kb = make_kb()
    long_id = note("N-" + "9" * 200, "Router drops the connection.")
    outcomes = kb.add_documents([long_id, guidance("a.md", EN)])
    assert outcomes[0].status == "failed" and "note_id" in outcomes[0].error
    assert outcomes[1].status == "added"
