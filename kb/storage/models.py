"""The database's tables, as SQLAlchemy models.

The schema they describe is owned by the Alembic migrations in
`kb/storage/migrations`; a test checks that the two agree.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Base(DeclarativeBase):
    pass


class Document(Base):
    __tablename__ = "documents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(1024), unique=True)
    source_file: Mapped[str] = mapped_column(String(1024), index=True)
    title: Mapped[str] = mapped_column(String(512))
    kind: Mapped[str] = mapped_column(String(16), index=True)
    lang: Mapped[str] = mapped_column(String(8), index=True)
    languages: Mapped[list] = mapped_column(JSON, default=list)
    is_mixed: Mapped[bool] = mapped_column(Boolean, default=False)
    content_hash: Mapped[str] = mapped_column(String(64), index=True)
    visibility: Mapped[str] = mapped_column(String(255), default="internal")
    # The user name of whoever uploaded it in the portal; "" for files the operator ingested (kb ingest).
    # Only its owner or an admin may replace, re-classify or delete it there.
    owner: Mapped[str] = mapped_column(String(64), default="", server_default="", index=True)
    text: Mapped[str] = mapped_column(Text)
    meta: Mapped[dict] = mapped_column("metadata", JSON, default=dict)
    # Spans of personal data in `text` ([{"start", "end", "kind"}], see kb.text.privacy), masked for most readers.
    personal_data: Mapped[list] = mapped_column(JSON, default=list)
    # [[start, end, level], ...] of its headings in `text` (md/html/docx); None when it has none or
    # was stored before they were kept.
    headings: Mapped[list | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)

    chunks: Mapped[list[Chunk]] = relationship(
        back_populates="document", cascade="all, delete-orphan", order_by="Chunk.ordinal",
        passive_deletes=True,
    )
    tags: Mapped[list[DocumentTag]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, order_by="DocumentTag.tag"
    )
    note: Mapped[Note | None] = relationship(
        back_populates="document", cascade="all, delete-orphan", uselist=False, passive_deletes=True
    )

    @property
    def tag_names(self) -> list[str]:
        return [t.tag for t in self.tags]


class Chunk(Base):
    __tablename__ = "chunks"
    # AUTOINCREMENT: SQLite must never hand a deleted chunk's id to a new chunk,
    # because chunk ids are the keys of the vector and keyword indexes.
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"), index=True)
    ordinal: Mapped[int] = mapped_column(Integer)
    start: Mapped[int] = mapped_column("start_char", Integer)
    end: Mapped[int] = mapped_column("end_char", Integer)
    lang: Mapped[str] = mapped_column(String(8), index=True)
    token_count: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    vector: Mapped[bytes] = mapped_column(LargeBinary)
    # Keyword-index terms, space-separated, as kb.text.analyzer.Analyzer made them.
    terms: Mapped[str] = mapped_column(Text, default="", server_default="")
    # [[start, end], ...] of its sentences, in the chunk's text, found at ingest for snippets;
    # None for chunks stored before they were kept (their snippets segment the text again).
    sentences: Mapped[list | None] = mapped_column(JSON, nullable=True)
    # The headings it sits under, outermost first, without the document's title ("Refunds",
    # "Store credit"); None for chunks stored before they were kept.
    headings: Mapped[list | None] = mapped_column(JSON, nullable=True)

    document: Mapped[Document] = relationship(back_populates="chunks")


class DocumentTag(Base):
    __tablename__ = "document_tags"

    document_id: Mapped[int] = mapped_column(
        ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)


class Note(Base):
    """Structured fields of a customer note; personal data lives only here."""

    __tablename__ = "notes"

    document_id: Mapped[int] = mapped_column(
        ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True
    )
    note_id: Mapped[str] = mapped_column(String(128), index=True)
    date: Mapped[dt.date | None] = mapped_column(Date, nullable=True, index=True)
    customer_name: Mapped[str] = mapped_column(String(255), default="")
    customer_email: Mapped[str] = mapped_column(String(255), default="")
    customer_phone: Mapped[str] = mapped_column(String(64), default="")
    channel: Mapped[str] = mapped_column(String(64), default="", index=True)
    product: Mapped[str] = mapped_column(String(255), default="", index=True)
    complaint: Mapped[str] = mapped_column(Text)
    resolution: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(32), default="", index=True)

    document: Mapped[Document] = relationship(back_populates="note")


class CaseFeedback(Base):
    """One agent's "this helped" on a case's resolution; one per voter and case."""

    __tablename__ = "case_feedback"

    document_id: Mapped[int] = mapped_column(
        ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True
    )
    # Who clicked: a user name once accounts exist, else the browser's or client's own id.
    voter: Mapped[str] = mapped_column(String(128), primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class TagEdit(Base):
    """A topic added to or removed from a document in the portal, kept across re-ingests of its file.

    Keyed by the document's source, so editing survives the file being
    ingested again (its own tags are merged with these edits each time).
    """

    __tablename__ = "tag_edits"

    source: Mapped[str] = mapped_column(String(1024), primary_key=True)
    tag: Mapped[str] = mapped_column(String(64), primary_key=True)
    added: Mapped[bool] = mapped_column(Boolean)  # False: removed
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Collection(Base):
    """A trainer's collection of passages for a workshop, exported as a handout."""

    __tablename__ = "collections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    lang: Mapped[str] = mapped_column(String(8), default="")  # the workshop's language
    owner: Mapped[str] = mapped_column(String(128), default="", index=True)
    # Anyone holding this token may read the collection (a read-only share link); None: not shared.
    share_token: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    items: Mapped[list[CollectionItem]] = relationship(
        back_populates="collection", cascade="all, delete-orphan", order_by="CollectionItem.position",
        passive_deletes=True,
    )


