"""The in-memory search structures of a knowledge base, kept in step with its database.

Three structures answer a search: the vector index (FAISS), the keyword index
(BM25) and the chunk table (filters and facets). All three are caches of the
database, which holds every vector and every chunk's keyword terms; each is
repaired by comparing chunk ids with the database, whoever changed it (this
process, another ingest, another portal worker). The index files on disk carry
manifests so a process that starts finds them current, or brings them up to date
from stored data, never by re-embedding or re-segmenting.

The vector index keeps changes in a small delta over a memory-mapped base
(kb.index.vectors). When the delta has grown, the first process to notice folds
it into a new base and saves it; the others, waiting on the same lock, adopt
that file instead of building their own, so a node's workers keep sharing one
mapped copy.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
from filelock import FileLock

from kb.config import Settings
from kb.index.centering import LanguageCentroids, compute_centroids
from kb.index.chunk_table import ChunkTable
from kb.index.keywords import KeywordIndex
from kb.index.vectors import KINDS, Manifest, VectorIndex, VectorOptions
from kb.storage.store import Store, vectors_from_bytes

COMPACT_LOCK = ".vectors.compact.lock"


def vector_options(settings: Settings) -> VectorOptions:
    """The vector index's settings (KB_VECTOR_*), checked."""
    if settings.vector_index not in KINDS:
        raise ValueError(f"KB_VECTOR_INDEX is {settings.vector_index!r}: expected one of {', '.join(KINDS)}")
    return VectorOptions(settings.vector_index, settings.vector_flat_max, settings.vector_nlist,
                         settings.vector_nprobe, settings.vector_mmap)


