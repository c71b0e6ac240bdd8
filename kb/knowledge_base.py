"""One object per data directory: the open store, the embedder and the indexes.

The command line and the portal each create one `KnowledgeBase` and make every
change and every query through it. The database is the source of truth; the
search indexes (`kb.index.indexes`) are caches that follow it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import selectinload

from indexer.prepare import PreparedDocument, TextPreparer, analyzer_version, content_hash, index_text
from kb.access import OPERATOR, Viewer, normalize_visibility
from kb.config import Settings
from kb.documents import KINDS, NOTE, DocumentInput
from kb.embed.embedder import Embedder, model_id_for
from kb.index.chunk_table import SearchFilters
from kb.index.indexes import Indexes
from kb.index.keywords import Analyzer, load_user_words
from kb.search.pipeline import SearchRequest, SearchResponse
from kb.search.pipeline import search as run_search
from kb.services.topics import apply_tag_edits, tag_edits_by_source
from kb.storage.store import Chunk, Document, DocumentTag, Note, Store, utcnow, vector_to_bytes
from kb.text.chunking import warm_up_text_tools
from kb.text.privacy import PiiSpan, mask_personal_data

MAX_TITLE_CHARS = 120


class ModelMismatchError(RuntimeError):
    """The knowledge base's vectors were made by another model than the configured one."""


@dataclass
class AddOutcome:
    source: str
    status: str  # "added", "updated", "skipped" or "failed"
    doc_id: int | None = None
    chunks: int = 0
    error: str | None = None


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


@dataclass
class IngestPlan:
    """What `KnowledgeBase.triage` decided for a batch; `complete` it, then `commit` it."""

    docs: list[DocumentInput]
    outcomes: dict[int, AddOutcome] = field(default_factory=dict)
    waiting: list[tuple[int, DocumentInput]] = field(default_factory=list)
    todo: list[tuple[int, PreparedDocument]] = field(default_factory=list)
    existing: dict[str, str] = field(default_factory=dict)

    def complete(self, results: list[PreparedDocument | str]) -> IngestPlan:
        """Take the prepared documents (or failure reasons) for `waiting`, in order."""
        for (i, doc), result in zip(self.waiting, results, strict=True):
            if isinstance(result, str):
                self.outcomes[i] = AddOutcome(doc.source, "failed", error=result)
            else:
                self.todo.append((i, result))
        self.waiting = []
        return self


