"""A process that writes but never searches (`kb worker`): no search index of its own, the centroids kept for all."""

from __future__ import annotations

from indexer.writer import add_documents, delete_documents
from kb.config import Settings
from kb.engine import Engine
from kb.index.centering import MIN_CHUNKS
from tests.test_knowledge_base import guidance

SUBJECTS = ("refunds", "call-backs", "installations", "outages", "invoices", "data quality", "loyalty points",
            "complaints", "change leadership", "workshops", "partners", "silos")


def _docs(count: int, start: int = 0) -> list:
    return [guidance(f"g{i}.md", f"Guidance {i} on {SUBJECTS[i % len(SUBJECTS)]}: agents answer within {i + 2} hours "
                                 f"and record what was promised, case number {1000 + i}.")
            for i in range(start, start + count)]


def test_a_writer_that_never_searches_keeps_no_index_and_searchers_follow_it(tmp_path, models_dir, embedder,
                                                                               database_url):
    def settings(name: str) -> Settings:
        return Settings(data_dir=tmp_path / name, models_dir=models_dir, database_url=database_url)

    writer = Engine.open(settings("worker"), embedder=embedder, searchable=False)
    searcher = Engine.open(settings("web"), embedder=embedder)
    try:
        outcomes = add_documents(writer, _docs(MIN_CHUNKS + 5))
        assert {o.status for o in outcomes} == {"added"}
        assert writer.indexes.vectors is None and len(writer.indexes.keywords.ids()) == 0
        assert not (tmp_path / "worker" / "index").exists() or not any((tmp_path / "worker" / "index").iterdir())
        writer.save_index()
        assert not (tmp_path / "worker" / "index").exists() or not any((tmp_path / "worker" / "index").iterdir())

        # The writer kept the language centroids in the database, as a searching writer would have.
        assert writer.indexes.centroids.overall is not None
        assert writer.store.get_meta("centroids") is not None
        first_version = writer.indexes.centroids.version

        # The searching process follows: every chunk found, vectors centered with the writer's centroids.
        searcher.refresh()
        assert searcher.indexes.centroids.version == first_version
        assert len(searcher.indexes.vectors) == len(writer.store.chunk_ids())
        hits = searcher.indexes.keywords.search(searcher.analyzer.term_texts("loyalty points"), 5)
        assert len(hits[0]) > 0

        # Past the drift, the writer recomputes them, and the searcher re-centers at its next follow.
        add_documents(writer, _docs(MIN_CHUNKS, start=MIN_CHUNKS + 5))
        assert writer.indexes.centroids.version != first_version
        searcher.refresh()
        assert searcher.indexes.centroids.version == writer.indexes.centroids.version
        assert len(searcher.indexes.vectors) == len(writer.store.chunk_ids())

        # Its per-language counts are read a range of new ids at a time, and in full again after a removal.
        assert writer.indexes.language_counts() == writer.store.chunk_language_counts()
        delete_documents(writer, ["/docs/g0.md", "/docs/g1.md"])
        assert writer.indexes.language_counts() == writer.store.chunk_language_counts()
        add_documents(writer, _docs(3, start=100))
        assert writer.indexes.language_counts() == writer.store.chunk_language_counts() == {"en": 2 * MIN_CHUNKS + 6}
    finally:
        writer.close()
        searcher.close()
