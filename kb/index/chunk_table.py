"""What every chunk can be filtered by, held in arrays next to the indexes.

Filters are applied inside retrieval: both retrievers are given the ids of the
chunks a filter allows, so a filter can never empty a page that has matches
further down. Evaluating a filter over arrays in memory takes milliseconds even
for 100,000 chunks, and the same arrays give facet counts. The table follows
the database the way the indexes do: chunks added or removed since the last
sync, and documents whose `updated_at` moved (tags edited, say), are reloaded.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import func, select

from kb.access import can_view
from kb.storage.models import Chunk, Document, DocumentTag, Note
from kb.storage.store import Store

# The fields search results can be counted by (see ChunkTable.facet_counts).
FACETS = ("lang", "kind", "product", "status", "channel", "tags")


@dataclass
class SearchFilters:
    """Restrictions on what a search may return; empty fields restrict nothing."""

    lang: str | None = None
    kind: str | None = None
    tags: list[str] = field(default_factory=list)
    product: str | None = None
    status: str | None = None
    channel: str | None = None
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    source: str | None = None
    # Only documents a reader with this role may see (kb.access); None: no restriction.
    visible_to: str | None = None

    def is_empty(self) -> bool:
        return not any((self.lang, self.kind, self.tags, self.product, self.status, self.channel,
                        self.date_from, self.date_to, self.source, self.visible_to))

    def to_dict(self) -> dict:
        """The filters a user chose (who is asking is not one of them)."""
        out = {k: v for k, v in self.__dict__.items() if v not in (None, [], "") and k != "visible_to"}
        for key in ("date_from", "date_to"):
            if key in out:
                out[key] = out[key].isoformat()
        return out


@dataclass
class DocumentInfo:
    """The document attributes search results and filters need, without the text."""

    id: int
    title: str
    source: str
    source_file: str
    kind: str
    lang: str
    visibility: str
    date: dt.date | None
    tags: frozenset[str]
    product: str
    status: str
    channel: str


def _date_number(value: dt.date | None) -> int:
    return value.toordinal() if value else 0


class ChunkTable:
    def __init__(self) -> None:
        self.ids = np.empty(0, np.int64)          # sorted chunk ids
        self.doc_ids = np.empty(0, np.int64)      # aligned with ids
        self.langs = np.empty(0, object)
        self.docs: dict[int, DocumentInfo] = {}
        self._seen_update: dt.datetime | None = None
        self._doc_arrays: tuple | None = None      # cache, dropped on every change

    def __len__(self) -> int:
        return len(self.ids)

    # -- keeping in step ----------------------------------------------------------

    def sync(self, store: Store, db_ids: np.ndarray) -> None:
        """Apply chunks added or removed and documents updated since the last sync."""
        stale = ~np.isin(self.ids, db_ids, assume_unique=True)
        if stale.any():
            keep = ~stale
            self.ids, self.doc_ids, self.langs = self.ids[keep], self.doc_ids[keep], self.langs[keep]
        missing = np.setdiff1d(db_ids, self.ids, assume_unique=True)
        new_docs: set[int] = set()
        if len(missing):
            rows = store_chunk_rows(store, missing)
            ids = np.asarray([r[0] for r in rows], np.int64)
            order = np.argsort(np.concatenate([self.ids, ids]), kind="stable")
            self.ids = np.concatenate([self.ids, ids])[order]
            self.doc_ids = np.concatenate([self.doc_ids, np.asarray([r[1] for r in rows], np.int64)])[order]
            self.langs = np.concatenate([self.langs, np.asarray([r[2] for r in rows], object)])[order]
            new_docs = {int(r[1]) for r in rows} - set(self.docs)
        live = set(np.unique(self.doc_ids).tolist())
        for doc_id in set(self.docs) - live:
            del self.docs[doc_id]
        with store.session() as s:
            latest = s.scalar(select(func.max(Document.updated_at)))
        changed = new_docs
        if self._seen_update is not None and latest is not None and latest > self._seen_update:
            changed |= set(_doc_ids_updated_after(store, self._seen_update)) & live
        elif self._seen_update is None:
            changed = live
        if changed:
            for info in load_documents(store, sorted(changed)):
                self.docs[info.id] = info
        self._seen_update = latest
        self._doc_arrays = None

    # -- filters --------------------------------------------------------------------

    def allowed_ids(self, filters: SearchFilters | None) -> np.ndarray | None:
        """Chunk ids the filters allow, or None when they allow everything."""
        if filters is None or filters.is_empty():
            return None
        return self.ids[self.mask(filters)]

    def mask(self, filters: SearchFilters) -> np.ndarray:
        """Boolean row mask (aligned with `ids`) of chunks the filters allow."""
        doc_ids, infos, row_of_chunk = self._doc_index()
        keep_doc = np.ones(len(doc_ids), bool)
        if filters.kind:
            keep_doc &= np.fromiter((d.kind == filters.kind for d in infos), bool, len(infos))
        if filters.tags:
            wanted = {t.lower() for t in filters.tags}
            keep_doc &= np.fromiter((not d.tags.isdisjoint(wanted) for d in infos), bool, len(infos))
        for name in ("product", "status", "channel"):
            value = getattr(filters, name)
            if value:
                value = value.casefold()
                keep_doc &= np.fromiter((getattr(d, name).casefold() == value for d in infos), bool, len(infos))
        if filters.date_from or filters.date_to:
            dates = np.fromiter((_date_number(d.date) for d in infos), np.int64, len(infos))
            low = _date_number(filters.date_from) if filters.date_from else 1
            high = _date_number(filters.date_to) if filters.date_to else np.iinfo(np.int64).max
            keep_doc &= (dates >= low) & (dates <= high)
        if filters.source:
            prefix = filters.source
            keep_doc &= np.fromiter(
                (d.source_file.startswith(prefix) or d.source == prefix for d in infos), bool, len(infos)
            )
        if filters.visible_to is not None:
            role = filters.visible_to
            keep_doc &= np.fromiter((can_view(d.visibility, role) for d in infos), bool, len(infos))
        keep = keep_doc[row_of_chunk] if len(row_of_chunk) else np.zeros(0, bool)
        if filters.lang:
            keep &= self.langs == filters.lang
        return keep

    def _doc_index(self) -> tuple[np.ndarray, list[DocumentInfo], np.ndarray]:
        if self._doc_arrays is None:
            doc_ids = np.asarray(sorted(self.docs), np.int64)
            infos = [self.docs[int(i)] for i in doc_ids]
            row_of_chunk = np.searchsorted(doc_ids, self.doc_ids)
            self._doc_arrays = (doc_ids, infos, row_of_chunk)
        return self._doc_arrays

    def facet_counts(self, chunk_ids: np.ndarray) -> dict[str, dict[str, int]]:
        """How many documents among these chunks have each language, kind, product, status, channel and tag.

        A document counts once per value; for languages, once per language
        of its passages among the chunks.
        """
        counts: dict[str, Counter] = {name: Counter() for name in FACETS}
        if len(chunk_ids) == 0:
            return {name: {} for name in FACETS}
        rows = np.searchsorted(self.ids, chunk_ids)
        for _doc, lang in set(zip(self.doc_ids[rows].tolist(), self.langs[rows].tolist(), strict=True)):
            counts["lang"][lang] += 1
        for doc_id in set(self.doc_ids[rows].tolist()):
            info = self.docs.get(doc_id)
            if info is None:
                continue
            counts["kind"][info.kind] += 1
            for name in ("product", "status", "channel"):
                if getattr(info, name):
                    counts[name][getattr(info, name)] += 1
            counts["tags"].update(info.tags)
        return {name: dict(counter.most_common()) for name, counter in counts.items()}

    def doc_of(self, chunk_ids: np.ndarray) -> np.ndarray:
        """Document id of each given chunk (all must be in the table)."""
        return self.doc_ids[np.searchsorted(self.ids, chunk_ids)]

    def lang_of(self, chunk_ids: np.ndarray) -> np.ndarray:
        return self.langs[np.searchsorted(self.ids, chunk_ids)]

    def contains(self, chunk_ids: np.ndarray) -> np.ndarray:
        rows = np.searchsorted(self.ids, chunk_ids)
        rows = np.minimum(rows, max(len(self.ids) - 1, 0))
        return (self.ids[rows] == chunk_ids) if len(self.ids) else np.zeros(len(chunk_ids), bool)


def store_chunk_rows(store: Store, ids: np.ndarray, batch: int = 20_000) -> list[tuple[int, int, str]]:
    rows: list[tuple[int, int, str]] = []
    with store.session() as s:
        for i in range(0, len(ids), batch):
            wanted = [int(x) for x in ids[i : i + batch]]
            rows += s.execute(select(Chunk.id, Chunk.document_id, Chunk.lang).where(Chunk.id.in_(wanted))).all()
    return rows


def _doc_ids_updated_after(store: Store, moment: dt.datetime) -> list[int]:
    with store.session() as s:
        return list(s.scalars(select(Document.id).where(Document.updated_at > moment)))


def load_documents(store: Store, doc_ids: list[int], batch: int = 20_000) -> list[DocumentInfo]:
    """Document attributes (with tags and note fields) for the given ids."""
    infos: list[DocumentInfo] = []
    with store.session() as s:
        for i in range(0, len(doc_ids), batch):
            wanted = doc_ids[i : i + batch]
            tags: dict[int, set[str]] = {}
            for doc_id, tag in s.execute(
                select(DocumentTag.document_id, DocumentTag.tag).where(DocumentTag.document_id.in_(wanted))
            ):
                tags.setdefault(doc_id, set()).add(tag.lower())
            rows = s.execute(
                select(Document.id, Document.title, Document.source, Document.source_file, Document.kind,
                       Document.lang, Document.visibility, Document.created_at,
                       Note.product, Note.status, Note.channel, Note.date)
                .outerjoin(Note, Note.document_id == Document.id)
                .where(Document.id.in_(wanted))
            ).all()
            for r in rows:
                date = r.date if r.date is not None else (r.created_at.date() if r.created_at else None)
                infos.append(DocumentInfo(
                    r.id, r.title, r.source, r.source_file, r.kind, r.lang, r.visibility, date,
                    frozenset(tags.get(r.id, ())), r.product or "", r.status or "", r.channel or "",
                ))
    return infos
