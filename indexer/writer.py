"""Writing prepared documents: triage, embed, and store them in one transaction per batch.

The pipeline (`indexer.pipeline`) and uploads plan batches here and commit
them; the indexes follow the database through `Engine.refresh`.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.exc import DBAPIError

from indexer.prepare import PreparedDocument, TextPreparer, content_hash, document_title
from kb.access import normalize_visibility
from kb.documents import KINDS, NOTE, DocumentInput
from kb.engine import Engine
from kb.services.originals import drop_orphan_originals
from kb.storage.models import Chunk, Document, DocumentTag, Note, utcnow
from kb.storage.store import vector_to_bytes
from kb.storage.tag_edits import apply_tag_edits, tag_edits_by_source
from kb.text.privacy import mask_personal_data

# Longest values the database columns take (see kb.storage.models).
FIELD_LIMITS = {
    "source": 1024, "visibility": 255, "owner": 64, "note_id": 128, "customer_name": 255, "customer_email": 255,
    "customer_phone": 64, "channel": 64, "product": 255, "status": 32, "tag": 64,
}

_preparers: weakref.WeakKeyDictionary[Engine, TextPreparer] = weakref.WeakKeyDictionary()


@dataclass
class AddOutcome:
    source: str
    status: str  # "added", "updated", "skipped" or "failed"
    doc_id: int | None = None
    chunks: int = 0
    error: str | None = None


@dataclass
class IngestPlan:
    """What `triage` decided for a batch; `complete` it, then `commit` it."""

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


def preparer_for(engine: Engine) -> TextPreparer:
    """Cleaning and chunking with the model's tokenizer, made once per engine (without the model)."""
    with engine.lock:
        preparer = _preparers.get(engine)
        if preparer is None:
            preparer = _preparers[engine] = TextPreparer.from_settings(engine.settings, engine.analyzer)
        return preparer


def add_documents(engine: Engine, docs: list[DocumentInput]) -> list[AddOutcome]:
    """Add or update documents; unchanged ones are skipped. Same as `commit(plan(docs))`."""
    return commit(engine, plan(engine, docs))


def plan(engine: Engine, docs: list[DocumentInput]) -> IngestPlan:
    """Triage a batch and prepare (clean and chunk) the documents that changed."""
    batch = triage(engine, docs)
    return batch.complete(preparer_for(engine).prepare_all([doc for _, doc in batch.waiting]))


def triage(engine: Engine, docs: list[DocumentInput]) -> IngestPlan:
    """Which documents fail validation, which are unchanged, and which need preparing.

    Only reads the database, so a large ingest can prepare the waiting
    documents elsewhere (see `indexer.pipeline`) and `commit` them here.
    """
    batch = IngestPlan(docs)
    with engine.store.session() as s:
        batch.existing = dict(
            s.execute(
                select(Document.source, Document.content_hash).where(Document.source.in_([d.source for d in docs]))
            ).all()
        )
    for i, doc in enumerate(docs):
        problem = validate(doc)
        if problem:
            batch.outcomes[i] = AddOutcome(doc.source, "failed", error=problem)
        elif batch.existing.get(doc.source) == content_hash(doc):
            batch.outcomes[i] = AddOutcome(doc.source, "skipped")
        else:
            batch.waiting.append((i, doc))
    return batch


def commit(engine: Engine, batch: IngestPlan, atomic: bool = False) -> list[AddOutcome]:
    """Embed the planned documents in one call and write them in one transaction.

    Each document gets its own savepoint, so one that the database refuses
    never takes the others down. With `atomic` (imports that promise all or
    nothing) the database's refusal is raised instead and nothing is written.
    """
    if batch.todo:
        texts = [text for _, p in batch.todo for text in p.embed_texts()]
        vectors = engine.embedder.encode_passages(texts)
        engine.record_model(engine.embedder.dimension)
        _write(engine, batch.todo, vectors, batch.outcomes, batch.existing, atomic)
        engine.store.prune_chunk_removals()
        engine.indexes.refresh(writer=True)
    return [batch.outcomes[i] for i in range(len(batch.docs))]


