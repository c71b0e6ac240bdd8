"""The FAISS index: ids are chunk ids, filters act inside the search, saves are atomic."""

from __future__ import annotations

import json

import numpy as np

from kb.index.vectors import INDEX_FILE, MANIFEST_FILE, Manifest, VectorIndex


def unit_rows(n: int, dim: int = 8, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rows = rng.normal(size=(n, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_search_returns_chunk_ids_ranked_by_cosine():
    index = VectorIndex(8)
    vectors = unit_rows(20)
    ids = np.arange(100, 120, dtype=np.int64)
    index.add(ids, vectors)
    found, scores = index.search(vectors[7], 3)
    assert found[0] == 107
    assert abs(scores[0] - 1.0) < 1e-5
    assert list(scores) == sorted(scores, reverse=True)


def test_allowed_ids_filter_inside_the_search_fills_the_page():
    index = VectorIndex(8)
    vectors = unit_rows(200)
    index.add(np.arange(200, dtype=np.int64), vectors)
    allowed = np.arange(150, 200, dtype=np.int64)  # the 50 least similar could be anywhere
    found, _ = index.search(vectors[0], 10, allowed_ids=allowed)
    assert len(found) == 10
    assert set(found) <= set(allowed)
    everything, _ = index.search(vectors[0], 200)
    expected = [i for i in everything if i in set(allowed)][:10]
    assert list(found) == expected


def test_empty_filter_finds_nothing_and_small_filter_returns_what_exists():
    index = VectorIndex(8)
    index.add(np.arange(5, dtype=np.int64), unit_rows(5))
    assert len(index.search(unit_rows(1)[0], 5, allowed_ids=np.array([], dtype=np.int64))[0]) == 0
    found, _ = index.search(unit_rows(1)[0], 10, allowed_ids=np.array([1, 3], dtype=np.int64))
    assert sorted(found) == [1, 3]


def test_removed_ids_are_never_returned():
    index = VectorIndex(8)
    vectors = unit_rows(10)
    index.add(np.arange(10, dtype=np.int64), vectors)
    assert index.remove(np.array([3, 4], dtype=np.int64)) == 2
    found, _ = index.search(vectors[3], 10)
    assert 3 not in found and 4 not in found and len(index) == 8
    assert sorted(index.ids()) == [0, 1, 2, 5, 6, 7, 8, 9]


def test_save_and_load_round_trip_with_manifest(tmp_path):
    index = VectorIndex(8)
    vectors = unit_rows(10)
    index.add(np.arange(10, dtype=np.int64), vectors)
    index.save(tmp_path, Manifest("model-x", 8, 10, "10:9:45"))
    loaded, manifest = VectorIndex.load(tmp_path)
    assert manifest == Manifest("model-x", 8, 10, "10:9:45")
    assert len(loaded) == 10
    assert np.allclose(loaded.reconstruct(4), vectors[4])
    assert not list(tmp_path.glob("*.tmp"))


def test_load_rejects_missing_corrupt_or_disagreeing_files(tmp_path):
    assert VectorIndex.load(tmp_path) is None
    index = VectorIndex(8)
    index.add(np.arange(3, dtype=np.int64), unit_rows(3))
    index.save(tmp_path, Manifest("m", 8, 3, "f"))
    manifest = json.loads((tmp_path / MANIFEST_FILE).read_text())
    (tmp_path / MANIFEST_FILE).write_text(json.dumps({**manifest, "count": 4}))
    assert VectorIndex.load(tmp_path) is None
    (tmp_path / MANIFEST_FILE).write_text(json.dumps(manifest))
    (tmp_path / INDEX_FILE).write_bytes(b"not a faiss index")
    assert VectorIndex.load(tmp_path) is None
