"""The chunk removal log: a catch-up reads the chunks added and removed since it last looked, not every id."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import select, text

from kb.config import Settings
from kb.knowledge_base import KnowledgeBase
from kb.storage.models import Chunk, Document
from tests.test_knowledge_base import guidance


def chunk_ids_of(kb: KnowledgeBase, source: str) -> list[int]:
    with kb.store.session() as s:
        return sorted(s.scalars(select(Chunk.id).join(Document).where(Document.source == source)))


def test_deleting_documents_logs_each_chunk_and_changes_reads_only_what_moved(make_kb):
    kb = make_kb()
    kb.add_documents([guidance("a.md", "Refunds are paid within five days."),
                      guidance("b.md", "Escalate a complaint to the team lead after two calls.")])
    store = kb.store
    last_id, position = store.last_chunk_id(), store.last_removal()
    removed = chunk_ids_of(kb, "/docs/a.md")
    kb.delete(["/docs/a.md"])  # chunks go by cascade from their document
    kb.add_documents([guidance("c.md", "Call a customer back within one working day.")])
    changes = store.chunk_changes(last_id, position)
    assert changes.removed.tolist() == removed
    assert changes.added.tolist() == chunk_ids_of(kb, "/docs/c.md") and changes.added.min() > last_id
    assert changes.removal_position == store.last_removal() > position
    nothing = store.chunk_changes(store.last_chunk_id(), changes.removal_position)
    assert len(nothing.added) == 0 and len(nothing.removed) == 0


def test_a_position_older_than_the_pruned_log_means_read_every_id(make_kb):
    kb = make_kb()
    for name in ("a", "b", "c"):
        kb.add_documents([guidance(f"{name}.md", f"Guidance {name}: refunds are paid within five days.")])
    store = kb.store
    kb.delete(["/docs/a.md"])
    after_first = store.last_removal()
    kb.delete(["/docs/b.md"])
    store.prune_chunk_removals(keep=1)
    assert store.chunk_changes(0, 0) is None  # the removal of a.md's chunks is no longer in the log
    assert store.chunk_changes(0, after_first) is not None  # b.md's removals are still there


def test_another_node_follows_deletes_and_adds_through_the_log(make_kb, tmp_path, models_dir, embedder):
    writer = make_kb()
    writer.add_documents([guidance("a.md", "Refunds are paid within five days."),
                          guidance("b.md", "Escalate a complaint to the team lead after two calls.")])
    reader = KnowledgeBase.open(Settings(data_dir=tmp_path / "node-b", models_dir=models_dir,
                                         database_url=writer.settings.database_url), embedder=embedder)
    try:
        assert reader.search("refunds paid", k=5, mode="keyword").results
        position = reader.engine.indexes._removals
        writer.delete(["/docs/a.md"])
        writer.add_documents([guidance("c.md", "Call a customer back within one working day.")])
        found = reader.search("call customer back working day", k=5, mode="keyword").results
        assert [r.source for r in found] == ["/docs/c.md"]
        assert not reader.search("refunds paid", k=5, mode="keyword").results
        assert reader.engine.indexes._removals > position  # followed through the log
        indexes = reader.engine.indexes
        db_ids = reader.store.chunk_ids()
        assert np.array_equal(indexes.table.ids, db_ids)
        assert np.array_equal(indexes.keywords.ids(), db_ids) and np.array_equal(indexes.vectors.ids(), db_ids)
    finally:
        reader.close()


def test_a_truncate_tells_every_reader_to_read_every_id(make_kb):
    kb = make_kb()
    kb.add_documents([guidance("a.md", "Refunds are paid within five days.")])
    store = kb.store
    position = store.last_removal()
    if store.engine.dialect.name == "sqlite":
        pytest.skip("SQLite has no TRUNCATE; its deletes are logged row by row")
    with store.engine.begin() as connection:
        connection.execute(text("TRUNCATE chunks CASCADE"))
    assert store.chunk_changes(0, position) is None
