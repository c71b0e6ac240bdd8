"""The in-memory search structures of a knowledge base, kept in step with its database.

Three structures answer a search: the vector index (FAISS), the keyword index
(BM25 on tantivy) and the chunk table (filters and facets). All three are caches of the
database, which holds every vector and every chunk's keyword terms; each is
repaired by comparing chunk ids with the database, whoever changed it (this
process, another ingest, another portal worker). The index files on disk carry
manifests so a process that starts finds them current, or brings them up to date
from stored data, never by re-embedding or re-segmenting.

The keyword index is one tantivy directory per node that every process of the
node reads and, one at a time, writes (kb.index.keywords): a change committed
by one process is followed by the others on their next catch-up.

The vector index keeps changes in a small delta over a memory-mapped base
(kb.index.vectors). When the delta has grown, the first process to notice folds
it into a new base and saves it; the others, waiting on the same lock, adopt
that file instead of building their own, so a node's workers keep sharing one
mapped copy.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import numpy as np
from filelock import FileLock

from kb.config import Settings
from kb.index.centering import LanguageCentroids, compute_centroids
from kb.index.chunk_table import ChunkTable
from kb.index.ids import differences, in_sorted
from kb.index.keywords import KeywordIndex
from kb.index.vectors import KINDS, Manifest, VectorIndex, VectorOptions
from kb.storage.store import ChunkChanges, Store, vectors_from_bytes

COMPACT_LOCK = ".vectors.compact.lock"
EMPTY = np.empty(0, np.int64)


def vector_options(settings: Settings) -> VectorOptions:
    """The vector index's settings (KB_VECTOR_*), checked."""
    if settings.vector_index not in KINDS:
        raise ValueError(f"KB_VECTOR_INDEX is {settings.vector_index!r}: expected one of {', '.join(KINDS)}")
    return VectorOptions(settings.vector_index, settings.vector_flat_max, settings.vector_nlist,
                         settings.vector_nprobe, settings.vector_mmap)


def can_catch_up(saved: str, current: str) -> bool:
    """Whether files saved at database state `saved` can be brought to `current` by following changes.

    Not when they come from another database (another origin), nor from a
    later point than the database (restored from a backup since): then the
    documents they describe may differ under the same ids.
    """
    saved_origin, _, saved_seq = saved.partition(":")
    origin, _, seq = current.partition(":")
    return saved_origin == origin and saved_seq.isdigit() and seq.isdigit() and int(saved_seq) <= int(seq)


