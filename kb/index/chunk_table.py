"""What every chunk can be filtered by, held in arrays next to the indexes.

Filters are applied inside retrieval: both retrievers are given the ids of the
chunks a filter allows, so a filter can never empty a page that has matches
further down. Evaluating a filter over arrays in memory takes milliseconds even
for 100,000 chunks, and the same arrays give facet counts. The table follows
the database the way the indexes do: chunks added or removed since the last
sync, and documents whose `updated_at` moved (tags edited, say), are reloaded.

It is saved next to the other index files for the database state it matches
(`Store.state`): arrays opened memory-mapped and the documents as JSON, so a
worker opens a million chunks in a fraction of a second instead of reading every
row. A table saved at another state is brought up to date the same way.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import json
import marshal
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
from filelock import FileLock
from sqlalchemy import func, select

from kb.access import can_view
from kb.index.ids import differences, in_sorted
from kb.storage.files import atomic_write
from kb.storage.models import Chunk, Document, DocumentTag, Note
from kb.storage.store import ChunkChanges, Store

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


class DocumentInfo(NamedTuple):
    """The document attributes search results and filters need, without the text.

    A named tuple: a saved table makes one per document at open (200,000 at a
    million chunks), and a tuple is made several times faster than a dataclass.
    """

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


# The saved table: three arrays opened memory-mapped (shared by a node's workers
# through the page cache), the documents, and a manifest written last.
ARRAY_FILES = {"ids": "table.ids.npy", "doc_ids": "table.doc_ids.npy", "langs": "table.langs.npy"}
DOCS_FILE = "table.docs.marshal"  # tuples of str, int and frozenset: read ~6x faster than JSON
MANIFEST_FILE = "table.json"
LOCK_FILE = ".table.lock"
FORMAT_VERSION = 1
_PYTHON = "{}.{}".format(*sys.version_info[:2])
LANG_TYPE = "U8"  # chunks.lang is String(8)


@dataclass(frozen=True)
class _Rows:
    """The table as of one sync: replaced whole, never changed, so a search in another thread sees one state."""

    ids: np.ndarray  # sorted chunk ids
    doc_ids: np.ndarray  # aligned with ids
    langs: np.ndarray  # aligned with ids
    docs: dict[int, DocumentInfo]
    doc_index: list = field(default_factory=list, compare=False)  # cache of _doc_index: [] until first asked

    @classmethod
    def empty(cls) -> _Rows:
        return cls(np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, LANG_TYPE), {})


class ChunkTable:
    def __init__(self) -> None:
        self._rows = _Rows.empty()
        self._seen_update: dt.datetime | None = None

    def __len__(self) -> int:
        return len(self._rows.ids)

    @property
    def ids(self) -> np.ndarray:
        return self._rows.ids

    @property
    def doc_ids(self) -> np.ndarray:
        return self._rows.doc_ids

    @property
    def langs(self) -> np.ndarray:
        return self._rows.langs

    @property
    def docs(self) -> dict[int, DocumentInfo]:
        return self._rows.docs

    # -- keeping in step ----------------------------------------------------------

    def sync(self, store: Store, db_ids: np.ndarray | None = None, changes: ChunkChanges | None = None) -> None:
        """Apply chunks added or removed and documents updated since the last sync: found by comparing every
        chunk id (`db_ids`), or given (`changes`, `Store.chunk_changes`).

        The new state is built aside and swapped in at the end, so searches in
        other threads go on with the old one meanwhile.
        """
        held = self._rows.ids
        gone, missing = differences(held, db_ids, changes)
        self._update(store, in_sorted(held, gone), missing, db_ids)

    def _update(self, store: Store, stale: np.ndarray, missing: np.ndarray, db_ids: np.ndarray | None = None) -> None:
        old = self._rows
        ids, doc_ids, langs = old.ids, old.doc_ids, old.langs
        touched = set(doc_ids[stale].tolist())  # documents that may have lost their last chunk
        if stale.any():
            keep = ~stale
            ids, doc_ids, langs = ids[keep], doc_ids[keep], langs[keep]
        new_docs: set[int] = set()
        if len(missing):
            whole = len(ids) == 0 and db_ids is not None
            rows = store_chunk_rows(store, None if whole else missing)
            if whole:  # a whole scan may hold chunks newer than db_ids: those wait for the next sync
                rows = [r for r, known in zip(rows, np.isin([r[0] for r in rows], db_ids), strict=True) if known]
            rows.sort(key=lambda r: r[0])
            added = np.asarray([r[0] for r in rows], np.int64)
            at = np.searchsorted(ids, added)  # inserted in place: no sort of a million ids
            ids = np.insert(ids, at, added)
            doc_ids = np.insert(doc_ids, at, np.asarray([r[1] for r in rows], np.int64))
            langs = np.insert(langs, at, np.asarray([r[2] for r in rows], LANG_TYPE))
            new_docs = {int(r[1]) for r in rows if r[1] not in old.docs}
        if len(touched) > 64 or not old.docs:
            live = set(np.unique(doc_ids).tolist())
            docs = {doc_id: info for doc_id, info in old.docs.items() if doc_id in live}
        else:  # a few documents changed: look for each among the chunks instead of listing every document
            docs = dict(old.docs)
            for doc_id in touched:
                if not (doc_ids == doc_id).any():
                    docs.pop(doc_id, None)
        with store.session() as s:
            latest = s.scalar(select(func.max(Document.updated_at)))
        changed = new_docs
        if self._seen_update is not None and latest is not None and latest > self._seen_update:
            changed |= {doc_id for doc_id in _doc_ids_updated_after(store, self._seen_update)
                        if doc_id in docs or doc_id in new_docs}
        elif self._seen_update is None:
            changed = set(np.unique(doc_ids).tolist())
        if changed:
            for info in load_documents(store, sorted(changed)):
                docs[info.id] = info
        self._rows = _Rows(ids, doc_ids, langs, docs)
        self._seen_update = latest

    # -- files ------------------------------------------------------------------------

    def save(self, directory: Path, state: str) -> None:
        """Write the table for the database state `state`: arrays, documents, then the manifest.

        The manifest goes first and comes back last, all under a lock that
        `load` takes too, so a reader finds a whole table or none.
        """
        rows = self._rows
        directory.mkdir(parents=True, exist_ok=True)
        with FileLock(str(directory / LOCK_FILE)):
            (directory / MANIFEST_FILE).unlink(missing_ok=True)
            for name, file in ARRAY_FILES.items():
                array = getattr(rows, name)
                atomic_write(directory / file, lambda fh, a=array: np.save(fh, a, allow_pickle=False))
            documents = marshal.dumps([_doc_row(info) for info in rows.docs.values()])
            atomic_write(directory / DOCS_FILE, lambda fh: fh.write(documents))
            manifest = {
                "format": FORMAT_VERSION, "python": _PYTHON, "state": state, "count": len(rows.ids),
                "last_id": int(rows.ids[-1]) if len(rows.ids) else 0,
                "seen_update": self._seen_update.isoformat() if self._seen_update else None,
            }
            atomic_write(directory / MANIFEST_FILE, lambda fh: fh.write(json.dumps(manifest).encode()))

    @classmethod
    def load(cls, directory: Path) -> tuple[ChunkTable, dict] | None:
        """The saved table (arrays memory-mapped read-only) and its manifest, or None when missing or broken."""
        if not (directory / MANIFEST_FILE).is_file():
            return None
        try:
            with FileLock(str(directory / LOCK_FILE)):
                manifest = json.loads((directory / MANIFEST_FILE).read_text())
                if manifest.get("format") != FORMAT_VERSION or manifest.get("python") != _PYTHON:
                    return None  # marshal's format belongs to the Python version
                arrays = {name: np.load(directory / file, mmap_mode="r", allow_pickle=False)
                          for name, file in ARRAY_FILES.items()}
                with _gc_paused():
                    documents = marshal.loads((directory / DOCS_FILE).read_bytes())
        except (OSError, ValueError, TypeError, KeyError, EOFError):
            return None
        count = manifest.get("count")
        if any(len(a) != count for a in arrays.values()) or arrays["ids"].dtype != np.int64:
            return None
        if (int(arrays["ids"][-1]) if count else 0) != manifest.get("last_id"):
            return None
        table = cls()
        try:
            with _gc_paused():
                docs = {info.id: info for info in map(_doc_info, documents)}
        except (TypeError, ValueError, IndexError):
            return None
        table._rows = _Rows(arrays["ids"], arrays["doc_ids"], arrays["langs"], docs)
        seen = manifest.get("seen_update")
        table._seen_update = dt.datetime.fromisoformat(seen) if seen else None
        return table, manifest

    # -- filters --------------------------------------------------------------------
    # Each method reads `self._rows` once, so it works on one state even while a sync swaps in the next.

    def allowed_ids(self, filters: SearchFilters | None) -> np.ndarray | None:
        """Chunk ids the filters allow, or None when they allow everything."""
        if filters is None or filters.is_empty():
            return None
        rows = self._rows
        return rows.ids[_mask(rows, filters)]

    def mask(self, filters: SearchFilters) -> np.ndarray:
        """Boolean row mask (aligned with `ids`) of chunks the filters allow."""
        return _mask(self._rows, filters)

    def facet_counts(self, chunk_ids: np.ndarray) -> dict[str, dict[str, int]]:
        """How many documents among these chunks have each language, kind, product, status, channel and tag.

        A document counts once per value; for languages, once per language
        of its passages among the chunks.
        """
        counts: dict[str, Counter] = {name: Counter() for name in FACETS}
        if len(chunk_ids) == 0:
            return {name: {} for name in FACETS}
        table = self._rows
        rows = np.searchsorted(table.ids, chunk_ids)
        for _doc, lang in set(zip(table.doc_ids[rows].tolist(), table.langs[rows].tolist(), strict=True)):
            counts["lang"][lang] += 1
        for doc_id in set(table.doc_ids[rows].tolist()):
            info = table.docs.get(doc_id)
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
        rows = self._rows
        return rows.doc_ids[np.searchsorted(rows.ids, chunk_ids)]

    def lang_of(self, chunk_ids: np.ndarray) -> np.ndarray:
        rows = self._rows
        return rows.langs[np.searchsorted(rows.ids, chunk_ids)]

    def contains(self, chunk_ids: np.ndarray) -> np.ndarray:
        ids = self._rows.ids
        if not len(ids):
            return np.zeros(len(chunk_ids), bool)
        rows = np.minimum(np.searchsorted(ids, chunk_ids), len(ids) - 1)
        return ids[rows] == chunk_ids


def _mask(table: _Rows, filters: SearchFilters) -> np.ndarray:
    doc_ids, infos, row_of_chunk = _doc_index(table)
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
        keep &= table.langs == filters.lang
    return keep


def _doc_index(table: _Rows) -> tuple[np.ndarray, list[DocumentInfo], np.ndarray]:
    """Sorted document ids, their infos, and each chunk's row among them; made once per state."""
    if not table.doc_index:
        doc_ids = np.asarray(sorted(table.docs), np.int64)
        infos = [table.docs[int(i)] for i in doc_ids]
        table.doc_index[:] = [doc_ids, infos, np.searchsorted(doc_ids, table.doc_ids)]
    doc_ids, infos, row_of_chunk = table.doc_index
    return doc_ids, infos, row_of_chunk


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while a table's documents are made: hundreds of thousands of
    new tuples would run it over and over on a growing heap (measured: reading took 3-4x longer)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _doc_row(info: DocumentInfo) -> tuple:
    return (*info[:7], info.date.toordinal() if info.date else 0, *info[8:])


def _doc_info(row: tuple) -> DocumentInfo:
    if row[7]:
        return DocumentInfo._make((*row[:7], dt.date.fromordinal(row[7]), *row[8:]))
    return DocumentInfo._make((*row[:7], None, *row[8:]))


def store_chunk_rows(store: Store, ids: np.ndarray | None, batch: int = 20_000) -> list[tuple[int, int, str]]:
    """(id, document id, language) of the given chunks, or of every chunk (one scan) when `ids` is None."""
    if ids is None:
        with store.engine.connect() as connection:
            return list(connection.exec_driver_sql("SELECT id, document_id, lang FROM chunks ORDER BY id"))
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
