"""The chunk table saved beside the indexes: taken as it is when current, caught up when behind, never used stale."""

from __future__ import annotations

import shutil

import numpy as np
from sqlalchemy import select

from kb.config import Settings
from kb.index.chunk_table import ARRAY_FILES, DOCS_FILE, MANIFEST_FILE, ChunkTable, SearchFilters
from kb.index.indexes import can_catch_up
from kb.knowledge_base import KnowledgeBase
from kb.storage.models import Document
from tests.test_knowledge_base import EN, ZH, db_chunk_ids, guidance, note

TABLE_FILES = [*ARRAY_FILES.values(), DOCS_FILE, MANIFEST_FILE]


def reopen(tmp_path, models_dir, embedder, database_url) -> KnowledgeBase:
    settings = Settings(data_dir=tmp_path / "data", models_dir=models_dir, database_url=database_url)
    return KnowledgeBase.open(settings, embedder=embedder)


def test_a_current_saved_table_opens_memory_mapped_with_its_documents(make_kb, tmp_path, models_dir, embedder,
                                                                      database_url):
    kb = make_kb()
    kb.add_documents([guidance("en.md", EN, tags=["silos"]), note("N-1", "Bill charged twice.")])
    expected_docs = dict(kb.indexes.table.docs)
    kb.close()
    reopened = reopen(tmp_path, models_dir, embedder, database_url)
    try:
        table = reopened.indexes.table
        assert isinstance(table.ids, np.memmap) and isinstance(table.langs, np.memmap)
        assert table.ids.tolist() == db_chunk_ids(reopened)
        assert table.docs == expected_docs
        assert [h.source for h in reopened.search("charged twice", k=3, kind="note").results] == ["/notes/n.csv#N-1"]
        assert reopened.indexes.dirty is False
    finally:
        reopened.close()


def test_a_table_saved_at_an_earlier_state_is_caught_up_at_open(make_kb, tmp_path, models_dir, embedder,
                                                                database_url):
    kb = make_kb()
    kb.add_documents([guidance("en.md", EN)])
    kb.close()
    saved = tmp_path / "old-table"
    saved.mkdir()
    for name in TABLE_FILES:
        shutil.copy(tmp_path / "data" / "index" / name, saved / name)
    kb = make_kb()
    kb.add_documents([guidance("zh.md", ZH, tags=["silos"])])
    kb.delete(["/docs/en.md"])
    kb.close()
    for name in TABLE_FILES:
        shutil.copy(saved / name, tmp_path / "data" / "index" / name)
    reopened = reopen(tmp_path, models_dir, embedder, database_url)
    try:
        table = reopened.indexes.table
        assert table.ids.tolist() == db_chunk_ids(reopened)
        with reopened.store.session() as s:
            assert set(table.docs) == set(s.scalars(select(Document.id)))
        assert [h.source for h in reopened.search("打破部门壁垒", k=5, filters=SearchFilters(tags=["silos"])).results] == ["/docs/zh.md"]
    finally:
        reopened.close()
    again = ChunkTable.load(tmp_path / "data" / "index")
    assert again is not None and again[1]["state"] == reopened.store.state(), "the caught-up table is saved"


def test_a_table_from_another_database_or_a_later_state_is_not_used():
    assert can_catch_up("abc:3", "abc:3") and can_catch_up("abc:3", "abc:9")
    assert not can_catch_up("abc:9", "abc:3"), "a database restored to an earlier point"
    assert not can_catch_up("abc:3", "xyz:3"), "another database"
    assert not can_catch_up("garbage", "abc:3")


def test_a_broken_table_file_is_rebuilt_from_the_database(make_kb, tmp_path, models_dir, embedder, database_url):
    kb = make_kb()
    kb.add_documents([guidance("en.md", EN), guidance("zh.md", ZH)])
    kb.close()
    (tmp_path / "data" / "index" / ARRAY_FILES["doc_ids"]).write_bytes(b"not numpy")
    assert ChunkTable.load(tmp_path / "data" / "index") is None
    reopened = reopen(tmp_path, models_dir, embedder, database_url)
    try:
        assert reopened.indexes.table.ids.tolist() == db_chunk_ids(reopened)
        assert len(reopened.search("打破部门壁垒", k=5).results) >= 1
    finally:
        reopened.close()
    assert ChunkTable.load(tmp_path / "data" / "index") is not None
