"""Browsing the knowledge base: document lists, one document whole, and related documents.

Search answers a question; these answer "what is in here?" (the portal's home
page, the documents API) and "what else says this?" (a document page lists the
same guidance in the other languages, found by meaning).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from kb.access import OPERATOR, Viewer, visibility_clause
from kb.documents import short_source
from kb.index.chunk_table import SearchFilters
from kb.search import weights
from kb.services.originals import OriginalSummary, may_download, original_summary
from kb.storage.models import Chunk, Document
from kb.text.privacy import PiiSpan, mask, mask_personal_data
from kb.text.structure import Heading

if TYPE_CHECKING:
    from kb.engine import Engine


@dataclass
class DocumentSummary:
    id: int
    title: str
    source: str
    kind: str
    lang: str
    languages: list[str]
    tags: list[str]
    updated_at: dt.datetime | None

    @classmethod
    def of(cls, doc: Document) -> DocumentSummary:
        return cls(doc.id, doc.title, doc.source, doc.kind, doc.lang, list(doc.languages or [doc.lang]),
                   sorted(doc.tag_names), doc.updated_at)

    def to_dict(self) -> dict:
        return {
            "id": self.id, "title": self.title, "source": short_source(self.source), "kind": self.kind, "lang": self.lang,
            "languages": self.languages, "tags": self.tags,
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
        }


@dataclass
class PassageSpan:
    chunk_id: int
    start: int
    end: int
    lang: str


@dataclass
class DocumentView:
    """A document whole: its cleaned text and where each passage sits in it."""

    summary: DocumentSummary
    text: str
    visibility: str
    is_mixed: bool
    passages: list[PassageSpan]
    note: dict | None = None
    metadata: dict = field(default_factory=dict)
    headings: list[Heading] = field(default_factory=list)  # spans of its headings in `text`, for rendering
    owner: str = ""  # who uploaded it in the portal ("" when the operator ingested it)
    original: OriginalSummary | None = None  # the file it was read from, when the viewer may download it

    def to_dict(self) -> dict:
        original = {"name": self.original.name, "size": self.original.size} if self.original else None
        return {
            **self.summary.to_dict(), "text": self.text, "visibility": self.visibility, "owner": self.owner,
            "is_mixed": self.is_mixed, "note": self.note, "original": original,
            "headings": [{"start": h.start, "end": h.end, "level": h.level} for h in self.headings],
            "passages": [{"chunk_id": p.chunk_id, "start": p.start, "end": p.end, "lang": p.lang}
                         for p in self.passages],
        }


@dataclass
class RelatedDocument:
    summary: DocumentSummary
    score: float
    lang: str  # the language of its closest passage

    def to_dict(self) -> dict:
        return {**self.summary.to_dict(), "score": round(self.score, 6), "passage_lang": self.lang}


def list_documents(
    engine: Engine, limit: int = 20, offset: int = 0, kind: str | None = None, lang: str | None = None,
    viewer: Viewer = OPERATOR,
) -> tuple[list[DocumentSummary], int]:
    """Documents the viewer may see, most recently updated first, and how many there are in all."""
    visible = visibility_clause(Document.visibility, viewer.role)
    stmt = select(Document).where(visible)
    count = select(func.count(Document.id)).where(visible)
    if kind:
        stmt, count = stmt.where(Document.kind == kind), count.where(Document.kind == kind)
    if lang:
        stmt, count = stmt.where(Document.lang == lang), count.where(Document.lang == lang)
    stmt = stmt.order_by(Document.updated_at.desc(), Document.id.desc()).limit(limit).offset(offset)
    with engine.store.session() as s:
        docs = s.scalars(stmt.options(selectinload(Document.tags))).all()
        return [DocumentSummary.of(d) for d in docs], int(s.scalar(count))


def get_document(engine: Engine, doc_id: int, viewer: Viewer = OPERATOR) -> DocumentView | None:
    """The document whole, or None when there is none or the viewer may not see it (the same answer)."""
    doc = engine.store.document_with_chunks(doc_id)
    if doc is None or not viewer.can_view(doc.visibility):
        return None
    spans = [] if viewer.sees_personal_data else [PiiSpan.from_dict(d) for d in doc.personal_data or []]
    note = None
    if doc.note is not None:
        n = doc.note
        complaint, resolution = n.complaint, n.resolution
        if spans:  # the note's text is its complaint, a blank line, its resolution (indexer.readers)
            complaint = mask_personal_data(n.complaint, n.customer_name, n.customer_email, n.customer_phone)
            resolution = mask_personal_data(n.resolution, n.customer_name, n.customer_email, n.customer_phone)
        note = {
            "note_id": n.note_id, "date": n.date.isoformat() if n.date else None, "channel": n.channel,
            "product": n.product, "status": n.status, "complaint": complaint, "resolution": resolution,
        }
    passages = [PassageSpan(c.id, c.start, c.end, c.lang) for c in doc.chunks]
    text = mask(doc.text, spans) if spans else doc.text
    headings = [Heading(*span) for span in doc.headings or []]
    original = original_summary(engine.store, doc.source_file)
    if original is not None and not may_download(engine.store, doc.source_file, viewer):
        original = None
    return DocumentView(DocumentSummary.of(doc), text, doc.visibility, doc.is_mixed, passages, note,
                        dict(doc.meta or {}), headings, doc.owner, original)


def related_documents(engine: Engine, doc_id: int, k: int = 5, other_languages: bool = True,
                      viewer: Viewer = OPERATOR) -> list[RelatedDocument]:
    """Documents of the same kind closest in meaning to this one (the mean of its passages' vectors).

    With `other_languages`, only passages in languages the document is not
    written in count: the same guidance in Thai, Chinese or English.
    """
    engine.refresh()
    indexes = engine.indexes
    table = indexes.table
    own = table.ids[table.doc_ids == doc_id]
    info = table.docs.get(doc_id)
    if len(own) == 0 or info is None or indexes.vectors is None:
        return []
    vector = indexes.vectors.reconstruct_many(own).mean(axis=0)
    vector /= max(float(np.linalg.norm(vector)), 1e-12)
    own_langs = set(table.lang_of(own).tolist())
    allowed = table.ids[(table.doc_ids != doc_id) & table.mask(SearchFilters(kind=info.kind, visible_to=viewer.role))]
    if other_languages:
        allowed = allowed[~np.isin(table.lang_of(allowed), list(own_langs))]
    if len(allowed) == 0:
        return []
    ids, scores = indexes.vectors.search(vector, weights.RELATED_DEPTH_PER_RESULT * k, allowed)
    best: dict[int, tuple[float, str]] = {}
    for doc, lang, score in zip(table.doc_of(ids).tolist(), table.lang_of(ids).tolist(), scores.tolist(), strict=True):
        best.setdefault(doc, (score, lang))
    chosen = list(best.items())[:k]
    with engine.store.session() as s:
        docs = {d.id: d for d in s.scalars(
            select(Document).where(Document.id.in_([d for d, _ in chosen])).options(selectinload(Document.tags))
        )}
        return [RelatedDocument(DocumentSummary.of(docs[d]), score, lang)
                for d, (score, lang) in chosen if d in docs]



@dataclass
class Counts:
    documents: int
    chunks: int
    languages: dict[str, int]
    kinds: dict[str, int]


def counts(engine: Engine, viewer: Viewer = OPERATOR) -> Counts:
    """How many documents (by language and kind) and passages the viewer may see."""
    visible = visibility_clause(Document.visibility, viewer.role)
    with engine.store.session() as s:
        languages = dict(s.execute(select(Document.lang, func.count()).where(visible).group_by(Document.lang)).all())
        kinds = dict(s.execute(select(Document.kind, func.count()).where(visible).group_by(Document.kind)).all())
        chunks = s.scalar(select(func.count(Chunk.id)).join(Document, Document.id == Chunk.document_id).where(visible))
    return Counts(sum(languages.values()), int(chunks or 0), languages, kinds)