class Indexes:
    def __init__(self, settings: Settings, store: Store, model_id: str, analyzer_version: str) -> None:
        self.settings = settings
        self.vector_options = vector_options(settings)
        self.store = store
        self.model_id = model_id
        self.analyzer_version = analyzer_version
        self.vectors: VectorIndex | None = None
        self.keywords = KeywordIndex()
        self.table = ChunkTable()
        self.centroids = LanguageCentroids()
        self._state: tuple[str, str] | None = None
        self._dirty = False
        self.lock = threading.RLock()

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
        """Load the saved indexes where they still fit, then bring everything up to date."""
        with self.lock:
            self.centroids = self._stored_centroids()
            dimension = self._dimension()
            loaded = VectorIndex.load(self.directory, self.vector_options)
            if loaded and self._fits(loaded[1], dimension):
                self.vectors = loaded[0]
            if self.vectors is None and dimension is not None:
                self.vectors = VectorIndex(dimension, self.vector_options)
            keyword_file = KeywordIndex.load(self.directory)
            if keyword_file and keyword_file[1].get("analyzer") == self.analyzer_version:
                self.keywords = keyword_file[0]
            self._sync(self.store.state())
            if self._dirty or self._vectors_grown():
                self.save()

    def _fits(self, manifest: Manifest, dimension: int | None) -> bool:
        """Whether a saved vector index was made by this model, centering and dimension."""
        return (manifest.model_id == self.model_id and manifest.centering == self.centroids.version
                and dimension == manifest.dimension)

    def _vectors_grown(self) -> bool:
        return self.vectors is not None and self.vectors.needs_compaction

    def refresh(self, writer: bool = False) -> bool:
        """Follow changes in the database; cheap when there are none (two aggregate queries).

        A `writer` (a process that just changed chunks) also recomputes the
        language centroids when the collection has drifted from them.
        """
        state = self.store.state()
        if state == self._state and not writer:
            return False
        with self.lock:
            if state != self._state:
                centroids = self._stored_centroids()
                if centroids.version != self.centroids.version:
                    self.centroids = centroids
                    self.vectors = None
                self._sync(state)
            if writer and self.settings.language_centering:
                langs, counts = np.unique(self.table.langs.astype(str), return_counts=True)
                if self.centroids.drifted(dict(zip(langs.tolist(), counts.tolist(), strict=True))):
                    self.rebuild(recompute_centroids=True)
            if self._vectors_grown():
                self._fold_vectors()
        return True

    def _sync(self, state: tuple[str, str]) -> None:
        """Remove chunks the database no longer has and add those an index lacks."""
        db_ids = self.store.chunk_ids()
        self.table.sync(self.store, db_ids)
        dimension = self._dimension()
        if self.vectors is None and dimension is not None:
            self.vectors = VectorIndex(dimension, self.vector_options)
        need = np.empty(0, np.int64)
        for index in self._id_indexes():
            have = index.ids()
            stale = np.setdiff1d(have, db_ids, assume_unique=True)
            if len(stale):
                index.remove(stale)
                self._dirty = True
            need = np.union1d(need, np.setdiff1d(db_ids, have, assume_unique=True))
        if len(need):
            whole = len(need) == len(db_ids)
            have_vectors = set(self.vectors.ids().tolist()) if self.vectors is not None else set()
            have_terms = set(self.keywords.ids().tolist())
            for batch in self.store.iter_chunks(None if whole else need):
                self._add_batch(batch, have_vectors, have_terms)
            self._dirty = True
        self._state = state

    def _id_indexes(self) -> list:
        return [self.keywords] + ([self.vectors] if self.vectors is not None else [])

    def _add_batch(self, batch, have_vectors: set[int], have_terms: set[int]) -> None:
        ids = batch.ids.tolist()
        if self.vectors is not None:
            rows = [i for i, cid in enumerate(ids) if cid not in have_vectors]
            if rows:
                raw = vectors_from_bytes([batch.vectors[i] for i in rows], self.vectors.dimension)
                self.vectors.add(batch.ids[rows], self.centroids.center(raw, [batch.langs[i] for i in rows]))
        rows = [i for i, cid in enumerate(ids) if cid not in have_terms]
        if rows:
            self.keywords.add([ids[i] for i in rows], [batch.terms[i] for i in rows])

    def rebuild(self, recompute_centroids: bool) -> None:
        """New vector and keyword indexes from every stored chunk (and fresh centroids if asked)."""
        with self.lock:
            dimension = self._dimension()
            batches = list(self.store.iter_chunks())
            if recompute_centroids and self.settings.language_centering and dimension is not None:
                self.centroids = compute_centroids(
                    (vectors_from_bytes(b.vectors, dimension), b.langs) for b in batches
                )
                self.store.set_meta("centroids", self.centroids.to_json())
            self.vectors = VectorIndex(dimension, self.vector_options) if dimension is not None else None
            self.keywords = KeywordIndex()
            for batch in batches:
                self._add_batch(batch, set(), set())
            del batches
            if self.vectors is not None:
                self.vectors.compact()
            self._state = self.store.state()
            self.table.sync(self.store, self.store.chunk_ids())
            self._dirty = True

    def _fold_vectors(self) -> None:
        """Fold the vector delta into a new base and save it, or adopt the one another process just saved.

        One process at a time (a lock file): the others then find the new file,
        take it (mapped, so shared) and bring it up to date from the database.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        with self.lock, FileLock(str(self.directory / COMPACT_LOCK)):
            saved = VectorIndex.load(self.directory, self.vector_options)
            if (saved and self._fits(saved[1], self._dimension()) and saved[0].token != self.vectors.token
                    and not saved[0].needs_compaction):
                self.vectors = saved[0]
                self._sync(self.store.state())
            if self.vectors.needs_compaction:
                self.vectors.compact()
            self._save_vectors()

    def _save_vectors(self) -> None:
        if self.vectors is not None:
            fingerprint = self._state[0] if self._state else self.store.chunk_fingerprint()
            self.vectors.save(self.directory, Manifest(
                self.model_id, self.vectors.dimension, len(self.vectors), fingerprint, self.centroids.version,
            ))

    def save(self) -> None:
        with self.lock:
            fingerprint = self._state[0] if self._state else self.store.chunk_fingerprint()
            if self._vectors_grown():
                self._fold_vectors()
            else:
                self._save_vectors()
            self.keywords.save(self.directory, {
                "analyzer": self.analyzer_version, "count": len(self.keywords), "fingerprint": fingerprint,
            })
            self._dirty = False

    @property
    def dirty(self) -> bool:
        return self._dirty

    # -- queries ---------------------------------------------------------------------

    def center_query(self, vector: np.ndarray, lang: str) -> np.ndarray:
        return self.centroids.center(vector[None, :], [lang])[0]
