"""Trainers' collections: passages gathered for a workshop, ordered, annotated, shared and exported.

An item keeps a copy of its passage (text, title, source) taken from the
document when it is added, never from the caller, so a handout stays whole
when its document is ingested again or deleted. The copy has customers'
personal data masked, whoever adds it: a handout is for training, and it is
printed and shared. Reading is open to anyone holding a collection's share
token; per-user sharing comes with accounts.

Parallel passages (the same guidance in the other languages) are found by
meaning: the item's vector against the chunks of each other language, kept
only above a measured similarity and when the match points back at the item's
own document (see `parallel_passages`).
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy import func, select, true

from kb.access import INTERNAL, OPERATOR, Viewer
from kb.documents import GUIDANCE, NOTE, short_source
from kb.errors import InvalidInput, NotFound
from kb.search.parallel import Anchor, parallel_chunks
from kb.storage.models import Chunk, Collection, CollectionItem, Document, utcnow
from kb.text.cleaning import tidy_text
from kb.text.privacy import PiiSpan, mask
from kb.text.structure import embed_text

if TYPE_CHECKING:
    from kb.engine import Engine

LANGUAGES = ("th", "zh", "en")
MAX_NAME_CHARS = 200
MAX_DESCRIPTION_CHARS = 5_000
MAX_ANNOTATION_CHARS = 10_000
# A document added whole (no passage given) may be at most this long; longer ones need a passage.
MAX_WHOLE_DOCUMENT_CHARS = 20_000
SHARE_TOKEN_BYTES = 24


class CollectionError(InvalidInput):
    """A value a collection or item cannot take; the message names the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class NotFoundError(NotFound):
    """No such collection, item, document or passage."""


@dataclass
class ItemView:
    id: int
    position: int
    doc_id: int | None  # None once the document was deleted (the copied text stays)
    chunk_id: int | None
    start: int
    end: int
    lang: str
    text: str
    title: str
    source: str
    annotation: str
    created_at: dt.datetime | None

    @classmethod
    def of(cls, item: CollectionItem) -> ItemView:
        return cls(item.id, item.position, item.document_id, item.chunk_id, item.start, item.end, item.lang,
                   item.text, item.title, item.source, item.annotation or "", _utc(item.created_at))

    def to_dict(self) -> dict:
        return {
            "id": self.id, "position": self.position, "doc_id": self.doc_id, "chunk_id": self.chunk_id,
            "start": self.start, "end": self.end, "lang": self.lang, "text": self.text, "title": self.title,
            "source": short_source(self.source), "annotation": self.annotation, "created_at": _iso(self.created_at),
        }


@dataclass
class CollectionView:
    id: int
    name: str
    description: str
    lang: str
    owner: str
    share_token: str | None
    created_at: dt.datetime | None
    updated_at: dt.datetime | None
    item_count: int
    items: list[ItemView] = field(default_factory=list)

    @classmethod
    def of(cls, collection: Collection, items: list[CollectionItem] | None = None, count: int | None = None
           ) -> CollectionView:
        views = [ItemView.of(i) for i in items] if items is not None else []
        return cls(collection.id, collection.name, collection.description or "", collection.lang or "",
                   collection.owner or "", collection.share_token, _utc(collection.created_at),
                   _utc(collection.updated_at), len(views) if count is None else count, views)

    def to_dict(self, items: bool = True) -> dict:
        out = {
            "id": self.id, "name": self.name, "description": self.description, "lang": self.lang,
            "owner": self.owner, "shared": self.share_token is not None, "share_token": self.share_token,
            "item_count": self.item_count, "created_at": _iso(self.created_at), "updated_at": _iso(self.updated_at),
        }
        if items:
            out["items"] = [i.to_dict() for i in self.items]
        return out


@dataclass
class AddOutcome:
    item: ItemView
    created: bool  # False: the passage was already in the collection, and this is that item


