"""The change sequence: every write search depends on moves it, in the same transaction; nothing else does."""

from __future__ import annotations

import pytest
from sqlalchemy import event, insert, inspect, select, text, update

from kb.services.audit import record
from kb.services.searches import record_search
from kb.services.topics import set_document_topics
from kb.storage.models import Chunk, Document, Note
from kb.storage.store import Store
from tests.test_knowledge_base import guidance, note

WATCHED = ("chunks", "documents", "document_tags", "notes")


def seq(store: Store) -> int:
    return int(store.state().rsplit(":", 1)[1])


def test_every_searchable_table_has_its_triggers_after_the_migrations(database_url):
    store = Store(database_url)
    try:
        with store.engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                rows = conn.execute(text("SELECT tbl_name FROM sqlite_master WHERE type = 'trigger' "
                                         "AND name LIKE 'kb_changes_%'")).scalars().all()
                assert sorted(set(rows)) == sorted(WATCHED + ("kb_meta",)) and len(rows) == 3 * (len(WATCHED) + 1)
            else:
                rows = conn.execute(text("SELECT DISTINCT event_object_table FROM information_schema.triggers "
                                         "WHERE trigger_name LIKE 'kb_changes_%'")).scalars().all()
                assert sorted(rows) == sorted(WATCHED + ("kb_meta",))
        assert "kb_changes" in inspect(store.engine).get_table_names()
    finally:
        store.dispose()


def test_ingest_topic_edits_notes_and_deletes_move_the_sequence_and_other_writes_do_not(make_kb):
    kb = make_kb()
    store = kb.store
    origin, start = store.state().rsplit(":", 1)
    kb.add_documents([guidance("en.md", "Refunds are paid within five days."), note("N-1", "Bill charged twice.")])
    after_ingest = seq(store)
    assert after_ingest > int(start)

    record(store, "someone", "search", "refunds")
    record_search(store, "someone", "refunds", "search", 1)
    store.set_meta("anything", "value")
    assert seq(store) == after_ingest, "writes that change nothing searchable must not move it"
    kb.engine.indexes.rebuild(recompute_centroids=True)  # `kb reindex`: new centroids, no chunk touched
    assert seq(store) > after_ingest, "new centroids change every vector a search compares"
    after_ingest = seq(store)

    with store.session() as s:
        doc_id = s.scalar(select(Document.id).where(Document.source == "/docs/en.md"))
    set_document_topics(kb.engine, doc_id, ["billing"])
    after_topics = seq(store)
    assert after_topics > after_ingest

    with store.session() as s:
        s.execute(update(Note).values(status="open"))
    after_note = seq(store)
    assert after_note > after_topics

    with store.session() as s:
        s.execute(update(Document).where(Document.id == doc_id).values(visibility="partner"))
    after_visibility = seq(store)
    assert after_visibility > after_note

    kb.delete(["/docs/en.md"])
    assert seq(store) > after_visibility
    assert store.state().startswith(origin + ":")


def test_a_write_that_rolls_back_leaves_the_sequence_where_it_was(make_kb):
    kb = make_kb()
    kb.add_documents([guidance("en.md", "Refunds are paid within five days.")])
    before = kb.store.state()
    with pytest.raises(RuntimeError), kb.store.session() as s:
        doc_id = s.scalar(select(Document.id))
        s.execute(insert(Chunk), [{"document_id": doc_id, "ordinal": 9, "start": 0, "end": 1, "lang": "en",
                                   "token_count": 1, "text": "x", "vector": b"\0" * 1536, "terms": "x"}])
        raise RuntimeError("changed my mind")
    assert kb.store.state() == before


def test_the_freshness_check_is_one_cheap_read(make_kb):
    kb = make_kb()
    kb.add_documents([guidance("en.md", "Refunds are paid within five days.")])
    kb.store.state()
    statements: list[str] = []

    def remember(conn, cursor, statement, parameters, context, executemany) -> None:
        statements.append(statement)

    event.listen(kb.store.engine, "before_cursor_execute", remember)
    try:
        kb.store.state()
    finally:
        event.remove(kb.store.engine, "before_cursor_execute", remember)
    assert len(statements) == 1 and statements[0].lstrip().upper().startswith("SELECT"), statements
