"""The open resources of one data directory: store, indexes, embedder and analyzer.

Search, ingest writing and the services each take an `Engine`; the
`KnowledgeBase` facade is only for callers at the top (command line, portal).
The database is the source of truth; the indexes (`kb.index.indexes`) are caches
that follow it through `refresh`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from sqlalchemy import func, select, update

from kb.config import Settings
from kb.embed.embedder import Embedder, model_id_for
from kb.errors import Conflict
from kb.index.indexes import Indexes
from kb.storage.models import Chunk, Document
from kb.storage.store import Store, vector_to_bytes
from kb.text.analyzer import Analyzer, analyzer_version, load_user_words
from kb.text.chunking import warm_up_text_tools
from kb.text.privacy import PiiSpan, index_text
from kb.text.structure import embed_text


class ModelMismatchError(Conflict):
    """The knowledge base's vectors were made by another model than the configured one."""

    status = 409


@dataclass
class Stats:
    documents: int
    chunks: int
    vectors: int
    languages: dict[str, int] = field(default_factory=dict)
    kinds: dict[str, int] = field(default_factory=dict)
    chunk_languages: dict[str, int] = field(default_factory=dict)
    model: str | None = None

    def to_dict(self) -> dict:
        return {
            "documents": self.documents, "chunks": self.chunks, "vectors": self.vectors,
            "languages": self.languages, "kinds": self.kinds,
            "chunk_languages": self.chunk_languages, "model": self.model,
        }