@dataclass
class ParallelPassage:
    """A passage in another language that says what an item says."""

    doc_id: int
    chunk_id: int
    lang: str
    title: str
    source: str
    start: int
    end: int
    text: str
    score: float

    def to_dict(self) -> dict:
        return {"doc_id": self.doc_id, "chunk_id": self.chunk_id, "lang": self.lang, "title": self.title,
                "source": short_source(self.source), "start": self.start, "end": self.end, "text": self.text,
                "score": round(self.score, 4)}


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    """Times as UTC-aware, whichever database they were read from (SQLite gives them back naive)."""
    return value.replace(tzinfo=dt.UTC) if value is not None and value.tzinfo is None else value


# -- checking values ----------------------------------------------------------------


def clean_name(value) -> str:
    if not isinstance(value, str) or not tidy_text(value).strip():
        raise CollectionError("name", "a collection needs a name")
    value = " ".join(tidy_text(value).split())
    if len(value) > MAX_NAME_CHARS:
        raise CollectionError("name", f"at most {MAX_NAME_CHARS} characters")
    return value


def _clean_text(value, field: str, limit: int) -> str:
    """Optional free text (a description, an annotation): trimmed, at most `limit` characters.

    Control characters are dropped as they are from documents (`tidy_text`): they show nothing, and
    a Word handout cannot hold them.
    """
    if value is None:
        return ""
    if not isinstance(value, str):
        raise CollectionError(field, "must be text")
    if len(value) > limit:
        raise CollectionError(field, f"at most {limit} characters")
    return tidy_text(value).strip()


def clean_description(value) -> str:
    return _clean_text(value, "description", MAX_DESCRIPTION_CHARS)


def clean_lang(value) -> str:
    """The workshop's language: th, zh or en, or empty when not said."""
    if value in (None, ""):
        return ""
    if value not in LANGUAGES:
        raise CollectionError("lang", f"unknown value {value!r} (expected one of: {', '.join(LANGUAGES)})")
    return value


def clean_annotation(value) -> str:
    return _clean_text(value, "annotation", MAX_ANNOTATION_CHARS)


# -- collections --------------------------------------------------------------------


def create_collection(engine: Engine, name, description=None, lang=None, owner: str = "") -> CollectionView:
    collection = Collection(name=clean_name(name), description=clean_description(description),
                            lang=clean_lang(lang), owner=owner[:128])
    with engine.store.session() as s:
        s.add(collection)
        s.flush()
        return CollectionView.of(collection, [])


def list_collections(engine: Engine, owner: str | None = None) -> list[CollectionView]:
    """Every collection (of `owner`, when given), the most recently changed first, with its item count."""
    counts = (select(CollectionItem.collection_id, func.count(CollectionItem.id).label("n"))
              .group_by(CollectionItem.collection_id).subquery())
    with engine.store.session() as s:
        rows = s.execute(
            select(Collection, func.coalesce(counts.c.n, 0))
            .outerjoin(counts, counts.c.collection_id == Collection.id)
            .where(true() if owner is None else Collection.owner == owner)
            .order_by(Collection.updated_at.desc(), Collection.id.desc())
        ).all()
        return [CollectionView.of(c, None, int(n)) for c, n in rows]


def collection_owner(engine: Engine, collection_id: int) -> str | None:
    """Who owns the collection (its actor id), or None when there is no such collection."""
    with engine.store.session() as s:
        return s.scalar(select(Collection.owner).where(Collection.id == collection_id))


def get_collection(engine: Engine, collection_id: int, viewer: Viewer = OPERATOR) -> CollectionView:
    """The collection with the items `viewer` may see (see `_for_viewer`)."""
    with engine.store.session() as s:
        collection = _collection(s, collection_id)
        return _for_viewer(s, CollectionView.of(collection, _items(s, collection_id)), viewer)


def shared_collection(engine: Engine, token: str, viewer: Viewer = OPERATOR) -> CollectionView:
    """The collection a share link points at; NotFoundError once sharing was turned off."""
    with engine.store.session() as s:
        collection = s.scalar(select(Collection).where(Collection.share_token == token)) if token else None
        if collection is None:
            raise NotFoundError("no collection is shared with this link (sharing may have been turned off)")
        return _for_viewer(s, CollectionView.of(collection, _items(s, collection.id)), viewer)