class Indexes:
    def __init__(self, settings: Settings, store: Store, model_id: str, analyzer_version: str,
                 searchable: bool = True) -> None:
        self.settings = settings
        # False in a process that writes but never searches (`kb worker`): it keeps only the language
        # centroids, and the nodes that search follow its writes through the database (`refresh`).
        self.searchable = searchable
        self.vector_options = vector_options(settings)
        self.store = store
        self.model_id = model_id
        self.analyzer_version = analyzer_version
        self.vectors: VectorIndex | None = None
        self.keywords = KeywordIndex()
        self.table = ChunkTable()
        self.centroids = LanguageCentroids()
        self._state: str | None = None  # the database state (Store.state) the indexes match
        self._removals: int | None = None  # and the chunk removal log's position then (Store.last_removal)
        self._table_state: str | None = None  # the state of the saved chunk table
        self._dirty = False
        self.lock = threading.RLock()
        self._batch = threading.local()  # this thread's run of writes (`writes_batched`)
        self._counted: tuple[int, int, dict[str, int]] | None = None  # see `language_counts`

    @property
    def directory(self) -> Path:
        return self.settings.index_dir

    def _stored_centroids(self) -> LanguageCentroids:
        if not self.settings.language_centering:
            return LanguageCentroids()
        return LanguageCentroids.from_json(self.store.get_meta("centroids"))

    def _dimension(self) -> int | None:
        value = self.store.get_meta("dimension")
        return int(value) if value else None

    # -- opening and following the database -------------------------------------------

    def open(self) -> None:
        """Load the saved indexes where they still fit, then bring everything up to date.

        A chunk table saved at the database's current state is taken as it is,
        without reading a chunk id: it then tells the other indexes which ids
        the database holds.
        """
        with self.lock:
            state = self.store.state()  # before any data: a change made meanwhile is caught up next time
            self.centroids = self._stored_centroids()
            if not self.searchable:
                return
            dimension = self._dimension()
            loaded = VectorIndex.load(self.directory, self.vector_options)
            if loaded and self._fits(loaded[1], dimension):
                self.vectors = loaded[0]
            if self.vectors is None and dimension is not None:
                self.vectors = VectorIndex(dimension, self.vector_options)
            self.keywords = KeywordIndex.open(self.directory, self._keyword_manifest())
            current = None
            table_file = ChunkTable.load(self.directory)
            if table_file is not None and can_catch_up(table_file[1]["state"], state):
                self.table, manifest = table_file
                self._table_state = manifest["state"]
                if manifest["state"] == state and manifest["last_id"] == self.store.last_chunk_id():
                    current = self.table.ids
            self._sync(state, current)
            if self.dirty or self._vectors_grown():
                self.save()

    def _keyword_manifest(self) -> dict:
        """What a keyword index must have been made with to be used: terms from this analyzer."""
        return {"analyzer": self.analyzer_version}

    def _fits(self, manifest: Manifest, dimension: int | None) -> bool:
        """Whether a saved vector index was made by this model, centering and dimension."""
        return (manifest.model_id == self.model_id and manifest.centering == self.centroids.version
                and dimension == manifest.dimension)

    def _vectors_grown(self) -> bool:
        return self.vectors is not None and self.vectors.needs_compaction

    def refresh(self, writer: bool = False) -> bool:
        """Follow changes in the database; cheap when there are none (one row read, `Store.state`).

        A `writer` (a process that just changed chunks) also recomputes the
        language centroids when the collection has drifted from them.
        """
        if writer and self.batching:
            self._batch.pending = True  # followed once, when the run of writes ends
            return False
        if not self.searchable:
            if writer:
                self._keep_centroids()
            return False
        state = self.store.state()
        if state == self._state and not writer:
            return False
        with self.lock:
            if state != self._state:
                centroids = self._stored_centroids()
                recenter = centroids.version != self.centroids.version
                self.centroids = centroids
                self._sync(state, new_vectors=recenter)
            if writer and self.settings.language_centering:
                langs, counts = np.unique(self.table.langs.astype(str), return_counts=True)
                if self.centroids.drifted(dict(zip(langs.tolist(), counts.tolist(), strict=True))):
                    self.rebuild(recompute_centroids=True)
            if self._vectors_grown():
                self._fold_vectors()
        return True

    def _keep_centroids(self) -> None:
        """Recompute the language centroids when the collection has drifted from them, from the database alone.

        What a writer that never searches owes the others: without it, a
        knowledge base filled by `kb worker` alone would never be centered.
        """
        if not self.settings.language_centering:
            return
        with self.lock:
            self.centroids = self._stored_centroids()
            if self.centroids.drifted(self.language_counts()):
                self._recompute_centroids(self.store.iter_chunks())

    def language_counts(self) -> dict[str, int]:
        """Chunks per language in the database, counting only the chunks added since the last count.

        A grouped count of every chunk takes 85 ms at 1M on PostgreSQL, after
        every job of a worker; the chunks added since are a range of the key.
        Once a chunk was removed (the removal log moved), everything is counted again.
        """
        removals, last = self.store.last_removal(), self.store.last_chunk_id()
        known = self._counted
        if known is not None and known[0] == removals and known[1] <= last:
            counts = dict(known[2])
            for lang, n in self.store.chunk_language_counts(after_id=known[1], up_to=last).items():
                counts[lang] = counts.get(lang, 0) + n
        else:
            counts = self.store.chunk_language_counts(up_to=last)
        self._counted = (removals, last, counts)
        return counts

    def _recompute_centroids(self, batches) -> None:
        """Centroids of these stored chunks, kept in the database for every process and node."""
        dimension = self._dimension()
        if dimension is None:
            return
        self.centroids = compute_centroids((vectors_from_bytes(b.vectors, dimension), b.langs) for b in batches)
        self.store.set_meta("centroids", self.centroids.to_json())  # moves the change sequence: searchers re-center

    @property
    def batching(self) -> bool:
        """Whether this thread is inside `writes_batched`."""
        return getattr(self._batch, "depth", 0) > 0

    @contextmanager
    def writes_batched(self) -> Iterator[None]:
        """Follow this thread's run of writes (a queued job's files) once, when it ends, instead of after each.

        Each writer's follow commits the node's keyword index and checks the
        centroids: about 30 ms whatever the change, a tenth of a small file's
        ingest. Searches meanwhile follow the database as always.
        """
        depth = getattr(self._batch, "depth", 0)
        self._batch.depth = depth + 1
        try:
            yield
        finally:
            self._batch.depth = depth
            if depth == 0 and getattr(self._batch, "pending", False):
                self._batch.pending = False
                self.refresh(writer=True)

    def _sync(self, state: str, db_ids: np.ndarray | None = None, new_vectors: bool = False) -> None:
        """Remove chunks the database no longer has and add those an index lacks.

        `db_ids`: the database's chunk ids when already known (a chunk table
        saved at `state`), else they are read. `new_vectors`: build the vector
        index afresh (the centroids changed), aside, then swap it in.
        """
        dimension = self._dimension()
        whole = new_vectors or (self.vectors is None and dimension is not None)
        if db_ids is None and not whole and self._removals is not None:
            changes = self.store.chunk_changes(int(self.table.ids[-1]) if len(self.table.ids) else 0, self._removals)
            if changes is not None:  # the usual case: read what changed, not a million ids
                self.table.sync(self.store, changes=changes)
                self._catch_up(self._id_indexes(), changes=changes)
                self._state, self._removals = state, changes.removal_position
                return
        removals = self.store.last_removal()  # before the ids, as `state` is
        if db_ids is None:
            db_ids = self.store.chunk_ids()
            self.table.sync(self.store, db_ids)
        if whole and dimension is not None:
            fresh = VectorIndex(dimension, self.vector_options)
            self._catch_up([fresh], db_ids)
            self.vectors = fresh
        self._catch_up(self._id_indexes(), db_ids)
        self._state, self._removals = state, removals

    def _catch_up(self, indexes: list, db_ids: np.ndarray | None = None, changes: ChunkChanges | None = None) -> None:
        """Bring these indexes to hold exactly `db_ids` (or apply `changes`), from stored vectors and terms.

        The keyword index is compared and changed inside one of its batches:
        under the node's writer lock, after following what other processes
        committed, so two processes catching up at once do the work once.
        """
        keywords = next((i for i in indexes if isinstance(i, KeywordIndex)), None)
        with keywords.changes() if keywords is not None else nullcontext():
            self._catch_up_now(indexes, db_ids, changes)

    def _catch_up_now(self, indexes: list, db_ids: np.ndarray | None, changes: ChunkChanges | None) -> None:
        need = np.empty(0, np.int64)
        for index in indexes:
            have = index.ids()
            if changes is None and len(have) == len(db_ids) and np.array_equal(have, db_ids):
                continue  # the usual case at open: a linear check instead of two sorts of a million ids
            stale, lacking = differences(have, db_ids, changes)
            if len(stale):
                index.remove(stale)
                self._dirty = True
            need = np.union1d(need, lacking)
        if len(need):
            whole = db_ids is not None and len(need) == len(db_ids)
            vectors = next((i for i in indexes if isinstance(i, VectorIndex)), None)
            keywords = next((i for i in indexes if isinstance(i, KeywordIndex)), None)
            have_vectors = vectors.ids() if vectors is not None else EMPTY
            have_terms = keywords.ids() if keywords is not None else EMPTY
            for batch in self.store.iter_chunks(None if whole else need):
                self._add_batch(batch, vectors, keywords, have_vectors, have_terms)
            self._dirty = True

    def _id_indexes(self) -> list:
        return [self.keywords] + ([self.vectors] if self.vectors is not None else [])

    def _add_batch(self, batch, vectors: VectorIndex | None, keywords: KeywordIndex | None,
                   have_vectors: np.ndarray = EMPTY, have_terms: np.ndarray = EMPTY) -> None:
        """Add a batch of stored chunks to the indexes that lack them (`have_*`: the ids each holds, ascending)."""
        ids = batch.ids.tolist()
        if vectors is not None:
            rows = np.flatnonzero(~in_sorted(batch.ids, have_vectors)).tolist()
            if rows:
                raw = vectors_from_bytes([batch.vectors[i] for i in rows], vectors.dimension)
                vectors.add(batch.ids[rows], self.centroids.center(raw, [batch.langs[i] for i in rows]))
        if keywords is not None:
            rows = np.flatnonzero(~in_sorted(batch.ids, have_terms)).tolist()
            if rows:
                keywords.add([ids[i] for i in rows], [batch.terms[i] for i in rows], [batch.langs[i] for i in rows])

    def rebuild(self, recompute_centroids: bool) -> None:
        """New vector and keyword indexes from every stored chunk (and fresh centroids if asked).

        Built aside and swapped in whole, so searches meanwhile use the old ones
        (the keyword index in a new directory, which the node's other processes
        follow at their next catch-up).
        """
        with self.lock:
            state, removals = self.store.state(), self.store.last_removal()
            dimension = self._dimension()
            batches = list(self.store.iter_chunks())
            if recompute_centroids and self.settings.language_centering:
                self._recompute_centroids(batches)
            vectors = VectorIndex(dimension, self.vector_options) if dimension is not None else None
            keywords = KeywordIndex.aside(self.directory, self._keyword_manifest())
            with keywords.changes():  # one commit, then the node's index switches to it
                for batch in batches:
                    self._add_batch(batch, vectors, keywords)
            del batches
            if vectors is not None:
                vectors.compact()
            held = keywords.ids() if vectors is None else np.union1d(vectors.ids(), keywords.ids())
            self.table.sync(self.store, np.sort(held))
            self.vectors, self.keywords, self._state, self._removals = vectors, keywords, state, removals
            self._dirty = True

    def _fold_vectors(self) -> None:
        """Fold the vector delta into a new base and save it, or adopt the one another process just saved.

        One process at a time (a lock file): the others then find the new file,
        take it (mapped, so shared), bring it to the ids this process's indexes
        hold, and only then swap it in, so a search never sees it half done.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        with self.lock, FileLock(str(self.directory / COMPACT_LOCK)):
            saved = VectorIndex.load(self.directory, self.vector_options)
            if (saved and self._fits(saved[1], self._dimension()) and saved[0].token != self.vectors.token
                    and not saved[0].needs_compaction):
                self._catch_up([saved[0]], self.table.ids)
                self.vectors = saved[0]
            if self.vectors.needs_compaction:
                self.vectors.compact()
            self._save_vectors()

    def _fingerprint(self) -> str:
        return self._state if self._state is not None else self.store.state()

    def _save_vectors(self) -> None:
        if self.vectors is not None:
            self.vectors.save(self.directory, Manifest(
                self.model_id, self.vectors.dimension, len(self.vectors), self._fingerprint(), self.centroids.version,
            ))

    def save(self) -> None:
        """Save the vector index and the chunk table; the keyword index committed each change already."""
        with self.lock:
            fingerprint = self._fingerprint()
            if self._vectors_grown():
                self._fold_vectors()
            else:
                self._save_vectors()
            if self._table_state != fingerprint:
                self.table.save(self.directory, fingerprint)
                self._table_state = fingerprint
            self._dirty = False

    @property
    def dirty(self) -> bool:
        """Whether the saved files are behind: an index changed, or the chunk table was saved at another state."""
        return self._dirty or (self._state is not None and self._table_state != self._state)

    # -- queries ---------------------------------------------------------------------

    def center_query(self, vector: np.ndarray, lang: str) -> np.ndarray:
        return self.centroids.center(vector[None, :], [lang])[0]
