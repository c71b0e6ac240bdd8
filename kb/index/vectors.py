"""The vector index: FAISS inner product over normalized vectors, keyed by chunk id.

Exact while small, approximate when large (`plan`). Up to `flat_max` vectors
(KB_VECTOR_FLAT_MAX) the index is a flat scan; above it, a FAISS IVF index: the
vectors are grouped around k-means centroids ("lists") and a query scans only
the `nprobe` lists whose centroids are closest to it. Its lists hold each
vector in half precision (`IndexIVFScalarQuantizer`, fp16 codes of the vector
itself, not of its residual).

Why IVF and not HNSW: FAISS can remove ids from an IVF index but not from
HNSW, so folding deletions in is a copy of the lists, not a rebuild of a
graph; building is k-means on a sample plus one assignment per vector (HNSW
inserts are several times slower on two cores); a filter can widen `nprobe`
until the search is exhaustive over the allowed ids, which HNSW cannot; and
Why fp16 codes: they halve the file every worker maps (1.54 GB to 0.77 GB at a
million chunks), scan faster than float32 (less memory to read), and change a
cosine by at most ~1e-3, so the top 10 agree with float32's on 99.95% of ids
and `reconstruct` stays good enough for fusion and relevance. IVF-PQ would
shrink the file 8-32x more but costs recall and makes `reconstruct` coarse.
Bases saved as IVF-Flat (float32) by earlier versions still open.

Shape: an immutable base and a small delta. The base (flat or IVF) is what is
saved in `vectors.faiss`; loaded, it is memory-mapped read-only
(`faiss.IO_FLAG_MMAP_IFC`), so the workers of a node share one copy through
the page cache and opening costs milliseconds. FAISS aborts the process on any
add or remove to a mapped index, so changes go elsewhere: new vectors to an
exact in-memory delta, removed ids to a list the base search excludes through
an IDSelector. When the delta or the removed list passes a share of the base,
or the base's kind no longer fits the size, `compact` builds a new base.
`save` writes the base only when it changed; otherwise the delta alone
(`vectors.delta.npz`).

The files are a cache of vectors the database already holds. They are saved
atomically next to a manifest (model, dimension, count, and a fingerprint of
the database's chunk table); whoever opens them compares the manifest with the
database and repairs any difference from the stored vectors, never by
re-embedding.
"""

from __future__ import annotations

import contextlib
import json
import math
import threading
import uuid
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import BinaryIO

import faiss
import numpy as np
from filelock import FileLock

from kb.index.ids import sorted_with
from kb.index.locks import ReadWriteLock
from kb.storage.files import atomic_write

INDEX_FILE = "vectors.faiss"
DELTA_FILE = "vectors.delta.npz"
MANIFEST_FILE = "vectors.json"
LOCK_FILE = ".vectors.lock"
FORMAT_VERSION = 2

FLAT, IVF = "flat", "ivf"
KINDS = ("auto", FLAT, IVF)

# Compaction folds the delta and the removed ids into a new base. It is due when
# the delta holds more than _DELTA_SHARE of the base's rows (and at least
# _MIN_DELTA_ROWS), or the removed ids more than _DEAD_SHARE: at a million
# chunks, once per 50,000 added, so an add stays cheap and the exact delta
# adds at most ~2 ms to a query and ~75 MB to a worker.
_DELTA_SHARE = 0.05
_MIN_DELTA_ROWS = 20_000
_DEAD_SHARE = 0.1
_MIN_DEAD_ROWS = 20_000
# k-means for IVF trains on at most this many vectors per list (FAISS warns below 39).
_TRAIN_PER_LIST = 40


@dataclass(frozen=True)
class VectorOptions:
    """How to index: `kind` auto|flat|ivf, the size where auto turns approximate, IVF overrides, memory-mapping."""

    kind: str = "auto"
    flat_max: int = 50_000
    nlist: int | None = None
    nprobe: int | None = None
    mmap: bool = True


@dataclass(frozen=True)
class Plan:
    kind: str
    nlist: int = 0
    nprobe: int = 0