def _for_viewer(s, view: CollectionView, viewer: Viewer) -> CollectionView:
    """Leave out items copied from documents the viewer may not see.

    A collection can be shared with anyone, partners too, but an item is a
    copy of a passage and must not show what its document would not. An item
    whose document was deleted counts as internal.
    """
    if viewer.role is None:
        return view
    doc_ids = [i.doc_id for i in view.items if i.doc_id is not None]
    visibility = dict(s.execute(select(Document.id, Document.visibility).where(Document.id.in_(doc_ids))).all())
    kept = [i for i in view.items if viewer.can_view(visibility.get(i.doc_id, INTERNAL))]
    return replace(view, items=kept, item_count=len(kept))


def update_collection(engine: Engine, collection_id: int, name=None, description=None, lang=None
                      ) -> CollectionView:
    """Change the given fields (None leaves a field as it is); every value is checked before any is written."""
    changes = {}
    if name is not None:
        changes["name"] = clean_name(name)
    if description is not None:
        changes["description"] = clean_description(description)
    if lang is not None:
        changes["lang"] = clean_lang(lang)
    with engine.store.session() as s:
        collection = _collection(s, collection_id)
        for key, value in changes.items():
            setattr(collection, key, value)
        collection.updated_at = utcnow()
        return CollectionView.of(collection, _items(s, collection_id))


def delete_collection(engine: Engine, collection_id: int) -> None:
    with engine.store.session() as s:
        collection = _collection(s, collection_id)
        for item in _items(s, collection_id):
            s.delete(item)
        s.delete(collection)


def set_sharing(engine: Engine, collection_id: int, shared: bool) -> CollectionView:
    """Turn the read-only share link on (a new random token, kept while on) or off (the old link stops working)."""
    with engine.store.session() as s:
        collection = _collection(s, collection_id)
        if shared and collection.share_token is None:
            collection.share_token = secrets.token_urlsafe(SHARE_TOKEN_BYTES)
        elif not shared:
            collection.share_token = None
        collection.updated_at = utcnow()
        return CollectionView.of(collection, _items(s, collection_id))


# -- items --------------------------------------------------------------------------


def add_item(
    engine: Engine, collection_id: int, doc_id: int, chunk_id: int | None = None,
    start: int | None = None, end: int | None = None, annotation=None, after_item_id: int | None = None,
    viewer: Viewer = OPERATOR,
) -> AddOutcome:
    """Add a passage of a document: a chunk, exact offsets (an answer's sentences), or the whole document.

    The text is copied from the document. The same span twice in one
    collection gives back the item already there. `after_item_id` places the
    new item right after that one (a parallel passage next to its original);
    otherwise it goes last. A document the `viewer` may not see is, for
    them, not there.
    """
    annotation = clean_annotation(annotation)
    if (start is None) != (end is None):
        raise CollectionError("start" if start is None else "end", "give both start and end, or neither")
    with engine.store.session() as s:
        _collection(s, collection_id)
        doc = s.get(Document, doc_id)
        if doc is None or not viewer.can_view(doc.visibility):
            raise NotFoundError(f"no document with id {doc_id}")
        chunks = list(s.execute(
            select(Chunk.id, Chunk.start, Chunk.end, Chunk.lang).where(Chunk.document_id == doc_id)
            .order_by(Chunk.ordinal)
        ))
        chunk = None
        if chunk_id is not None:
            chunk = next((c for c in chunks if c.id == chunk_id), None)
            if chunk is None:
                raise CollectionError("chunk_id", f"passage {chunk_id} is not a passage of document {doc_id}")
        if start is not None:
            if not 0 <= start < end <= len(doc.text):
                raise CollectionError("start", f"start and end must satisfy 0 <= start < end <= {len(doc.text)} "
                                               "(the length of the document's text)")
        elif chunk is not None:
            start, end = chunk.start, chunk.end
        else:
            if len(doc.text) > MAX_WHOLE_DOCUMENT_CHARS:
                raise CollectionError("chunk_id", f"the document is longer than {MAX_WHOLE_DOCUMENT_CHARS} "
                                                  "characters: give chunk_id, or start and end, of a passage")
            start, end = 0, len(doc.text)
        covering = chunk or _most_overlapping(chunks, start, end)
        items = _items(s, collection_id)
        existing = next((i for i in items if i.document_id == doc_id and i.start == start and i.end == end), None)
        if existing is not None:
            return AddOutcome(ItemView.of(existing), False)
        after = next((i for i in items if i.id == after_item_id), None) if after_item_id is not None else None
        if after_item_id is not None and after is None:
            raise NotFoundError(f"no item {after_item_id} in collection {collection_id}")
        item = CollectionItem(
            collection_id=collection_id, position=0, document_id=doc_id,
            chunk_id=covering.id if covering is not None else None, start=start, end=end,
            lang=covering.lang if covering is not None else doc.lang,
            text=_masked(doc.text[start:end], doc.personal_data, start),
            title=doc.title, source=doc.source, annotation=annotation,
        )
        s.add(item)
        items.insert(items.index(after) + 1 if after is not None else len(items), item)
        _renumber(items)
        _touch(s, collection_id)
        s.flush()
        return AddOutcome(ItemView.of(item), True)