class CollectionItem(Base):
    """A passage in a collection: a copy of its text and source, so a handout survives re-ingests."""

    __tablename__ = "collection_items"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    document_id: Mapped[int | None] = mapped_column(
        ForeignKey("documents.id", ondelete="SET NULL"), nullable=True, index=True
    )
    chunk_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    start: Mapped[int] = mapped_column("start_char", Integer)
    end: Mapped[int] = mapped_column("end_char", Integer)
    lang: Mapped[str] = mapped_column(String(8))
    text: Mapped[str] = mapped_column(Text)
    title: Mapped[str] = mapped_column(String(512))
    source: Mapped[str] = mapped_column(String(1024))
    annotation: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    collection: Mapped[Collection] = relationship(back_populates="items")


class User(Base):
    """A person who signs in to the portal; what they may see and do follows from `role`."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[str] = mapped_column(String(32))
    password_hash: Mapped[str] = mapped_column(String(255))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    # Sessions carry the epoch they were made in; raising it signs the user out everywhere.
    session_epoch: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SignedOutSession(Base):
    """A browser session ended with "sign out": its cookie is refused even if a copy of it is sent again.

    Kept until the session would have expired anyway (`expires_at`), then pruned.
    """

    __tablename__ = "signed_out_sessions"

    session_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)


class ApiToken(Base):
    """A personal API token; only its SHA-256 is kept, the token itself is shown once."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))  # to recognise a token in lists without revealing it
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class AuditEntry(Base):
    """Who searched, viewed or exported customer notes, and when. Only ever appended to."""

    __tablename__ = "audit_log"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(128), index=True)
    action: Mapped[str] = mapped_column(String(32), index=True)  # search, view, export, similar, ...
    target: Mapped[str] = mapped_column(Text, default="")
    details: Mapped[dict] = mapped_column(JSON, default=dict)


class MetaEntry(Base):
    """Facts about the knowledge base itself, e.g. which model made its vectors."""

    __tablename__ = "kb_meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class SentenceVector(Base):
    """An answer sentence's vector, kept so each sentence is embedded once for every process and node.

    Answers compare a question with the sentences of the passages they read;
    embedding those sentences is most of a first answer's time (about 0.6 s).
    Keyed by a hash of the model and the exact text it read, so a new model or
    a changed sentence never finds an old vector. Looked up by the hundred, never scanned.
    """

    __tablename__ = "sentence_vectors"

    key: Mapped[str] = mapped_column(String(40), primary_key=True)
    vector: Mapped[bytes] = mapped_column(LargeBinary)