def plan(n: int, options: VectorOptions) -> Plan:
    """The base index for `n` vectors.

    Flat up to `flat_max` (auto; 50,000 by default: measured here, a flat scan
    of 50k vectors already costs about as much as encoding the query, 10-25 ms,
    and a hybrid query runs two or three of them). IVF above: `nlist` is 2·√n
    rounded to the nearest power of two (512 lists at 50k-100k, 1,024 at 200k,
    2,048 at 1M: lists of ~500 vectors; 4·√n recalled the same at the same
    share scanned but took 2.5x longer to train and fill), at most n/39 so that
    k-means has points enough. `nprobe` is nlist/16, ~6% of the vectors scanned
    (at least 16 lists: small indexes forced to IVF need a larger share), but
    no more than 64 lists where that is at least nlist/32. On the synthetic
    knowledge base with real questions' vectors, recall@10 against the flat
    scan was 0.97 at 50k-100k and 0.99 at 200k, where nlist/32 (32 lists) fell
    to 0.94; at 1M, 64 lists (nlist/32) recall 0.977 for XQuAD's questions and
    0.997 for our staff's, against 0.995 and 0.998 with 128, in half the time
    (2.5 against 4.8 ms; docs/scaling.md).
    """
    kind = options.kind if options.kind in (FLAT, IVF) else (IVF if n > options.flat_max else FLAT)
    if kind == FLAT or n == 0:  # nothing to train an IVF on
        return Plan(FLAT)
    nlist = options.nlist or max(1, min(1 << round(math.log2(2 * math.sqrt(n))), _pow2_floor(n / 39)))
    return Plan(IVF, nlist, _nprobe(nlist, options))


