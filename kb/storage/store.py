"""The database: the source of truth for documents, chunks, their vectors and notes.

SQLite by default (one file in the data directory), PostgreSQL through
`KB_DATABASE_URL`. The schema is owned by Alembic migrations in
`kb/storage/migrations`, applied when a store opens, so a data directory made by an
older version is brought up to date instead of breaking.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import create_engine, delete, event, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, selectinload, sessionmaker

from kb.storage.models import ChangeSequence, Chunk, ChunkRemoval, Document, MetaEntry, SentenceVector

# Chunk removals kept in the log: a process more removals behind than this compares every chunk id.
REMOVALS_KEPT = 200_000


@dataclass(frozen=True)
class ChunkChanges:
    """What happened to the chunks since a position: ids added and removed (both ascending), the log's new position."""

    added: np.ndarray
    removed: np.ndarray
    removal_position: int


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
        """Insert or replace in one statement: two writers setting a new key at once (a worker's
        jobs on an empty database) must not both try to insert it."""
        insert = self._upsert_insert()
        with self.session() as s:
            if insert is None:
                s.merge(MetaEntry(key=key, value=value))
                return
            statement = insert(MetaEntry).values(key=key, value=value)
            s.execute(statement.on_conflict_do_update(index_elements=["key"], set_={"value": value}))

    def _upsert_insert(self):
        """The dialect's INSERT that takes ON CONFLICT (PostgreSQL, SQLite), else None."""
        return {"postgresql": postgresql.insert, "sqlite": sqlite.insert}.get(self.engine.dialect.name)

    def last_chunk_id(self) -> int:
        """The largest chunk id (0 when there are none): an index lookup."""
        with self.session() as s:
            return int(s.scalar(select(func.coalesce(func.max(Chunk.id), 0))))

    def has_chunks(self) -> bool:
        with self.session() as s:
            return s.scalar(select(Chunk.id).limit(1)) is not None

    def chunk_ids(self) -> np.ndarray:
        """Every chunk id, ascending: what an index compares itself with when the change sequence moved.

        On SQLite, without ORDER BY, so that the scan reads a small index (every index holds the
        rowid) instead of the table with its vectors and text: at a million chunks 0.9 s instead of
        19 s from a cold cache. PostgreSQL reads the ids in order from its primary key.
        """
        order = "" if self.engine.dialect.name == "sqlite" else " ORDER BY id"
        with self.engine.connect() as connection:
            result = connection.exec_driver_sql("SELECT id FROM chunks" + order)
            ids = np.fromiter((row[0] for row in result), np.int64)
        ids.sort()
        return ids

    def last_removal(self) -> int:
        """Where the chunk removal log stands (0 when empty): read before the data, as `state`."""
        with self.session() as s:
            return int(s.scalar(select(func.coalesce(func.max(ChunkRemoval.seq), 0))))

    def chunk_changes(self, after_id: int, after_removal: int) -> ChunkChanges | None:
        """Chunk ids added above `after_id` and removed past position `after_removal` of the log, ascending.

        None where the log cannot tell (its entries after `after_removal` were
        pruned, or the table was truncated): then compare every id (`chunk_ids`).
        """
        with self.engine.connect() as connection:
            first = connection.scalar(select(func.min(ChunkRemoval.seq)))
            if first is not None and first > after_removal + 1:  # pruned past us (or a gap: harmless)
                return None
            rows = connection.execute(select(ChunkRemoval.seq, ChunkRemoval.chunk_id)
                                      .where(ChunkRemoval.seq > after_removal)).all()
            added = connection.scalars(select(Chunk.id).where(Chunk.id > after_id).order_by(Chunk.id)).all()
        removed = np.unique(np.fromiter((r.chunk_id for r in rows), np.int64, len(rows)))
        if len(removed) and removed[0] < 0:
            return None
        position = max((r.seq for r in rows), default=after_removal)
        return ChunkChanges(np.asarray(added, np.int64), removed, position)

    def prune_chunk_removals(self, keep: int = REMOVALS_KEPT) -> None:
        """Forget all but the last `keep` removals; a process further behind compares every id instead."""
        with self.session() as s:
            newest = s.scalar(select(func.max(ChunkRemoval.seq)))
            if newest is not None and newest > keep:
                s.execute(delete(ChunkRemoval).where(ChunkRemoval.seq <= newest - keep))

    def chunk_language_counts(self, after_id: int = 0, up_to: int | None = None) -> dict[str, int]:
        """Chunks per language, of the ids in (after_id, up_to] (all by default): a range of the key when given."""
        stmt = select(Chunk.lang, func.count()).group_by(Chunk.lang)
        if after_id:
            stmt = stmt.where(Chunk.id > after_id)
        if up_to is not None:
            stmt = stmt.where(Chunk.id <= up_to)
        with self.session() as s:
            return dict(s.execute(stmt).all())

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

    def state(self) -> str:
        """Where the database's change sequence stands: moves whenever anything searchable does.

        One primary-key read (the triggers of migration 0013 move the counter in
        every writing transaction), cheap enough for every request. Read it
        before reading the data it describes: a change committed in between is
        then seen again at the next check, never missed.
        """
        with self.session() as s:
            row = s.get(ChangeSequence, 1)
        return f"{row.origin}:{row.seq}"

    def document_with_chunks(self, doc_id: int) -> Document | None:
        """A document with its chunks, tags and note loaded, or None."""
        with self.session() as s:
            return s.scalar(
                select(Document).where(Document.id == doc_id)
                .options(selectinload(Document.chunks), selectinload(Document.tags), selectinload(Document.note))
            )

    def sentence_vectors(self, keys: list[str], dimension: int) -> dict[str, np.ndarray]:
        """The stored vectors of these sentence keys (see `SentenceVector`); missing keys are left out."""
        found: dict[str, np.ndarray] = {}
        with self.session() as s:
            for start in range(0, len(keys), 500):
                rows = s.execute(select(SentenceVector.key, SentenceVector.vector)
                                 .where(SentenceVector.key.in_(keys[start : start + 500])))
                found.update((key, vectors_from_bytes([blob], dimension)[0]) for key, blob in rows)
        return found

    def keep_sentence_vectors(self, vectors: dict[str, np.ndarray]) -> None:
        """Store these sentence vectors; a key another process stored meanwhile keeps its vector.

        Best effort: a cache write that fails (SQLite busy with an ingest) costs
        the next answer an encode, never this answer.
        """
        if not vectors:
            return
        rows = [{"key": key, "vector": vector_to_bytes(vector)} for key, vector in vectors.items()]
        insert = self._upsert_insert()
        try:
            with self.session() as s:
                if insert is not None:
                    s.execute(insert(SentenceVector).values(rows).on_conflict_do_nothing(index_elements=["key"]))
                else:
                    for row in rows:
                        s.merge(SentenceVector(**row))
        except SQLAlchemyError:
            pass

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