def _write(engine: Engine, todo, vectors, outcomes, existing, atomic=False) -> None:
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
        with engine.store.session() as s:
            results = list(zip(items, _write_rows(s, [(p, v) for _, p, v in items]), strict=True))
    except DBAPIError:
        if atomic:
            raise
        results = []
        with engine.store.session() as s:
            for item in items:
                try:
                    with s.begin_nested():
                        results.append((item, _write_rows(s, [(item[1], item[2])])[0]))
                except DBAPIError as exc:
                    outcomes[item[0]] = AddOutcome(
                        item[1].doc.source, "failed",
                        error=f"the database refused it ({exc.orig}); was it changed by another process?",
                    )
    for (i, prep, _), doc_id in results:
        status = "updated" if prep.doc.source in existing else "added"
        outcomes[i] = AddOutcome(prep.doc.source, status, doc_id, len(prep.chunks))


def _write_rows(s, items: list[tuple[PreparedDocument, np.ndarray]]) -> list[int]:
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
            "terms": " ".join(terms), "sentences": c.relative_sentences(), "headings": path or None,
        }
        for doc_id, (prep, vectors) in zip(doc_ids, items, strict=True)
        for k, (c, v, terms, path) in enumerate(
            zip(prep.chunks, vectors, prep.terms, prep.chunk_headings or [[]] * len(prep.chunks), strict=True))
    ]
    s.execute(insert(Chunk), chunks)
    return doc_ids


def delete_documents(engine: Engine, targets: list[str]) -> list[str]:
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
    with engine.store.session() as s:
        rows = s.execute(select(Document.id, Document.source).where(or_(*conditions))).all()
        doc_ids = [r.id for r in rows]
        chunk_ids = list(s.scalars(select(Chunk.id).where(Chunk.document_id.in_(doc_ids))))
        if doc_ids:
            s.execute(delete(Document).where(Document.id.in_(doc_ids)))
    if doc_ids:
        drop_orphan_originals(engine.store)
    if chunk_ids:
        engine.indexes.refresh(writer=True)
    return [r.source for r in rows]


def sources_from_file(engine: Engine, source_file: str) -> set[str]:
    with engine.store.session() as s:
        return set(s.scalars(select(Document.source).where(Document.source_file == source_file)))


def document_ids_from_file(engine: Engine, source_file: str) -> list[int]:
    """The ids of the documents read from `source_file` (a resolved path), in ascending order."""
    with engine.store.session() as s:
        return sorted(s.scalars(select(Document.id).where(Document.source_file == source_file)))


def documents_from_file(engine: Engine, source_file: str) -> list[tuple[str, str]]:
    """The (owner, visibility) of each document read from `source_file` (a resolved path)."""
    with engine.store.session() as s:
        return [(r.owner, r.visibility) for r in
                s.execute(select(Document.owner, Document.visibility).where(Document.source_file == source_file))]


def _document_values(prep: PreparedDocument, now) -> dict:
    doc = prep.doc
    title = (prep.title or document_title(doc, prep.text))[:512]
    if doc.note is not None:  # a note's title quotes its complaint: no personal data in it, for anyone
        title = mask_personal_data(title, doc.note.customer_name, doc.note.customer_email, doc.note.customer_phone)
    return {
        "source": doc.source, "source_file": doc.source_file, "title": title,
        "kind": doc.kind, "lang": prep.lang, "languages": prep.languages, "is_mixed": prep.is_mixed,
        "content_hash": prep.content_hash, "visibility": normalize_visibility(doc.visibility), "owner": doc.owner,
        "text": prep.text,
        "meta": doc.metadata, "personal_data": [span.to_dict() for span in prep.personal_data], "updated_at": now,
        "headings": [[h.start, h.end, h.level] for h in prep.headings] or None,
    }


def validate(doc: DocumentInput) -> str | None:
    """Why a document cannot be stored, or None."""
    if doc.kind not in KINDS:
        return f"unknown kind {doc.kind!r} (expected one of: {', '.join(KINDS)})"
    if not (doc.text or "").strip():
        return "the document has no text"
    if doc.kind == NOTE and doc.note is None:
        return "a note needs its note fields (id, complaint, ...)"
    values = {"source": doc.source, "visibility": doc.visibility, "owner": doc.owner}
    if doc.note is not None:
        values.update({name: getattr(doc.note, name) or "" for name in FIELD_LIMITS if hasattr(doc.note, name)})
    for name, value in values.items():
        if len(value) > FIELD_LIMITS[name]:
            return f"field {name!r} is {len(value)} characters long (at most {FIELD_LIMITS[name]})"
    for tag in doc.tags:
        if len(tag) > FIELD_LIMITS["tag"]:
            return f"tag {tag[:20]!r}... is {len(tag)} characters long (at most {FIELD_LIMITS['tag']})"
    return None