def _nprobe(nlist: int, options: VectorOptions) -> int:
    return min(nlist, options.nprobe or max(16, nlist // 32, min(nlist // 16, 64)))


def _pow2_floor(x: float) -> int:
    return 1 << max(0, int(math.floor(math.log2(max(x, 1.0)))))


@dataclass
class Manifest:
    model_id: str
    dimension: int
    count: int
    fingerprint: str
    centering: str = "none"
    format: int = FORMAT_VERSION
    kind: str = FLAT
    base_count: int = -1
    token: str = ""


@dataclass(frozen=True)
class _Base:
    """An immutable base index, and where each of its ids lives (list, row) so `reconstruct` is a lookup."""

    index: faiss.Index
    lists: list[np.ndarray]  # each list's vectors (float16 or float32): views into the index's memory (the mapped file)
    ids: np.ndarray  # sorted
    list_of: np.ndarray  # aligned with ids
    row_of: np.ndarray
    nlist: int  # 0: flat
    mapped: bool = False

    @classmethod
    def of(cls, index: faiss.Index, mapped: bool = False) -> _Base:
        lists: list[np.ndarray] = []
        list_ids: list[np.ndarray] = []
        dimension = index.d
        if isinstance(index, faiss.IndexIVF):
            dtype = _code_dtype(index)
            invlists = index.invlists
            for number in range(index.nlist):
                size = invlists.list_size(number)
                if size:
                    ids = faiss.rev_swig_ptr(invlists.get_ids(number), size)
                    codes = faiss.rev_swig_ptr(invlists.get_codes(number), size * index.code_size)
                else:
                    ids, codes = np.empty(0, np.int64), np.empty(0, np.uint8)
                list_ids.append(np.asarray(ids, np.int64))
                lists.append(codes.view(dtype).reshape(size, dimension))
            nlist = int(index.nlist)
        else:
            lists.append(_flat_rows(index))
            list_ids.append(faiss.vector_to_array(index.id_map).astype(np.int64))
            nlist = 0
        all_ids = np.concatenate(list_ids)
        list_of = np.repeat(np.arange(len(lists), dtype=np.int32), [len(i) for i in list_ids])
        row_of = np.concatenate([np.arange(len(i), dtype=np.int32) for i in list_ids])
        order = np.argsort(all_ids, kind="stable")
        return cls(index, lists, all_ids[order], list_of[order], row_of[order], nlist, mapped)

    def ids_by_list(self) -> list[np.ndarray]:
        """Each list's ids in row order."""
        order = np.lexsort((self.row_of, self.list_of))
        return np.split(self.ids[order], np.cumsum([len(rows) for rows in self.lists])[:-1])


class VectorIndex:
    """Cosine search over chunk ids with adds and removes at any time: a base (flat or IVF) plus an exact delta."""

    def __init__(self, dimension: int, options: VectorOptions | None = None) -> None:
        self.dimension = dimension
        self.options = options or VectorOptions()
        self.token = ""  # of the base as saved; "" until it is
        self.base = _Base.of(_flat(dimension, base=True))
        self.delta = _flat(dimension)
        self.removed = np.empty(0, np.int64)  # sorted ids of the base that are no longer live
        self._not_removed: faiss.IDSelector | None = None
        # Threads: searches read under `_rw`; changes take `_changing` (one at a time), build what
        # they can aside, and hold `_rw.writing()` only to change the delta or swap in a new state.
        self._rw = ReadWriteLock()
        self._changing = threading.Lock()

    @property
    def kind(self) -> str:
        return IVF if self.base.nlist else FLAT

    @property
    def nprobe(self) -> int:
        return _nprobe(self.base.nlist, self.options) if self.base.nlist else 0

    def _base_rows(self, ids: np.ndarray) -> np.ndarray:
        """Position of each id among the base's live ids, -1 where it is not one."""
        ids = np.asarray(ids, np.int64)
        base_ids = self.base.ids
        pos = np.searchsorted(base_ids, ids)
        found = pos < len(base_ids)
        found[found] = base_ids[pos[found]] == ids[found]
        if len(self.removed):
            found &= ~np.isin(ids, self.removed)
        return np.where(found, pos, -1)

    # -- size and ids ----------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.base.ids) - len(self.removed) + int(self.delta.ntotal)

    def ids(self) -> np.ndarray:
        """The live chunk ids, ascending (in time linear in the base: this runs at every catch-up)."""
        with self._rw.reading():
            base, removed, delta = self.base.ids, self.removed, self.delta
            delta_ids = faiss.vector_to_array(delta.id_map).astype(np.int64)
        return sorted_with(base, add=delta_ids, remove=removed)

    # -- changes ---------------------------------------------------------------------

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids) == 0:
            return
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, self.dimension)
        with self._changing, self._rw.writing():
            self.delta.add_with_ids(vectors, np.ascontiguousarray(ids, dtype=np.int64))

    def remove(self, ids: np.ndarray) -> int:
        if len(ids) == 0:
            return 0
        ids = np.unique(np.asarray(ids, np.int64))
        with self._changing:
            gone = ids[self._base_rows(ids) >= 0]
            removed = np.union1d(self.removed, gone) if len(gone) else self.removed
            selector = faiss.IDSelectorNot(faiss.IDSelectorBatch(removed)) if len(gone) else self._not_removed
            with self._rw.writing():
                count = int(self.delta.remove_ids(faiss.IDSelectorBatch(ids))) if self.delta.ntotal else 0
                self._not_removed, self.removed = selector, removed
        return count + len(gone)

    @property
    def needs_compaction(self) -> bool:
        """True when the delta or the removed ids have grown, or the base's kind no longer fits the size."""
        size = len(self.base.ids)
        if int(self.delta.ntotal) > max(_MIN_DELTA_ROWS, _DELTA_SHARE * size):
            return True
        if len(self.removed) > max(_MIN_DEAD_ROWS, _DEAD_SHARE * size):
            return True
        size = len(self)
        target = plan(size, self.options)
        if target.kind != self.kind:
            # With kind "auto", not within 10% of flat_max, so a size that hovers there does not flip the kind.
            margin = self.options.flat_max / 10 if self.options.kind == "auto" else 0
            return size > 0 and abs(size - self.options.flat_max) > margin
        return target.kind == IVF and not self._keeps_centroids(target)

    def _keeps_centroids(self, target: Plan) -> bool:
        """Whether compaction may fill this IVF base's lists rather than run k-means again.

        While the planned nlist is within 2x of the base's: lists somewhat long
        or short cost speed, not recall, since nprobe is a share of nlist.
        """
        return self.kind == IVF == target.kind and self.base.nlist / 2 <= target.nlist <= self.base.nlist * 2

    def compact(self) -> None:
        """Fold the delta and the removed ids into a new base of the kind `plan` gives for the live size.

        An IVF base of about the right size keeps its centroids: its lists are
        copied without the removed ids and only the delta is assigned. Otherwise
        the base is built afresh (k-means on a sample for IVF).
        """
        with self._changing:  # searches go on with the old state until the swap at the end
            base = _Base.of(self._build_base())
            with self._rw.writing():
                self.base = base
                self.delta = _flat(self.dimension)
                self._not_removed = None
                self.removed = np.empty(0, np.int64)
                self.token = ""

    def _build_base(self) -> faiss.Index:
        target = plan(len(self), self.options)
        delta_ids = faiss.vector_to_array(self.delta.id_map).astype(np.int64)
        delta_vectors = _flat_rows(self.delta)
        if self._keeps_centroids(target):
            index = _ivf_like(self.base.index)
            for number, (rows, ids) in enumerate(self._live_lists()):
                if len(ids):
                    codes = np.ascontiguousarray(rows, np.float16)  # a base saved as float32 turns fp16 here
                    index.invlists.add_entries(number, len(ids), faiss.swig_ptr(ids),
                                               faiss.swig_ptr(codes.view(np.uint8)))
                    index.ntotal += len(ids)
            if len(delta_ids):
                index.add_with_ids(delta_vectors, delta_ids)
        else:
            parts = [part for part in self._live_lists() if len(part[1])] + [(delta_vectors, delta_ids)]
            if len(parts) == 1:  # everything is in the delta (a rebuild): no copy
                vectors, ids = parts[0]
            else:
                vectors, ids = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
            index = _build(target, self.dimension, ids, vectors)
        return index

    def _live_lists(self):
        """(vectors, ids) of each list of the base, without the removed ids."""
        for rows, ids in zip(self.base.lists, self.base.ids_by_list(), strict=True):
            if len(self.removed):
                keep = ~np.isin(ids, self.removed)
                yield np.ascontiguousarray(rows[keep]), np.ascontiguousarray(ids[keep])
            else:
                yield rows, np.ascontiguousarray(ids)

    # -- queries ---------------------------------------------------------------------

    def search(
        self, query: np.ndarray, k: int, allowed_ids: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Best `k` chunk ids and cosine scores; `allowed_ids` restricts the search itself.

        Filtering inside FAISS (not after it) means a filter can never empty a
        page that has matches further down. On an IVF base a filter that allows
        a share s of the vectors scans nprobe/s lists, so a narrow filter becomes
        an exact scan of the allowed vectors.
        """
        if len(self) == 0 or k <= 0:
            return np.empty(0, np.int64), np.empty(0, np.float32)
        if allowed_ids is not None:
            if len(allowed_ids) == 0:
                return np.empty(0, np.int64), np.empty(0, np.float32)
            k = min(k, len(allowed_ids))
        k = min(k, len(self))
        query = np.ascontiguousarray(query, dtype=np.float32).reshape(1, self.dimension)
        with self._rw.reading():
            allowed, base_allowed = self._selectors(allowed_ids)
            with _one_thread():
                found = [self._search_base(query, k, allowed_ids, base_allowed),
                         _search(self.delta, query, k, allowed)]
        ids = np.concatenate([f[0] for f in found])
        scores = np.concatenate([f[1] for f in found])
        keep = ids >= 0
        ids, scores = ids[keep], scores[keep]
        order = np.argsort(-scores, kind="stable")[:k]
        return ids[order], scores[order]

    def _search_base(self, query: np.ndarray, k: int, allowed_ids: np.ndarray | None,
                     selector: faiss.IDSelector | None) -> tuple[np.ndarray, np.ndarray]:
        base = self.base
        if not base.nlist or len(base.ids) <= len(self.removed):
            return _search(base.index, query, k, selector)
        share = 1.0 if allowed_ids is None else len(allowed_ids) / len(self)
        nprobe = min(base.nlist, math.ceil(self.nprobe / max(share, 1e-9)))
        scores, ids = base.index.search(query, min(k, len(base.ids)),
                                        params=faiss.SearchParametersIVF(sel=selector, nprobe=nprobe))
        return ids[0], scores[0]

    def _selectors(self, allowed_ids: np.ndarray | None) -> tuple[faiss.IDSelector | None, faiss.IDSelector | None]:
        """Selectors for the delta (the filter) and for the base (the filter without the removed ids).

        A bitmap over the id range where it is dense enough: a hash set of a
        million allowed ids, built for every query, would cost more than the search.
        """
        removed = self.removed
        if allowed_ids is None:
            return None, self._not_removed if len(removed) else None
        allowed_ids = np.asarray(allowed_ids, np.int64)
        top = int(allowed_ids.max()) + 1
        if top <= 32 * len(allowed_ids) + 65_536:
            mask = np.zeros(top, bool)
            mask[allowed_ids] = True
            delta = faiss.IDSelectorBitmap(np.packbits(mask, bitorder="little"))
            if not len(removed):
                return delta, delta
            mask[removed[removed < top]] = False
            return delta, faiss.IDSelectorBitmap(np.packbits(mask, bitorder="little"))
        delta = faiss.IDSelectorBatch(np.ascontiguousarray(allowed_ids))
        if not len(removed):
            return delta, delta
        return delta, faiss.IDSelectorAnd(delta, self._not_removed)

    def reconstruct(self, chunk_id: int) -> np.ndarray:
        return self.reconstruct_many(np.asarray([chunk_id], np.int64))[0]

    def reconstruct_many(self, chunk_ids: np.ndarray) -> np.ndarray:
        """The indexed vectors of the given chunks, one row each (a RuntimeError for an id not indexed)."""
        chunk_ids = np.asarray(chunk_ids, np.int64).reshape(-1)
        out = np.empty((len(chunk_ids), self.dimension), np.float32)
        with self._rw.reading():
            base = self.base
            rows = self._base_rows(chunk_ids)
            for i, (chunk_id, row) in enumerate(zip(chunk_ids.tolist(), rows.tolist(), strict=True)):
                if row >= 0:
                    out[i] = base.lists[base.list_of[row]][base.row_of[row]]
                else:
                    out[i] = self.delta.reconstruct(chunk_id)
        return out

    # -- files -----------------------------------------------------------------------

    def save(self, directory: Path, manifest: Manifest) -> None:
        """Write base (when it changed), delta, then manifest, each via rename, under a lock shared by all processes.

        The base is written when this process built it or when the file on disk
        is another process's; then it is mapped back from the file, so the
        memory a compaction used goes back to the page cache everyone shares.
        """
        directory.mkdir(parents=True, exist_ok=True)
        with self._changing, FileLock(str(directory / LOCK_FILE)):
            on_disk = _read_manifest(directory / MANIFEST_FILE)
            if not self.token or on_disk is None or on_disk.token != self.token:
                index = self.base.index
                atomic_write(directory / INDEX_FILE,
                             lambda fh: faiss.write_index(index, faiss.PyCallbackIOWriter(fh.write)))
                self.token = uuid.uuid4().hex
                if self.options.mmap and not self.base.mapped:
                    mapped = _Base.of(_read_index(directory / INDEX_FILE, mmap=True), mapped=True)
                    with self._rw.writing():
                        self.base = mapped
            delta_ids = faiss.vector_to_array(self.delta.id_map).astype(np.int64)
            delta_vectors = _flat_rows(self.delta)
            token, removed = self.token, self.removed

            def write_delta(fh: BinaryIO) -> None:
                np.savez(fh, ids=delta_ids, vectors=delta_vectors, removed=removed, token=np.array(token))

            atomic_write(directory / DELTA_FILE, write_delta)
            full = replace(manifest, format=FORMAT_VERSION, kind=self.kind, base_count=len(self.base.ids),
                           token=token, count=len(self))
            encoded = json.dumps(asdict(full), indent=2).encode()
            atomic_write(directory / MANIFEST_FILE, lambda fh: fh.write(encoded))

    @classmethod
    def load(cls, directory: Path, options: VectorOptions | None = None) -> tuple[VectorIndex, Manifest] | None:
        """The saved index and its manifest, or None when a file is missing, unreadable or disagrees with another.

        The base is memory-mapped read-only unless `options.mmap` is off.
        Files of format 1 (one flat index, no delta) still open.
        """
        options = options or VectorOptions()
        index_path, manifest_path, delta_path = directory / INDEX_FILE, directory / MANIFEST_FILE, directory / DELTA_FILE
        if not index_path.exists() or not manifest_path.exists():
            return None
        try:
            with FileLock(str(directory / LOCK_FILE)):
                manifest = _read_manifest(manifest_path)
                if manifest is None or manifest.format not in (1, FORMAT_VERSION):
                    return None
                base = _read_index(index_path, mmap=options.mmap)
                delta = None
                if manifest.format == FORMAT_VERSION:
                    with np.load(delta_path) as data:
                        delta = {name: data[name] for name in ("ids", "vectors", "removed", "token")}
        except (OSError, ValueError, TypeError, KeyError, RuntimeError):
            return None
        if base.d != manifest.dimension or not _readable_base(base):
            return None
        if delta is not None and (str(delta["token"]) != manifest.token or base.ntotal != manifest.base_count):
            return None
        index = cls(manifest.dimension, options)
        index.base = _Base.of(base, mapped=options.mmap)
        index.token = manifest.token
        if delta is not None:
            index.remove(np.asarray(delta["removed"], np.int64))
            index.add(delta["ids"], delta["vectors"])
        if len(index) != manifest.count:
            return None
        return index, manifest


def _search(index: faiss.Index, query: np.ndarray, k: int, selector: faiss.IDSelector | None):
    """(ids, scores) of a flat index's best k; nothing when it is empty."""
    if index.ntotal == 0:
        return np.empty(0, np.int64), np.empty(0, np.float32)
    params = faiss.SearchParameters(sel=selector) if selector is not None else None
    scores, ids = index.search(query, min(k, int(index.ntotal)), params=params)
    return ids[0], scores[0]


@contextlib.contextmanager
def _one_thread():
    """One OpenMP thread for FAISS in this thread while a single query runs.

    A single query gains nothing from FAISS's thread team, and on a busy machine the
    team waits for descheduled threads: right after the query encoder ran (its threads
    still spinning), a search of 2,000 vectors took 11-21 ms with two threads, 0.2 ms
    with one. The setting belongs to the calling thread, so it is set per call.
    """
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(threads)


def _flat(dimension: int, base: bool = False) -> faiss.IndexIDMap:
    """An exact index keyed by chunk id.

    A base is an IndexIDMap: `_Base` keeps its own id -> row arrays, where IndexIDMap2
    would rebuild a hash table of every id in each process at each load.
    """
    return faiss.IndexIDMap(faiss.IndexFlatIP(dimension)) if base else faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))


