"""The keyword side of hybrid search: an incremental BM25 index over chunk terms, and its files.

Terms come from kb.text.analyzer; this module only indexes, scores and
persists them.

The index is BM25 written here rather than taken from the `bm25s` library,
because bm25s can neither add nor delete documents without rebuilding: here a
compacted sparse matrix (scipy's CSC layout, held as plain numpy arrays so that
compaction is a linear merge rather than a sort) plus a small delta and a live
mask take adds and deletes at any time, and idf and average length always
reflect the live chunks. Keys are chunk ids, the same ids as the FAISS index.
"""

from __future__ import annotations

import json
import math
import struct
import threading
import uuid
import zipfile
from array import array
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from filelock import FileLock

from kb.index.vectors import atomic_write

INDEX_FILE = "keywords.npz"
# The postings, most of the file (60M entries, 480 MB at a million chunks): memory-mapped from the
# .npz (saved uncompressed) rather than copied, so opening reads nothing up front and a node's
# workers share one copy. Compaction makes new arrays; nothing writes into these.
MAPPED = ("indices", "tf")
MANIFEST_FILE = "keywords.json"
FORMAT_VERSION = 1


# ------------------------------------------------------------------ BM25 index

# Compaction folds the delta into the main matrix and drops dead rows. It runs
# when the delta holds more than this share of all rows (and at least
# _MIN_DELTA_ROWS), or dead rows more than _DEAD_SHARE: a 100-chunk add stays
# a few milliseconds, and the occasional compaction is linear in the index size.
_DELTA_SHARE = 0.125
_MIN_DELTA_ROWS = 4096
_DEAD_SHARE = 0.25
_MIN_DEAD_ROWS = 1024