class KnowledgeBase:
    """The knowledge base of one data directory."""

    def __init__(self, settings: Settings, store: Store, embedder: Embedder | None = None) -> None:
        self.settings = settings
        self.store = store
        self.model_id = model_id_for(settings)
        if embedder is not None and embedder.model_id != self.model_id:
            raise ValueError(f"embedder {embedder.model_id!r} does not match the configured model {self.model_id!r}")
        self._embedder = embedder
        self._preparer: TextPreparer | None = None
        self._analyzer: Analyzer | None = None
        self._lock = threading.RLock()
        self.analyzer_version = analyzer_version(load_user_words(settings.resolved_dictionary_file))
        self.indexes = Indexes(settings, store, self.model_id, self.analyzer_version)

    @classmethod
    def open(
        cls, settings: Settings | None = None, check_model: bool = True, embedder: Embedder | None = None
    ) -> KnowledgeBase:
        """Open (creating if needed) the knowledge base described by `settings` or the environment.

        `check_model=False` is for re-embedding after a model change, the one
        operation allowed while stored vectors come from another model. An
        already loaded `embedder` may be shared between knowledge bases.
        """
        settings = settings or Settings.from_env()
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        kb = cls(settings, Store(settings.resolved_database_url), embedder)
        if check_model:
            kb._check_model()
        kb._follow_analyzer()
        kb.indexes.open()
        return kb

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

    def close(self) -> None:
        self.save_index()
        self.store.dispose()

    def __enter__(self) -> KnowledgeBase:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- model -----------------------------------------------------------------

    @property
    def embedder(self) -> Embedder:
        """The embedding model, loaded on first use (stats and deletes never need it)."""
        if self._embedder is None:
            with self._lock:
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

    def _record_model(self, dimension: int) -> None:
        if self.store.get_meta("model_id") != self.model_id:
            self.store.set_meta("model_id", self.model_id)
        if self.store.get_meta("dimension") != str(dimension):
            self.store.set_meta("dimension", str(dimension))

    # -- vector index ------------------------------------------------------------

    @property
    def analyzer(self) -> Analyzer:
        """Keyword segmentation (Thai, Chinese, Latin), with the knowledge base's own words."""
        if self._analyzer is None:
            with self._lock:
                if self._analyzer is None:
                    self._analyzer = Analyzer(load_user_words(self.settings.resolved_dictionary_file))
        return self._analyzer

    def refresh(self) -> bool:
        """Follow changes made by other processes; cheap when there are none."""
        return self.indexes.refresh()

    def save_index(self) -> None:
        if self.indexes.dirty:
            self.indexes.save()

    def reindex(self, reembed: bool = False, reanalyze: bool = False) -> int:
        """Rebuild the indexes (and language centroids) from the database.

        `reembed` embeds every chunk again first (after a model change);
        `reanalyze` segments every chunk again (after adding dictionary words).
        """
        with self._lock:
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
        with self.store.session() as s:
            rows = s.execute(
                select(Chunk.id, Chunk.text, Chunk.start, Document.personal_data)
                .join(Document, Document.id == Chunk.document_id).order_by(Chunk.id)
            ).all()
        texts = [index_text(r.text, [PiiSpan.from_dict(d) for d in r.personal_data or []], r.start) for r in rows]
        vectors = self.embedder.encode_passages(texts) if rows else None
        with self.store.session() as s:
            for (chunk_id, *_), vector in zip(rows, vectors if vectors is not None else [], strict=False):
                s.get(Chunk, chunk_id).vector = vector_to_bytes(vector)
        self._record_model(self.embedder.dimension)

    # -- ingest ------------------------------------------------------------------

    @property
    def preparer(self) -> TextPreparer:
        """Cleaning and chunking with the model's tokenizer (loaded on first use, without the model)."""
        if self._preparer is None:
            with self._lock:
                if self._preparer is None:
                    self._preparer = TextPreparer.from_settings(self.settings, self.analyzer)
        return self._preparer

    def prepare(self, doc: DocumentInput) -> PreparedDocument:
        """Clean, detect languages, segment and chunk one document (no embedding yet)."""
        return self.preparer.prepare(doc)

    def add_documents(self, docs: list[DocumentInput]) -> list[AddOutcome]:
        """Add or update documents; unchanged ones are skipped. Same as `commit(plan(docs))`."""
        return self.commit(self.plan(docs))

    def plan(self, docs: list[DocumentInput]) -> IngestPlan:
        """Triage a batch and prepare (clean and chunk) the documents that changed."""
        plan = self.triage(docs)
        return plan.complete(self.preparer.prepare_all([doc for _, doc in plan.waiting]))

    def triage(self, docs: list[DocumentInput]) -> IngestPlan:
        """Which documents fail validation, which are unchanged, and which need preparing.

        Only reads the database, so a large ingest can prepare the waiting
        documents elsewhere (see `indexer.pipeline`) and `commit` them here.
        """
        plan = IngestPlan(docs)
        with self.store.session() as s:
            plan.existing = dict(
                s.execute(
                    select(Document.source, Document.content_hash).where(
                        Document.source.in_([d.source for d in docs])
                    )
                ).all()
            )
        for i, doc in enumerate(docs):
            problem = _validate(doc)
            if problem:
                plan.outcomes[i] = AddOutcome(doc.source, "failed", error=problem)
            elif plan.existing.get(doc.source) == content_hash(doc):
                plan.outcomes[i] = AddOutcome(doc.source, "skipped")
            else:
                plan.waiting.append((i, doc))
        return plan

    def commit(self, plan: IngestPlan, atomic: bool = False) -> list[AddOutcome]:
        """Embed the planned documents in one call and write them in one transaction.

        Each document gets its own savepoint, so one that the database refuses
        never takes the others down. With `atomic` (imports that promise all or
        nothing) the database's refusal is raised instead and nothing is written.
        """
        if plan.todo:
            texts = [p.index_text(c) for _, p in plan.todo for c in p.chunks]
            vectors = self.embedder.encode_passages(texts)
            self._record_model(self.embedder.dimension)
            self._write(plan.todo, vectors, plan.outcomes, plan.existing, atomic)
            self.indexes.refresh(writer=True)
        return [plan.outcomes[i] for i in range(len(plan.docs))]

    def _write(self, todo, vectors, outcomes, existing, atomic=False):
        """Store a prepared batch: a few bulk statements for the whole batch.

        If the database refuses the batch (one document breaks a constraint, or
        another process changed one meanwhile), it is written again one document
        at a time, each in its own savepoint, so that the others still go in.
        """
        items, offset = [], 0
        for i, prep in todo:
            items.append((i, prep, vectors[offset : offset + len(prep.chunks)]))
            offset += len(prep.chunks)
        try:
            with self.store.session() as s:
                results = list(zip(items, self._write_rows(s, [(p, v) for _, p, v in items]), strict=True))
        except DBAPIError:
            if atomic:
                raise
            results = []
            with self.store.session() as s:
                for item in items:
                    try:
                        with s.begin_nested():
                            results.append((item, self._write_rows(s, [(item[1], item[2])])[0]))
                    except DBAPIError as exc:
                        outcomes[item[0]] = AddOutcome(
                            item[1].doc.source, "failed",
                            error=f"the database refused it ({exc.orig}); was it changed by another process?",
                        )
        for (i, prep, _), doc_id in results:
            status = "updated" if prep.doc.source in existing else "added"
            outcomes[i] = AddOutcome(prep.doc.source, status, doc_id, len(prep.chunks))

    def _write_rows(self, s, items: list[tuple[PreparedDocument, np.ndarray]]) -> list[int]:
        """Insert or replace documents with their tags, notes and chunks; returns their ids."""
        now = utcnow()
        sources = [prep.doc.source for prep, _ in items]
        current = dict(s.execute(select(Document.source, Document.id).where(Document.source.in_(sources))).all())
        if current:
            replaced = list(current.values())
            for table in (Chunk, DocumentTag, Note):
                s.execute(delete(table).where(table.document_id.in_(replaced)))
        values = [_document_values(prep, now) for prep, _ in items]
        updates = [{"id": current[v["source"]], **v} for v in values if v["source"] in current]
        if updates:
            s.execute(update(Document), updates)
        new = [{**v, "created_at": now} for v in values if v["source"] not in current]
        if new:
            new_ids = s.scalars(insert(Document).returning(Document.id, sort_by_parameter_order=True), new)
            current.update(zip((v["source"] for v in new), new_ids, strict=True))
        doc_ids = [current[source] for source in sources]
        edits = tag_edits_by_source(s, sources)
        tags = [
            {"document_id": doc_id, "tag": tag}
            for doc_id, (prep, _) in zip(doc_ids, items, strict=True)
            for tag in apply_tag_edits(prep.doc.tags, edits.get(prep.doc.source, []))
        ]
        if tags:
            s.execute(insert(DocumentTag), tags)
        notes = [
            {"document_id": doc_id, **prep.doc.note.__dict__}
            for doc_id, (prep, _) in zip(doc_ids, items, strict=True) if prep.doc.note is not None
        ]
        if notes:
            s.execute(insert(Note), notes)
        chunks = [
            {
                "document_id": doc_id, "ordinal": k, "start": c.start, "end": c.end, "lang": c.lang,
                "token_count": c.token_count, "text": prep.text[c.start : c.end], "vector": vector_to_bytes(v),
                "terms": " ".join(terms), "sentences": c.relative_sentences(),
            }
            for doc_id, (prep, vectors) in zip(doc_ids, items, strict=True)
            for k, (c, v, terms) in enumerate(zip(prep.chunks, vectors, prep.terms, strict=True))
        ]
        s.execute(insert(Chunk), chunks)
        return doc_ids

    def delete(self, targets: list[str]) -> list[str]:
        """Remove documents by source, by the file they came from, or by folder; returns their sources."""
        conditions = []
        for target in targets:
            resolved = str(Path(target).expanduser().resolve()) if "#" not in target else target
            for value in dict.fromkeys([target, resolved]):
                conditions += [
                    Document.source == value,
                    Document.source_file == value,
                    Document.source_file.startswith(value.rstrip("/") + "/", autoescape=True),
                ]
        if not conditions:
            return []
        with self.store.session() as s:
            rows = s.execute(select(Document.id, Document.source).where(or_(*conditions))).all()
            doc_ids = [r.id for r in rows]
            chunk_ids = list(s.scalars(select(Chunk.id).where(Chunk.document_id.in_(doc_ids))))
            if doc_ids:
                s.execute(delete(Document).where(Document.id.in_(doc_ids)))
        if chunk_ids:
            self.indexes.refresh(writer=True)
        return [r.source for r in rows]

    def sources_from_file(self, source_file: str) -> set[str]:
        with self.store.session() as s:
            return set(s.scalars(select(Document.source).where(Document.source_file == source_file)))

    # -- search ------------------------------------------------------------------

    def search(
        self, query: str, k: int = 10, lang: str | None = None, kind: str | None = None, *,
        mode: str = "hybrid", filters: SearchFilters | None = None, offset: int = 0, group: bool = True,
        facets: bool = False, viewer: Viewer = OPERATOR, snippets: bool = True,
    ) -> SearchResponse:
        """Passages about `query`, in any language, one result per document unless `group=False`.

        `lang` and `kind` are shorthands for the same fields of `filters`;
        `viewer` limits the results to what that reader may see, masked for them;
        `snippets=False` leaves each passage's snippet empty (for callers that read whole passages).
        """
        if kind is not None and kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r} (expected one of: {', '.join(KINDS)})")
        filters = replace(filters or SearchFilters(), **{
            name: value for name, value in (("lang", lang), ("kind", kind)) if value is not None
        })
        return run_search(self, SearchRequest(query, k, offset, mode, filters, group, facets, viewer, snippets))

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

    def get_document(self, doc_id: int) -> Document | None:
        with self.store.session() as s:
            return s.scalar(
                select(Document).where(Document.id == doc_id)
                .options(selectinload(Document.chunks), selectinload(Document.tags), selectinload(Document.note))
            )