class Engine:
    """Everything a query or a write needs, opened once per process and data directory."""

    def __init__(self, settings: Settings, store: Store, embedder: Embedder | None = None,
                 searchable: bool = True) -> None:
        self.settings = settings
        self.store = store
        self.model_id = model_id_for(settings)
        if embedder is not None and embedder.model_id != self.model_id:
            raise ValueError(f"embedder {embedder.model_id!r} does not match the configured model {self.model_id!r}")
        self._embedder = embedder
        self._analyzer: Analyzer | None = None
        self.lock = threading.RLock()
        self.analyzer_version = analyzer_version(load_user_words(settings.resolved_dictionary_file))
        self.indexes = Indexes(settings, store, self.model_id, self.analyzer_version, searchable)

    @classmethod
    def open(cls, settings: Settings | None = None, check_model: bool = True,
             embedder: Embedder | None = None, searchable: bool = True) -> Engine:
        """Open (creating if needed) the data directory described by `settings` or the environment.

        `check_model=False` is for re-embedding after a model change, the one
        operation allowed while stored vectors come from another model. An
        already loaded `embedder` may be shared between engines. `searchable=False`
        is for a process that only writes (`kb worker`): it loads and keeps no
        search index, and whoever searches follows its writes through the database.
        """
        settings = settings or Settings.from_env()
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = cls(settings, Store(settings.resolved_database_url), embedder, searchable)
        if check_model:
            engine._check_model()
        engine._follow_analyzer()
        engine.indexes.open()
        return engine

    def close(self) -> None:
        self.save_index()
        self.store.dispose()

    # -- model -----------------------------------------------------------------

    @property
    def embedder(self) -> Embedder:
        """The embedding model, loaded on first use (stats and deletes never need it)."""
        if self._embedder is None:
            with self.lock:
                if self._embedder is None:
                    # Segmenters and detectors load their data (~1.5 s) while the model loads.
                    threading.Thread(target=warm_up_text_tools, name="kb-warm-up", daemon=True).start()
                    self._embedder = Embedder(self.settings)
        return self._embedder

    def _check_model(self) -> None:
        stored = self.store.get_meta("model_id")
        if stored is None or stored == self.model_id:
            return
        if self.store.has_chunks():
            raise ModelMismatchError(
                f"this knowledge base's vectors were made with {stored!r} but the configured model is "
                f"{self.model_id!r}: set KB_EMBED_MODEL to the original model, or run "
                "`kb reindex --reembed` to embed everything again with the new one"
            )

    def record_model(self, dimension: int) -> None:
        """Remember which model (and dimension) made the stored vectors."""
        if self.store.get_meta("model_id") != self.model_id:
            self.store.set_meta("model_id", self.model_id)
        if self.store.get_meta("dimension") != str(dimension):
            self.store.set_meta("dimension", str(dimension))

    # -- keywords ----------------------------------------------------------------

    @property
    def analyzer(self) -> Analyzer:
        """Keyword segmentation (Thai, Chinese, Latin), with the knowledge base's own words."""
        if self._analyzer is None:
            with self.lock:
                if self._analyzer is None:
                    self._analyzer = Analyzer(load_user_words(self.settings.resolved_dictionary_file))
        return self._analyzer

    def _follow_analyzer(self) -> None:
        """Segment stored chunks again when the analyzer changed (new dictionary words, new segmenters).

        Stored terms from another analyzer would no longer match the terms of
        a query, so keyword search would quietly miss them.
        """
        if self.store.get_meta("analyzer") == self.analyzer_version:
            return
        if self.store.has_chunks():
            self._reanalyze_all()
        else:
            self.store.set_meta("analyzer", self.analyzer_version)

    # -- indexes -----------------------------------------------------------------

    def refresh(self) -> bool:
        """Follow changes made by other processes; cheap when there are none."""
        return self.indexes.refresh()

    def save_index(self) -> None:
        if self.indexes.dirty and not self.indexes.batching:
            self.indexes.save()

    @contextmanager
    def writes_batched(self) -> Iterator[None]:
        """A run of writes (a queued job's files) after which the indexes follow and are saved once."""
        with self.indexes.writes_batched():
            yield
        self.save_index()

    def reindex(self, reembed: bool = False, reanalyze: bool = False) -> int:
        """Rebuild the indexes (and language centroids) from the database.

        `reembed` embeds every chunk again first (after a model change);
        `reanalyze` segments every chunk again (after adding dictionary words).
        """
        with self.lock:
            if reembed:
                self._reembed_all()
            if reanalyze:
                self._reanalyze_all()
            self.indexes.rebuild(recompute_centroids=True)
            self.indexes.save()
            return len(self.indexes.vectors) if self.indexes.vectors is not None else 0

    def _reanalyze_all(self, batch: int = 2000) -> None:
        with self.store.session() as s:
            ids = list(s.scalars(select(Chunk.id).order_by(Chunk.id)))
        for i in range(0, len(ids), batch):
            with self.store.session() as s:
                rows = s.execute(
                    select(Chunk.id, Chunk.text, Chunk.start, Document.personal_data)
                    .join(Document, Document.id == Chunk.document_id).where(Chunk.id.in_(ids[i : i + batch]))
                ).all()
                s.execute(update(Chunk), [
                    {"id": r.id, "terms": " ".join(self.analyzer.term_texts(
                        index_text(r.text, [PiiSpan.from_dict(d) for d in r.personal_data or []], r.start)))}
                    for r in rows
                ])
        self.store.set_meta("analyzer", self.analyzer_version)

    def _reembed_all(self) -> None:
        chunk_ids, texts = stored_model_inputs(self.store)
        vectors = self.embedder.encode_passages(texts) if texts else None
        with self.store.session() as s:
            for chunk_id, vector in zip(chunk_ids, vectors if vectors is not None else [], strict=False):
                s.get(Chunk, chunk_id).vector = vector_to_bytes(vector)
        self.record_model(self.embedder.dimension)

    def stats(self) -> Stats:
        self.refresh()
        with self.store.session() as s:
            documents = s.scalar(select(func.count(Document.id)))
            chunks = s.scalar(select(func.count(Chunk.id)))
            languages = dict(s.execute(select(Document.lang, func.count()).group_by(Document.lang)).all())
            kinds = dict(s.execute(select(Document.kind, func.count()).group_by(Document.kind)).all())
            chunk_langs = dict(s.execute(select(Chunk.lang, func.count()).group_by(Chunk.lang)).all())
        vectors = len(self.indexes.vectors) if self.indexes.vectors is not None else 0
        return Stats(documents, chunks, vectors, languages, kinds, chunk_langs, self.store.get_meta("model_id"))


def stored_model_inputs(store: Store, after_id: int = 0) -> tuple[list[int], list[str]]:
    """The ids of the stored chunks past `after_id` and what the model was given for each (heading path, masked text)."""
    with store.session() as s:
        rows = s.execute(
            select(Chunk.id, Chunk.text, Chunk.start, Chunk.headings, Document.personal_data, Document.kind,
                   Document.title)
            .join(Document, Document.id == Chunk.document_id).where(Chunk.id > after_id).order_by(Chunk.id)
        ).all()
    texts = [embed_text(r.kind, r.title, r.headings,
                        index_text(r.text, [PiiSpan.from_dict(d) for d in r.personal_data or []], r.start))
             for r in rows]
    return [r.id for r in rows], texts