class KeywordIndex:
    """Okapi BM25 over chunk ids, with adds, replacements and deletes at any time.

    Scores are Lucene's: idf = ln(1 + (N - n + 0.5) / (n + 0.5)) and
    tf / (tf + k1 * (1 - b + b * dl / avgdl)) per query term, where N, n and
    avgdl count live chunks only and dl is a chunk's number of terms. Repeated
    query terms count once: a question that says a word twice is not asking
    for it twice. Document frequencies are counted at query time over the live
    rows of each query term's postings, so no statistic can drift after any
    sequence of adds and removes.

    Storage: rows [0, main_rows) are a CSC matrix (rows x terms, term
    frequencies); newer rows are a delta of per-term arrays; removed rows are
    only marked dead until the next compaction.
    """

    def __init__(self, k1: float = 1.2, b: float = 0.75) -> None:
        self.k1, self.b = float(k1), float(b)
        self._lock = threading.RLock()
        self._terms: list[str] = []  # term id -> term
        self._vocab: dict[str, int] = {}  # term -> term id
        self._indptr = np.zeros(1, np.int64)  # main CSC: postings of term t are
        self._indices = np.empty(0, np.int32)  # rows _indices[_indptr[t]:_indptr[t+1]]
        self._tf = np.empty(0, np.float32)  # with these term frequencies
        self._main_rows = 0
        self._delta: dict[int, tuple[array, array]] = {}  # term id -> (rows, tfs) of delta rows
        self._rows = 0
        self._row_ids = np.empty(0, np.int64)  # row -> chunk id (capacity may exceed _rows)
        self._lengths = np.empty(0, np.int32)
        self._live = np.empty(0, bool)
        self._row_of: dict[int, int] = {}  # live chunk id -> row
        self._total_length = 0
        self._norm: np.ndarray | None = None  # cached k1 * (1 - b + b * dl / avgdl)

    def __len__(self) -> int:
        return len(self._row_of)

    def ids(self) -> np.ndarray:
        """Live chunk ids, in the order they were added."""
        with self._lock:
            n = self._rows
            return self._row_ids[:n][self._live[:n]].copy()

    # -------------------------------------------------------------- changes

    def add(self, chunk_ids: Sequence[int], term_lists: Sequence[Sequence[str]]) -> None:
        """Index chunks; an id that is already indexed is replaced."""
        if len(chunk_ids) != len(term_lists):
            raise ValueError(f"add() got {len(chunk_ids)} chunk ids but {len(term_lists)} term lists")
        if len(chunk_ids) == 0:
            return
        with self._lock:
            self._reserve(self._rows + len(chunk_ids))
            vocab, terms, delta = self._vocab, self._terms, self._delta
            for chunk_id, term_list in zip(chunk_ids, term_lists, strict=True):
                chunk_id = int(chunk_id)
                old = self._row_of.get(chunk_id)
                if old is not None:
                    self._kill(old)
                row = self._rows
                self._rows += 1
                for term, count in Counter(term_list).items():
                    term_id = vocab.get(term)
                    if term_id is None:
                        term_id = vocab[term] = len(terms)
                        terms.append(term)
                    postings = delta.get(term_id)
                    if postings is None:
                        postings = delta[term_id] = (array("i"), array("f"))
                    postings[0].append(row)
                    postings[1].append(count)
                self._row_ids[row] = chunk_id
                self._lengths[row] = len(term_list)
                self._live[row] = True
                self._row_of[chunk_id] = row
                self._total_length += len(term_list)
            self._norm = None
            self._maybe_compact()

    def remove(self, chunk_ids: Sequence[int]) -> int:
        """Forget chunks; returns how many were indexed."""
        removed = 0
        with self._lock:
            for chunk_id in chunk_ids:
                row = self._row_of.get(int(chunk_id))
                if row is not None:
                    self._kill(row)
                    removed += 1
            if removed:
                self._norm = None
                self._maybe_compact()
        return removed

    def _kill(self, row: int) -> None:
        self._live[row] = False
        del self._row_of[int(self._row_ids[row])]
        self._total_length -= int(self._lengths[row])

    def _reserve(self, rows: int) -> None:
        capacity = len(self._row_ids)
        if rows <= capacity:
            return
        capacity = max(rows, 2 * capacity, 64)
        for name, dtype in (("_row_ids", np.int64), ("_lengths", np.int32), ("_live", bool)):
            grown = np.zeros(capacity, dtype)
            grown[: self._rows] = getattr(self, name)[: self._rows]
            setattr(self, name, grown)

    def _maybe_compact(self) -> None:
        delta_rows = self._rows - self._main_rows
        dead_rows = self._rows - len(self._row_of)
        if (delta_rows > _MIN_DELTA_ROWS and delta_rows > _DELTA_SHARE * self._rows) or (
            dead_rows > _MIN_DEAD_ROWS and dead_rows > _DEAD_SHARE * self._rows
        ):
            self.compact()

    def compact(self) -> None:
        """Fold the delta into the main matrix, drop dead rows and terms no live row has.

        Linear in the number of postings (numpy scatters, no sort): main
        entries keep their order within each term and delta rows, which are
        all newer, go after them, so every term's rows stay ascending.
        """
        with self._lock:
            n, main_rows = self._rows, self._main_rows
            has_dead = len(self._row_of) < n
            if main_rows == n and not has_dead:
                return
            live = self._live[:n]
            main_has_dead = not live[:main_rows].all()
            new_row = (np.cumsum(live) - 1).astype(np.int32) if has_dead else None
            # Main postings of live rows, and how many each term keeps.
            indptr, indices, tf = self._indptr, self._indices, self._tf
            if main_has_dead:
                keep = live[indices]
                kept_before = np.concatenate([[0], np.cumsum(keep, dtype=np.int64)])
                main_counts = kept_before[indptr[1:]] - kept_before[indptr[:-1]]
                indices, tf = new_row[indices[keep]], tf[keep]
            else:  # dead rows, if any, are all in the delta: main rows keep their numbers
                main_counts = np.diff(indptr)
            # Delta postings, grouped by term as stored (each term's rows ascending).
            groups = list(self._delta.items())
            d_rows = np.concatenate([np.empty(0, np.int32), *(np.array(p[0], np.int32) for _, p in groups)])
            d_tf = np.concatenate([np.empty(0, np.float32), *(np.array(p[1], np.float32) for _, p in groups)])
            d_cols = np.repeat(
                np.fromiter((t for t, _ in groups), np.int64, len(groups)),
                np.fromiter((len(p[0]) for _, p in groups), np.int64, len(groups)),
            )
            if has_dead:
                d_keep = live[d_rows]
                d_rows, d_tf, d_cols = new_row[d_rows[d_keep]], d_tf[d_keep], d_cols[d_keep]
            n_terms = len(self._terms)
            main_counts = np.concatenate([main_counts, np.zeros(n_terms - len(main_counts), np.int64)])
            delta_counts = np.bincount(d_cols, minlength=n_terms)
            counts = main_counts + delta_counts
            starts = np.concatenate([[0], np.cumsum(counts)])  # term t's postings begin at starts[t]
            # Main entries shift by the delta entries of earlier terms; a term's delta entries follow its own.
            main_starts = np.concatenate([[0], np.cumsum(main_counts)])
            pos_main = np.arange(len(indices)) + np.repeat(starts[:-1] - main_starts[:-1], main_counts)
            first = np.zeros(len(d_cols), np.int64)  # index of the first entry of each entry's term
            boundaries = np.flatnonzero(np.diff(d_cols)) + 1
            first[boundaries] = boundaries
            rank = np.arange(len(d_cols)) - np.maximum.accumulate(first) if len(d_cols) else first
            pos_delta = starts[d_cols] + main_counts[d_cols] + rank
            total = int(starts[-1])
            new_indices, new_tf = np.empty(total, np.int32), np.empty(total, np.float32)
            new_indices[pos_main], new_tf[pos_main] = indices, tf
            new_indices[pos_delta], new_tf[pos_delta] = d_rows, d_tf
            used = counts > 0
            if used.all():
                self._indptr = starts
            else:  # empty columns hold no entries, so dropping them moves nothing
                self._indptr = np.concatenate([[0], starts[1:][used]])
                self._terms = [t for t, u in zip(self._terms, used.tolist(), strict=True) if u]
                self._vocab = {t: i for i, t in enumerate(self._terms)}
            self._indices, self._tf = new_indices, new_tf
            self._delta = {}
            if has_dead:
                self._row_ids = self._row_ids[:n][live]
                self._lengths = self._lengths[:n][live]
                self._live = np.ones(len(self._row_ids), bool)
                self._row_of = dict(zip(self._row_ids.tolist(), range(len(self._row_ids)), strict=True))
            self._rows = self._main_rows = len(self._row_of)
            self._norm = None

    # -------------------------------------------------------------- scoring

    def _postings(self, term_id: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows and term frequencies of one term, main and delta together."""
        parts_rows, parts_tf = [], []
        if term_id < len(self._indptr) - 1:
            a, b = self._indptr[term_id], self._indptr[term_id + 1]
            parts_rows.append(self._indices[a:b])
            parts_tf.append(self._tf[a:b])
        postings = self._delta.get(term_id)
        if postings is not None:
            # Copies: an array.array cannot grow while numpy views of it exist.
            parts_rows.append(np.array(postings[0], np.int32))
            parts_tf.append(np.array(postings[1], np.float32))
        if len(parts_rows) == 1:
            return parts_rows[0], parts_tf[0]
        return np.concatenate(parts_rows), np.concatenate(parts_tf)

    def idf(self, terms: Sequence[str]) -> dict[str, float]:
        """BM25 inverse document frequency of each term among the live chunks.

        A term no chunk holds gets the highest weight there is: it is the
        rarest of all, and a question that needs it is not answered by text
        without it.
        """
        with self._lock:
            live_count, live = len(self._row_of), self._live[: self._rows]
            weights = {}
            for term in dict.fromkeys(terms):
                term_id = self._vocab.get(term)
                df = int(np.count_nonzero(live[self._postings(term_id)[0]])) if term_id is not None else 0
                weights[term] = math.log1p((live_count - df + 0.5) / (df + 0.5))
            return weights

    def _scores(self, query_terms: Sequence[str]) -> np.ndarray:
        """BM25 score of every row (0 for dead rows and rows without a query term)."""
        n_rows, live_count = self._rows, len(self._row_of)
        scores = np.zeros(n_rows, np.float64)
        if live_count == 0:
            return scores
        if self._norm is None:
            avgdl = self._total_length / live_count if self._total_length else 1.0
            self._norm = self.k1 * (1.0 - self.b + self.b * self._lengths[:n_rows] / avgdl)
        norm, live = self._norm, self._live[:n_rows]
        for term in dict.fromkeys(query_terms):
            term_id = self._vocab.get(term)
            if term_id is None:
                continue
            rows, tf = self._postings(term_id)
            alive = live[rows]
            df = int(np.count_nonzero(alive))
            if df == 0:
                continue
            if df < len(rows):
                rows, tf = rows[alive], tf[alive]
            idf = math.log1p((live_count - df + 0.5) / (df + 0.5))
            tf = tf.astype(np.float64)
            scores[rows] += idf * tf / (tf + norm[rows])
        return scores

    def _rows_of(self, chunk_ids: np.ndarray) -> np.ndarray:
        """Rows of the given chunk ids, -1 where an id is not indexed."""
        get = self._row_of.get
        return np.fromiter(
            (get(int(i), -1) for i in np.asarray(chunk_ids).ravel()), np.int64, np.size(chunk_ids)
        )

    def search(
        self, query_terms: Sequence[str], k: int, allowed_ids: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Best `k` chunk ids and their scores (all > 0), best first, ties by id.

        `allowed_ids` restricts the scoring itself, so a filter never empties a
        page that has matches further down.
        """
        empty = np.empty(0, np.int64), np.empty(0, np.float32)
        if k <= 0 or len(query_terms) == 0:
            return empty
        with self._lock:
            scores = self._scores(query_terms)
            if allowed_ids is not None:
                rows = np.unique(self._rows_of(allowed_ids))
                rows = rows[rows >= 0]
                candidates = rows[scores[rows] > 0]
            else:
                candidates = np.flatnonzero(scores > 0)
            if len(candidates) == 0:
                return empty
            candidate_scores = scores[candidates]
            if len(candidates) > k:
                # Everything tied with the k-th best stays in, so ties break by id, not by chance.
                kth = np.partition(candidate_scores, len(candidates) - k)[len(candidates) - k]
                keep = candidate_scores >= kth
                candidates, candidate_scores = candidates[keep], candidate_scores[keep]
            ids = self._row_ids[candidates]
            order = np.lexsort((ids, -candidate_scores))[:k]
            return ids[order].copy(), candidate_scores[order].astype(np.float32)

    def score_ids(self, query_terms: Sequence[str], chunk_ids: np.ndarray) -> np.ndarray:
        """BM25 scores of the given chunks, in their order (0 where no term matches or the id is unknown)."""
        with self._lock:
            rows = self._rows_of(chunk_ids)
            result = np.zeros(len(rows), np.float32)
            known = rows >= 0
            if len(query_terms) and known.any():
                result[known] = self._scores(query_terms)[rows[known]]
            return result

    def holds(self, terms: Sequence[str], chunk_ids: np.ndarray) -> np.ndarray:
        """Which of `terms` each chunk holds: (chunks x terms) booleans read from the postings, nothing scored."""
        with self._lock:
            rows = self._rows_of(chunk_ids)
            held = np.zeros((len(rows), len(terms)), bool)
            for column, term in enumerate(terms):
                term_id = self._vocab.get(term)
                if term_id is not None:
                    held[:, column] = (rows >= 0) & np.isin(rows, self._postings(term_id)[0])
            return held

    # -------------------------------------------------------------- persistence

    def save(self, directory: Path, manifest: dict) -> None:
        """Write the compacted index and the manifest, each via a temporary file and rename.

        The two files carry the same random token, so a crash between the two
        renames is detected by `load` rather than pairing a new matrix with an
        old manifest.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        token = uuid.uuid4().hex
        with self._lock:
            self.compact()
            arrays = {
                "indptr": self._indptr,
                "indices": self._indices,
                "tf": self._tf,
                "row_ids": self._row_ids[: self._rows],
                "lengths": self._lengths[: self._rows],
                "terms": np.frombuffer(json.dumps(self._terms, ensure_ascii=False).encode(), np.uint8),
                "token": np.frombuffer(token.encode(), np.uint8),
            }
            meta = {
                "format": FORMAT_VERSION,
                "k1": self.k1,
                "b": self.b,
                "count": len(self),
                "terms": len(self._terms),
                "token": token,
                "manifest": manifest,
            }
            encoded = json.dumps(meta, ensure_ascii=False, indent=2).encode()
            with FileLock(str(directory / ".keywords.lock")):
                atomic_write(directory / INDEX_FILE, lambda fh: np.savez(fh, **arrays))
                atomic_write(directory / MANIFEST_FILE, lambda fh: fh.write(encoded))

    @classmethod
    def load(cls, directory: Path) -> tuple[KeywordIndex, dict] | None:
        """The saved index and the manifest given to `save`, or None if missing, corrupt or unreadable."""
        directory = Path(directory)
        index_path, manifest_path = directory / INDEX_FILE, directory / MANIFEST_FILE
        if not index_path.is_file() or not manifest_path.is_file():
            return None
        try:
            with FileLock(str(directory / ".keywords.lock")):
                meta = json.loads(manifest_path.read_text(encoding="utf-8"))
                with np.load(index_path, allow_pickle=False) as saved:
                    mapped = _mapped_members(index_path, MAPPED)
                    arrays = {name: mapped[name] if name in mapped else saved[name] for name in saved.files}
            return cls._from_saved(meta, arrays)
        except Exception:  # noqa: BLE001 - any unreadable file means "rebuild", never a crash
            return None

    @classmethod
    def _from_saved(cls, meta: dict, arrays: dict[str, np.ndarray]) -> tuple[KeywordIndex, dict] | None:
        if meta.get("format") != FORMAT_VERSION or bytes(arrays["token"]).decode() != meta["token"]:
            return None
        terms = json.loads(bytes(arrays["terms"]).decode())
        indptr, indices, tf = arrays["indptr"], arrays["indices"], arrays["tf"]
        row_ids, lengths = arrays["row_ids"], arrays["lengths"]
        n_rows = len(row_ids)
        valid = (
            isinstance(terms, list)
            and all(isinstance(t, str) for t in terms)
            and len(set(terms)) == len(terms) == len(indptr) - 1 == meta["terms"]
            and n_rows == len(lengths) == meta["count"]
            and indptr.dtype == np.int64
            and indices.dtype == np.int32
            and tf.dtype == np.float32
            and row_ids.dtype == np.int64
            and lengths.dtype == np.int32
            and indptr[0] == 0
            and indptr[-1] == len(indices) == len(tf)
            and bool(np.all(np.diff(indptr) >= 0))
            and (len(indices) == 0 or (int(indices.min()) >= 0 and int(indices.max()) < n_rows))
            and bool(np.all(lengths >= 0))
        )
        if not valid:
            return None
        index = cls(k1=float(meta["k1"]), b=float(meta["b"]))
        index._terms = terms
        index._vocab = {t: i for i, t in enumerate(terms)}
        index._indptr, index._indices, index._tf = indptr, indices, tf
        index._row_ids, index._lengths = row_ids, lengths
        index._rows = index._main_rows = n_rows
        index._live = np.ones(n_rows, bool)
        index._row_of = dict(zip(row_ids.tolist(), range(n_rows), strict=True))
        if len(index._row_of) != n_rows:  # a chunk id twice: the file is broken
            return None
        index._total_length = int(lengths.sum())
        return index, meta["manifest"]


def _mapped_members(path: Path, names: Sequence[str]) -> dict[str, np.ndarray]:
    """Read-only memory maps of the named arrays of an uncompressed .npz; any it cannot map are left out."""
    mapped: dict[str, np.ndarray] = {}
    with zipfile.ZipFile(path) as archive, open(path, "rb") as fh:
        for name in names:
            try:
                info = archive.getinfo(name + ".npy")
            except KeyError:
                continue
            if info.compress_type != zipfile.ZIP_STORED:
                continue
            fh.seek(info.header_offset)
            local = fh.read(30)  # the member's local header: its name and extra field come next
            if len(local) < 30 or local[:4] != b"PK\x03\x04":
                continue
            name_length, extra_length = struct.unpack("<HH", local[26:30])
            fh.seek(info.header_offset + 30 + name_length + extra_length)
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
            else:
                continue
            if dtype.hasobject or fortran:
                continue
            mapped[name] = np.memmap(path, dtype=dtype, mode="r", offset=fh.tell(), shape=shape)
    return mapped