def _document_values(prep: PreparedDocument, now) -> dict:
    doc = prep.doc
    title = _title(doc, prep.text)[:512]
    if doc.note is not None:  # a note's title quotes its complaint: no personal data in it, for anyone
        title = mask_personal_data(title, doc.note.customer_name, doc.note.customer_email, doc.note.customer_phone)
    return {
        "source": doc.source, "source_file": doc.source_file, "title": title,
        "kind": doc.kind, "lang": prep.lang, "languages": prep.languages, "is_mixed": prep.is_mixed,
        "content_hash": prep.content_hash, "visibility": normalize_visibility(doc.visibility), "text": prep.text,
        "meta": doc.metadata, "personal_data": [span.to_dict() for span in prep.personal_data], "updated_at": now,
    }


# Longest values the database columns take (see kb.storage.store).
FIELD_LIMITS = {
    "source": 1024, "visibility": 255, "note_id": 128, "customer_name": 255, "customer_email": 255,
    "customer_phone": 64, "channel": 64, "product": 255, "status": 32, "tag": 64,
}


def _validate(doc: DocumentInput) -> str | None:
    if doc.kind not in KINDS:
        return f"unknown kind {doc.kind!r} (expected one of: {', '.join(KINDS)})"
    if not (doc.text or "").strip():
        return "the document has no text"
    if doc.kind == NOTE and doc.note is None:
        return "a note needs its note fields (id, complaint, ...)"
    values = {"source": doc.source, "visibility": doc.visibility}
    if doc.note is not None:
        values.update({name: getattr(doc.note, name) or "" for name in FIELD_LIMITS if hasattr(doc.note, name)})
    for name, value in values.items():
        if len(value) > FIELD_LIMITS[name]:
            return f"field {name!r} is {len(value)} characters long (at most {FIELD_LIMITS[name]})"
    for tag in doc.tags:
        if len(tag) > FIELD_LIMITS["tag"]:
            return f"tag {tag[:20]!r}... is {len(tag)} characters long (at most {FIELD_LIMITS['tag']})"
    return None


def _title(doc: DocumentInput, cleaned: str) -> str:
    """The reader's title, or the cleaned text's first line when the title was only the raw first line."""
    if doc.title and not doc.title_from_text:
        return doc.title
    first = next((line.strip() for line in cleaned.splitlines() if line.strip()), "")
    if first and len(first) <= MAX_TITLE_CHARS:
        return first
    if doc.title:
        return doc.title
    return first[: MAX_TITLE_CHARS - 1] + "…" if first else "(untitled)"
