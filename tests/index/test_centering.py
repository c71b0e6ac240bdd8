"""Language centering: centroids, drift, and the knowledge base keeping its index centered."""

from __future__ import annotations

import numpy as np

from kb.index.centering import MIN_CHUNKS, LanguageCentroids, compute_centroids
from tests.test_knowledge_base import note


def unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_small_collections_are_left_uncentered():
    vectors = unit(np.random.default_rng(0).normal(size=(MIN_CHUNKS - 1, 4)).astype(np.float32))
    centroids = compute_centroids([(vectors, ["en"] * len(vectors))])
    assert centroids.overall is None and centroids.version == "none"
    assert np.array_equal(centroids.center(vectors, ["en"] * len(vectors)), vectors)


def test_each_language_mean_is_removed_and_rare_languages_use_the_overall_mean():
    rng = np.random.default_rng(1)
    thai = unit(rng.normal(size=(30, 4)).astype(np.float32) + [3, 0, 0, 0])
    english = unit(rng.normal(size=(30, 4)).astype(np.float32) + [0, 3, 0, 0])
    french = unit(rng.normal(size=(2, 4)).astype(np.float32))
    centroids = compute_centroids([(np.vstack([thai, english]), ["th"] * 30 + ["en"] * 30), (french, ["fr", "fr"])])
    assert set(centroids.means) == {"th", "en"}
    assert np.allclose(centroids.mean_for("th"), thai.mean(axis=0), atol=1e-6)
    assert np.allclose(centroids.mean_for("fr"), np.vstack([thai, english, french]).mean(axis=0), atol=1e-6)
    centered = centroids.center(thai, ["th"] * 30)
    assert np.allclose(np.linalg.norm(centered, axis=1), 1.0, atol=1e-5)
    assert abs(float(centered.mean(axis=0) @ [1, 0, 0, 0])) < abs(float(thai.mean(axis=0) @ [1, 0, 0, 0])) / 5


def test_drift_is_detected_on_growth_shrinkage_and_new_languages():
    centroids = LanguageCentroids(counts={"th": 100, "en": 40}, means={"th": np.zeros(4), "en": np.zeros(4)},
                                  overall=np.zeros(4))
    assert not centroids.drifted({"th": 110, "en": 45})
    assert centroids.drifted({"th": 130, "en": 40})
    assert centroids.drifted({"th": 100, "en": 25})
    assert centroids.drifted({"th": 100, "en": 40, "zh": MIN_CHUNKS})
    assert not centroids.drifted({"th": 100, "en": 40, "zh": MIN_CHUNKS - 1})
    assert LanguageCentroids().drifted({"th": MIN_CHUNKS})


def test_json_round_trip_keeps_the_version():
    rng = np.random.default_rng(2)
    centroids = compute_centroids([(unit(rng.normal(size=(40, 4)).astype(np.float32)), ["en"] * 40)])
    again = LanguageCentroids.from_json(centroids.to_json())
    assert again.version == centroids.version != "none"


def test_knowledge_base_centers_its_index_once_it_has_enough_chunks(make_kb):
    kb = make_kb()
    complaints = [f"Complaint number {i}: the router restarts by itself every {i + 2} hours." for i in range(MIN_CHUNKS + 4)]
    kb.add_documents([note(f"N-{i}", text) for i, text in enumerate(complaints)])
    stored = LanguageCentroids.from_json(kb.store.get_meta("centroids"))
    assert stored.version != "none" and set(stored.means) == {"en"}
    chunk_id = int(kb.store.chunk_ids()[0])
    with kb.store.session() as s:
        from kb.storage.models import Chunk

        raw = np.frombuffer(s.get(Chunk, chunk_id).vector, dtype="<f4")
    expected = stored.center(raw[None, :], ["en"])[0]
    assert np.allclose(kb.indexes.vectors.reconstruct(chunk_id), expected, atol=1e-5)
    assert not np.allclose(expected, raw, atol=1e-3)
    assert kb.search("router restarts", k=3).results