def _flat_rows(index: faiss.IndexIDMap) -> np.ndarray:
    """The vectors of a flat IndexIDMap, in its order (a view, no copy)."""
    inner = faiss.downcast_index(index.index)
    n = int(inner.ntotal)
    if n == 0:
        return np.empty((0, inner.d), np.float32)
    return faiss.rev_swig_ptr(inner.get_xb(), n * inner.d).reshape(n, inner.d)


def _build(target: Plan, dimension: int, ids: np.ndarray, vectors: np.ndarray) -> faiss.Index:
    """A new base of the planned kind over these vectors."""
    ids = np.ascontiguousarray(ids, np.int64)
    vectors = np.ascontiguousarray(vectors, np.float32)
    if target.kind == FLAT:
        base = _flat(dimension, base=True)
        if len(ids):
            base.add_with_ids(vectors, ids)
        return base
    base = _ivf(faiss.IndexFlatIP(dimension), dimension, target.nlist)
    base.cp.niter = 10
    base.cp.min_points_per_centroid = 1  # tiny test sets: no warning; large ones are sampled at 40 a list
    sample = min(len(ids), _TRAIN_PER_LIST * target.nlist)
    rows = np.sort(np.random.default_rng(0).choice(len(ids), sample, replace=False)) if sample < len(ids) else None
    base.train(vectors if rows is None else vectors[rows])
    base.add_with_ids(vectors, ids)
    return base


