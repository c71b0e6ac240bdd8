"""The vector index: FAISS inner product over normalized vectors, keyed by chunk id.

The index file is a cache of vectors the database already holds. It is saved
atomically next to a manifest (model, dimension, count, and a fingerprint of
the database's chunk table); whoever opens it compares the manifest with the
database and repairs any difference from the stored vectors, never by
re-embedding.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import BinaryIO

import faiss
import numpy as np
from filelock import FileLock

INDEX_FILE = "vectors.faiss"
MANIFEST_FILE = "vectors.json"
FORMAT_VERSION = 1


@dataclass
class Manifest:
    model_id: str
    dimension: int
    count: int
    fingerprint: str
    centering: str = "none"
    format: int = FORMAT_VERSION


class VectorIndex:
    """A FAISS `IndexIDMap2` over `IndexFlatIP`: exact cosine search with removable ids."""

    def __init__(self, dimension: int) -> None:
        self.dimension = dimension
        self.index = faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def ids(self) -> np.ndarray:
        return faiss.vector_to_array(self.index.id_map).astype(np.int64)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids) == 0:
            return
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, self.dimension)
        self.index.add_with_ids(vectors, np.ascontiguousarray(ids, dtype=np.int64))

    def remove(self, ids: np.ndarray) -> int:
        if len(ids) == 0:
            return 0
        selector = faiss.IDSelectorBatch(np.ascontiguousarray(ids, dtype=np.int64))
        return int(self.index.remove_ids(selector))

    def search(
        self, query: np.ndarray, k: int, allowed_ids: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Best `k` chunk ids and cosine scores; `allowed_ids` restricts the search itself.

        Filtering inside FAISS (not after it) means a filter can never empty a
        page that has matches further down.
        """
        if len(self) == 0 or k <= 0:
            return np.empty(0, np.int64), np.empty(0, np.float32)
        params = None
        if allowed_ids is not None:
            if len(allowed_ids) == 0:
                return np.empty(0, np.int64), np.empty(0, np.float32)
            params = faiss.SearchParameters(
                sel=faiss.IDSelectorBatch(np.ascontiguousarray(allowed_ids, dtype=np.int64))
            )
            k = min(k, len(allowed_ids))
        k = min(k, len(self))
        query = np.ascontiguousarray(query, dtype=np.float32).reshape(1, self.dimension)
        scores, ids = self.index.search(query, k, params=params)
        keep = ids[0] >= 0
        return ids[0][keep], scores[0][keep]

    def reconstruct(self, chunk_id: int) -> np.ndarray:
        return self.index.reconstruct(int(chunk_id))

    def reconstruct_many(self, chunk_ids: np.ndarray) -> np.ndarray:
        """The indexed vectors of the given chunks, one row each."""
        if len(chunk_ids) == 0:
            return np.empty((0, self.dimension), np.float32)
        return np.vstack([self.index.reconstruct(int(i)) for i in chunk_ids])

    def save(self, directory: Path, manifest: Manifest) -> None:
        """Write index then manifest, each via rename, under a lock shared by all processes."""
        directory.mkdir(parents=True, exist_ok=True)
        with FileLock(str(directory / ".vectors.lock")):
            data = faiss.serialize_index(self.index).tobytes()
            atomic_write(directory / INDEX_FILE, lambda fh: fh.write(data))
            encoded = json.dumps(asdict(manifest), indent=2).encode()
            atomic_write(directory / MANIFEST_FILE, lambda fh: fh.write(encoded))

    @classmethod
    def load(cls, directory: Path) -> tuple[VectorIndex, Manifest] | None:
        """The saved index and its manifest, or None when either is missing or unreadable."""
        index_path, manifest_path = directory / INDEX_FILE, directory / MANIFEST_FILE
        if not index_path.exists() or not manifest_path.exists():
            return None
        try:
            with FileLock(str(directory / ".vectors.lock")):
                manifest = Manifest(**json.loads(manifest_path.read_text()))
                raw = np.frombuffer(index_path.read_bytes(), dtype=np.uint8)
            loaded = faiss.deserialize_index(raw)
        except (OSError, ValueError, TypeError, RuntimeError):
            return None
        if manifest.format != FORMAT_VERSION or loaded.d != manifest.dimension:
            return None
        if loaded.ntotal != manifest.count or not isinstance(loaded, faiss.IndexIDMap2):
            return None
        index = cls(manifest.dimension)
        index.index = loaded
        return index, manifest


def atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Write a file through a temporary file and a rename, so readers see the old file or the new one, whole."""
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
