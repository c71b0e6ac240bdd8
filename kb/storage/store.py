"""The database: the source of truth for documents, chunks, their vectors and notes.

SQLite by default (one file in the data directory), PostgreSQL through
`KB_DATABASE_URL`. The schema is owned by Alembic migrations in
`kb/storage/migrations`, applied when a store opens, so a data directory made by an
older version is brought up to date instead of breaking.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    create_engine,
    event,
    func,
    select,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship, sessionmaker


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
    text: Mapped[str] = mapped_column(Text)
    meta: Mapped[dict] = mapped_column("metadata", JSON, default=dict)
    # Spans of personal data in `text` ([{"start", "end", "kind"}], see kb.text.privacy), masked for most readers.
    personal_data: Mapped[list] = mapped_column(JSON, default=list)
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
    # Keyword-index terms, space-separated, as kb.index.keywords.Analyzer made them.
    terms: Mapped[str] = mapped_column(Text, default="", server_default="")
    # [[start, end], ...] of its sentences, in the chunk's text, found at ingest for snippets;
    # None for chunks stored before they were kept (their snippets segment the text again).
    sentences: Mapped[list | None] = mapped_column(JSON, nullable=True)

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


def vector_to_bytes(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype="<f4").tobytes()


def vectors_from_bytes(blobs: Iterable[bytes], dim: int) -> np.ndarray:
    data = b"".join(blobs)
    return np.frombuffer(data, dtype="<f4").reshape(-1, dim).astype(np.float32, copy=False)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets portal workers read while an ingest writes; the busy timeout
    # makes concurrent writers wait instead of failing.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def create_db_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


def upgrade_schema(engine: Engine) -> None:
    """Bring the database to the newest schema (a no-op when it is current)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


class Store:
    """An open database: sessions, schema and the few queries the indexes need."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_db_engine(url)
        upgrade_schema(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: committed when the block ends, rolled back on error."""
        session = self._sessions()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def get_meta(self, key: str) -> str | None:
        with self.session() as s:
            entry = s.get(MetaEntry, key)
            return entry.value if entry else None

    def set_meta(self, key: str, value: str) -> None:
        with self.session() as s:
            s.merge(MetaEntry(key=key, value=value))

    def chunk_fingerprint(self) -> str:
        """A cheap summary of the chunk table that changes whenever chunks are added or removed.

        Chunk ids only grow, so (count, max id, sum of ids) changes on every
        insert and every delete.
        """
        with self.session() as s:
            count, max_id, id_sum = s.execute(
                select(func.count(Chunk.id), func.coalesce(func.max(Chunk.id), 0),
                       func.coalesce(func.sum(Chunk.id), 0))
            ).one()
        return f"{count}:{max_id}:{id_sum}"

    def has_chunks(self) -> bool:
        with self.session() as s:
            return s.scalar(select(Chunk.id).limit(1)) is not None

    def chunk_ids(self) -> np.ndarray:
        with self.session() as s:
            ids = s.scalars(select(Chunk.id).order_by(Chunk.id)).all()
        return np.asarray(ids, dtype=np.int64)

    def chunk_language_counts(self) -> dict[str, int]:
        with self.session() as s:
            return dict(s.execute(select(Chunk.lang, func.count()).group_by(Chunk.lang)).all())

    def iter_chunks(self, ids: np.ndarray | None = None, batch: int = 4096) -> Iterator[ChunkBatch]:
        """Stored vectors, languages and keyword terms in batches, to rebuild indexes without re-embedding."""
        columns = (Chunk.id, Chunk.vector, Chunk.lang, Chunk.terms)
        with self.session() as s:
            if ids is None:
                stmt = select(*columns).order_by(Chunk.id).execution_options(yield_per=batch)
                for part in s.execute(stmt).partitions(batch):
                    yield ChunkBatch.from_rows(part)
                return
            for i in range(0, len(ids), batch):
                wanted = [int(x) for x in ids[i : i + batch]]
                yield ChunkBatch.from_rows(s.execute(select(*columns).where(Chunk.id.in_(wanted))).all())

    def state(self) -> tuple[str, str]:
        """(chunk fingerprint, latest document update): changes whenever anything searchable does."""
        with self.session() as s:
            latest = s.scalar(select(func.max(Document.updated_at)))
        return self.chunk_fingerprint(), str(latest)

    def dispose(self) -> None:
        self.engine.dispose()


@dataclass
class ChunkBatch:
    ids: np.ndarray
    vectors: list[bytes]
    langs: list[str]
    terms: list[list[str]]

    @classmethod
    def from_rows(cls, rows) -> ChunkBatch:
        return cls(
            np.asarray([r[0] for r in rows], dtype=np.int64), [r[1] for r in rows], [r[2] for r in rows],
            [r[3].split() if r[3] else [] for r in rows],
        )