def _ivf(quantizer: faiss.IndexFlatIP, dimension: int, nlist: int) -> faiss.IndexIVFScalarQuantizer:
    """An empty IVF whose lists hold each vector itself in fp16 (no residuals: `_Base` reads them as rows)."""
    return faiss.IndexIVFScalarQuantizer(quantizer, dimension, nlist, faiss.ScalarQuantizer.QT_fp16,
                                         faiss.METRIC_INNER_PRODUCT, False)  # by_residual=False


def _ivf_like(base: faiss.IndexIVF) -> faiss.IndexIVFScalarQuantizer:
    """An empty fp16 IVF with the same centroids (a copy: the old base may be memory-mapped)."""
    quantizer = faiss.IndexFlatIP(base.d)
    quantizer.add(base.quantizer.reconstruct_n(0, base.nlist))
    index = _ivf(quantizer, base.d, base.nlist)
    index.is_trained = True  # fp16 needs no training; the centroids are the old base's
    return index


def _code_dtype(index: faiss.IndexIVF) -> type | None:
    """How an IVF base's codes read as vectors: float32 for IVF-Flat, float16 for our fp16 lists; None: not ours."""
    if isinstance(index, faiss.IndexIVFFlat):
        return np.float32
    if (isinstance(index, faiss.IndexIVFScalarQuantizer) and not index.by_residual
            and index.sq.qtype == faiss.ScalarQuantizer.QT_fp16):
        return np.float16
    return None


def _readable_base(index: faiss.Index) -> bool:
    return isinstance(index, faiss.IndexIDMap) or isinstance(index, faiss.IndexIVF) and _code_dtype(index) is not None


def _read_index(path: Path, mmap: bool) -> faiss.Index:
    flags = faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY if mmap else 0
    return faiss.read_index(str(path), flags)


def _read_manifest(path: Path) -> Manifest | None:
    try:
        return Manifest(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None