def _masked(text: str, personal_data: list | None, offset: int) -> str:
    """The text with customers' personal data replaced by labels (same length, so offsets hold)."""
    return mask(text, [PiiSpan.from_dict(d) for d in personal_data], offset) if personal_data else text


def _most_overlapping(chunks, start: int, end: int):
    best, overlap = None, 0
    for c in chunks:
        shared = min(c.end, end) - max(c.start, start)
        if shared > overlap:
            best, overlap = c, shared
    return best


def annotate_item(engine: Engine, collection_id: int, item_id: int, annotation) -> ItemView:
    annotation = clean_annotation(annotation)
    with engine.store.session() as s:
        item = _item(s, collection_id, item_id)
        item.annotation = annotation
        _touch(s, collection_id)
        return ItemView.of(item)


def remove_item(engine: Engine, collection_id: int, item_id: int) -> CollectionView:
    with engine.store.session() as s:
        item = _item(s, collection_id, item_id)
        s.delete(item)
        items = [i for i in _items(s, collection_id) if i.id != item_id]
        _renumber(items)
        _touch(s, collection_id)
        s.flush()
        return CollectionView.of(_collection(s, collection_id), items)


def move_item(engine: Engine, collection_id: int, item_id: int, steps: int) -> CollectionView:
    """Move an item `steps` places down (negative: up), stopping at either end."""
    with engine.store.session() as s:
        _item(s, collection_id, item_id)
        items = _items(s, collection_id)
        index = next(k for k, i in enumerate(items) if i.id == item_id)
        target = max(0, min(len(items) - 1, index + steps))
        items.insert(target, items.pop(index))
        _renumber(items)
        _touch(s, collection_id)
        return CollectionView.of(_collection(s, collection_id), items)


def reorder_items(engine: Engine, collection_id: int, item_ids) -> CollectionView:
    """Put the items in the given order, which must name each of the collection's items exactly once."""
    if not isinstance(item_ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in item_ids):
        raise CollectionError("items", "a list of item ids (whole numbers) is required")
    with engine.store.session() as s:
        _collection(s, collection_id)
        items = _items(s, collection_id)
        have = {i.id for i in items}
        repeated = sorted({i for i in item_ids if item_ids.count(i) > 1})
        unknown = sorted(set(item_ids) - have)
        missing = sorted(have - set(item_ids))
        problems = [f"{label}: {', '.join(map(str, ids))}" for label, ids in
                    (("repeated", repeated), ("not in this collection", unknown), ("missing", missing)) if ids]
        if problems:
            raise CollectionError("items", "must list each of the collection's items exactly once ("
                                  + "; ".join(problems) + ")")
        by_id = {i.id: i for i in items}
        ordered = [by_id[i] for i in item_ids]
        _renumber(ordered)
        _touch(s, collection_id)
        return CollectionView.of(_collection(s, collection_id), ordered)


def _collection(s, collection_id: int) -> Collection:
    collection = s.get(Collection, collection_id)
    if collection is None:
        raise NotFoundError(f"no collection with id {collection_id}")
    return collection


