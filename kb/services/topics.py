"""Topics: the tags of guidance, browsed per language and edited in the portal.

Guidance gets its topics from the file (front matter `tags`, or the folders it
sits in, see `topics_from_folders`). People can then add and remove topics in
the portal; those edits are kept per document source (`TagEdit`), so ingesting
the file again merges them with the file's own tags instead of undoing them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import TYPE_CHECKING

from sqlalchemy import delete, func, select
from sqlalchemy.orm import selectinload

from kb.access import OPERATOR, Viewer, visibility_clause
from kb.documents import GUIDANCE
from kb.errors import InvalidInput
from kb.services.catalog import DocumentSummary
from kb.storage.models import Document, DocumentTag, TagEdit, utcnow

if TYPE_CHECKING:
    from kb.engine import Engine

MAX_TAG_CHARS = 64
MAX_TAGS = 30
# Folder names that say what language or kind a file is, not what it is about.
NOT_TOPICS = frozenset({
    "en", "th", "zh", "zh-hans", "zh-hant", "zh-cn", "zh-tw", "zh-hk", "english", "thai", "chinese",
    "guidance", "guides", "notes", "note", "docs", "documents", "corpus", "files", "misc", "general",
    "uploads", "imports", "data", "knowledge", "kb",
})
_SEPARATORS = re.compile(r"[\s_/]+")


class TopicError(InvalidInput):
    """A topic name that cannot be used; the message says why."""


def normalize_topic(raw: str) -> str:
    """'Data Quality ' -> 'data-quality': the one spelling of a topic, in any script."""
    tag = _SEPARATORS.sub("-", (raw or "").strip().lower()).strip("-")
    if not tag:
        raise TopicError("a topic needs at least one letter or digit")
    if len(tag) > MAX_TAG_CHARS:
        raise TopicError(f"topic {tag[:20]!r}... is {len(tag)} characters long (at most {MAX_TAG_CHARS})")
    if any(ch in tag for ch in ",;|<>\"'"):
        raise TopicError(f"topic {tag!r} contains a character topics cannot hold (, ; | < > quotes)")
    return tag


def topics_from_folders(relative_parent: PurePath) -> list[str]:
    """Topics from the folders between an ingested folder and a file: `policies/data-quality/x.md` -> both.

    Folders named after a language or a kind of document ("en", "guidance")
    are skipped, since they say nothing about the subject.
    """
    tags = []
    for part in relative_parent.parts:
        try:
            tag = normalize_topic(part)
        except TopicError:
            continue
        if tag not in NOT_TOPICS and not tag.startswith(".") and tag not in tags:
            tags.append(tag)
    return tags


def set_document_topics(engine: Engine, doc_id: int, topics: Iterable[str]) -> list[str] | None:
    """Replace a document's topics (None when there is no such document); remembered across re-ingests."""
    wanted = list(dict.fromkeys(normalize_topic(t) for t in topics))
    if len(wanted) > MAX_TAGS:
        raise TopicError(f"{len(wanted)} topics given (at most {MAX_TAGS})")
    with engine.store.session() as s:
        doc = s.get(Document, doc_id)
        if doc is None:
            return None
        current = set(s.scalars(select(DocumentTag.tag).where(DocumentTag.document_id == doc_id)))
        changes = {tag: True for tag in wanted if tag not in current}
        changes.update({tag: False for tag in current - set(wanted)})
        for tag, added in changes.items():
            s.merge(TagEdit(source=doc.source, tag=tag, added=added, created_at=utcnow()))
        s.execute(delete(DocumentTag).where(DocumentTag.document_id == doc_id))
        s.add_all(DocumentTag(document_id=doc_id, tag=tag) for tag in wanted)
        doc.updated_at = utcnow()  # so every process's filters and facets reload this document
    engine.refresh()
    return wanted


@dataclass
class Topic:
    tag: str
    documents: int
    languages: dict[str, int] = field(default_factory=dict)  # documents per main language

    def to_dict(self) -> dict:
        return {"tag": self.tag, "documents": self.documents, "languages": self.languages}


def list_topics(engine: Engine, kind: str = GUIDANCE, viewer: Viewer = OPERATOR) -> list[Topic]:
    """Every topic of the documents of `kind` the viewer may see, with its documents per language, most first."""
    with engine.store.session() as s:
        rows = s.execute(
            select(DocumentTag.tag, Document.lang, func.count())
            .join(Document, Document.id == DocumentTag.document_id)
            .where(Document.kind == kind, visibility_clause(Document.visibility, viewer.role))
            .group_by(DocumentTag.tag, Document.lang)
        ).all()
    topics: dict[str, Topic] = {}
    for tag, lang, count in rows:
        topic = topics.setdefault(tag, Topic(tag, 0))
        topic.documents += count
        topic.languages[lang] = count
    return sorted(topics.values(), key=lambda t: (-t.documents, t.tag))


def topic_documents(
    engine: Engine, tag: str, lang: str | None = None, kind: str = GUIDANCE, viewer: Viewer = OPERATOR,
) -> dict[str, list[DocumentSummary]]:
    """The documents of one topic by language (each list by title); empty when nobody uses the topic."""
    stmt = (
        select(Document)
        .join(DocumentTag, DocumentTag.document_id == Document.id)
        .where(DocumentTag.tag == tag, Document.kind == kind, visibility_clause(Document.visibility, viewer.role))
        .order_by(Document.title)
    )
    if lang:
        stmt = stmt.where(Document.lang == lang)
    out: dict[str, list[DocumentSummary]] = {}
    with engine.store.session() as s:
        for doc in s.scalars(stmt.options(selectinload(Document.tags))):
            out.setdefault(doc.lang, []).append(DocumentSummary.of(doc))
    return out