class ChangeSequence(Base):
    """One row whose `seq` moves with every write to what search reads (chunks, documents, tags, notes).

    Database triggers (migration 0013) move it in the writing transaction, so a
    process asks "did anything change?" with one primary-key read; `origin` is
    made once per database, so a saved index is never taken for another
    database's at the same count.
    """

    __tablename__ = "kb_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    origin: Mapped[str] = mapped_column(String(32))


class ChunkRemoval(Base):
    """A deleted chunk's id, logged by a trigger (migration 0016), so a catch-up reads what changed.

    Chunk ids only grow, so what was added since a process last looked is every
    id above the last one it saw; what was removed is here, past its position in
    this log. `chunk_id` -1 (a TRUNCATE) means the log cannot say: read everything.
    """

    __tablename__ = "chunk_removals"
    __table_args__ = {"sqlite_autoincrement": True}

    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    chunk_id: Mapped[int] = mapped_column(BigInteger)


class IngestJob(Base):
    """Files handed to the queue in one go (an upload, a `kb ingest --queue`), and how far they got.

    The row is written before the message is sent, so whichever node serves the
    portal can show the job, and a worker finds everything it needs here.
    """

    __tablename__ = "ingest_jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # "upload" (portal, API) or "files" (kb ingest --queue)
    owner: Mapped[str] = mapped_column(String(64), default="", index=True)  # who submitted it ("" operator)
    state: Mapped[str] = mapped_column(String(16), default="queued", index=True)  # queued running done failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    files: Mapped[list[IngestJobFile]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, order_by="IngestJobFile.position",
    )


class IngestJobFile(Base):
    """One file of a job: its original bytes (so any node's worker can ingest it) and its outcome."""

    __tablename__ = "ingest_job_files"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("ingest_jobs.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    # What the user sent it as (an upload's name and folders; for `kb ingest --queue`, its resolved path).
    name: Mapped[str] = mapped_column(String(1024))
    content: Mapped[bytes] = mapped_column(LargeBinary)
    content_hash: Mapped[str] = mapped_column(String(64))
    topics: Mapped[list] = mapped_column(JSON, default=list)  # its folders' (kb ingest) or its uploader's (upload)
    visibility: Mapped[str | None] = mapped_column(String(255), nullable=True)  # the uploader's choice, if any
    state: Mapped[str] = mapped_column(String(16), default="queued")  # queued, added, updated, skipped, failed
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    doc_ids: Mapped[list] = mapped_column(JSON, default=list)


class SearchLogEntry(Base):
    """A search or question asked in the portal and whether anything answered it.

    Feeds each user's recent searches and, for trainers, the questions the
    knowledge base could not answer (a list of what to write next). Personal data
    in the text is masked before it is kept.
    """

    __tablename__ = "search_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    username: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(8))  # "search" or "ask"
    query: Mapped[str] = mapped_column(String(300))
    normalized: Mapped[str] = mapped_column(String(300), index=True)  # folded, for counting repeats
    lang: Mapped[str] = mapped_column(String(8), default="")
    found: Mapped[int] = mapped_column(Integer)  # results on the page, or 1/0 for an answer


class OriginalFile(Base):
    """The file a document was read from, byte for byte, so that readers can download what the author wrote.

    Kept in the database (not on one node's disk) so that every node serves it;
    keyed by the `source_file` its documents share.
    """

    __tablename__ = "original_files"

    source_file: Mapped[str] = mapped_column(String(1024), primary_key=True)
    name: Mapped[str] = mapped_column(String(512))  # the file's own name, for the download
    content: Mapped[bytes] = mapped_column(LargeBinary)
    size: Mapped[int] = mapped_column(Integer)
    content_hash: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