def _item(s, collection_id: int, item_id: int) -> CollectionItem:
    _collection(s, collection_id)
    item = s.get(CollectionItem, item_id)
    if item is None or item.collection_id != collection_id:
        raise NotFoundError(f"no item {item_id} in collection {collection_id}")
    return item


def _items(s, collection_id: int) -> list[CollectionItem]:
    return list(s.scalars(select(CollectionItem).where(CollectionItem.collection_id == collection_id)
                          .order_by(CollectionItem.position, CollectionItem.id)))


def _renumber(items: list[CollectionItem]) -> None:
    for position, item in enumerate(items):
        item.position = position


def _touch(s, collection_id: int) -> None:
    s.get(Collection, collection_id).updated_at = utcnow()


# -- parallel passages --------------------------------------------------------------


def parallel_passages(
    engine: Engine, items: list[ItemView], min_similarity: float | None = None,
    viewer: Viewer = OPERATOR,
) -> dict[int, list[ParallelPassage]]:
    """For each item, the closest passage in each other language, where one says the same thing.

    The item's vector is its passage's chunk vector when the chunk is still
    indexed (an answer's sentences use the passage around them: a sentence
    alone is too far from whole passages), else its copied text embedded.
    A match counts when its cosine reaches `min_similarity` (by default
    `weights.PARALLEL_MIN_SIMILARITY`) and, searched back, the closest
    passage in the item's language is in the item's own document (or no
    passage there is closer than the item): two passages on
    neighbouring subjects often clear the threshold one way only. Only
    documents the `viewer` may see are searched; texts come masked, as items do.
    """
    found: dict[int, list[ParallelPassage]] = {item.id: [] for item in items}
    engine.refresh()
    indexes = engine.indexes
    if not items or indexes.vectors is None or len(indexes.vectors) == 0:
        return found
    anchors = []
    for item, vector in zip(items, _item_vectors(engine, items), strict=True):
        info = indexes.table.docs.get(item.doc_id) if item.doc_id is not None else None
        anchors.append(Anchor(item.id, vector, item.lang, item.doc_id, info.kind if info else None))
    parallels = parallel_chunks(engine, anchors, viewer.role, min_similarity)
    matches = [(item_id, chunk_id, score) for item_id, hits in parallels.items() for chunk_id, score in hits]
    if not matches:
        return found
    with engine.store.session() as s:
        rows = {r.id: r for r in s.execute(
            select(Chunk.id, Chunk.document_id, Chunk.lang, Chunk.start, Chunk.end, Chunk.text,
                   Document.title, Document.source, Document.personal_data)
            .join(Document, Document.id == Chunk.document_id)
            .where(Chunk.id.in_([c for _, c, _ in matches]))
        )}
    for item_id, chunk_id, score in matches:
        row = rows.get(chunk_id)
        if row is not None:
            text = _masked(row.text, row.personal_data, row.start)
            found[item_id].append(ParallelPassage(row.document_id, row.id, row.lang, row.title, row.source,
                                                  row.start, row.end, text, score))
    return found


def _item_vectors(engine: Engine, items: list[ItemView]) -> list[np.ndarray]:
    """Each item's language-centered vector: its chunk's indexed vector, or its text embedded (one batch)."""
    indexes = engine.indexes
    chunk_ids = np.asarray([i.chunk_id if i.chunk_id is not None else -1 for i in items], np.int64)
    indexed = indexes.table.contains(chunk_ids) if len(chunk_ids) else np.zeros(0, bool)
    vectors: list[np.ndarray | None] = [
        indexes.vectors.reconstruct(int(c)) if ok else None for c, ok in zip(chunk_ids, indexed, strict=True)
    ]
    missing = [k for k, v in enumerate(vectors) if v is None]
    if missing:
        # As the model saw the passage at ingest: its document's title first (a note's source is "file#id").
        raw = engine.embedder.encode_passages([
            embed_text(NOTE if "#" in items[k].source else GUIDANCE, items[k].title, None, items[k].text)
            for k in missing
        ])
        centered = indexes.centroids.center(raw, [items[k].lang for k in missing])
        for k, vector in zip(missing, centered, strict=True):
            vectors[k] = vector
    return vectors  # type: ignore[return-value]
