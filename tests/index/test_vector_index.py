"""The FAISS index: ids are chunk ids, filters act inside the search, saves are atomic; past a size, IVF."""

from __future__ import annotations

import json
import sys
import threading

import faiss
import numpy as np

from kb.documents import DocumentInput
from kb.index.vectors import (
    DELTA_FILE,
    INDEX_FILE,
    MANIFEST_FILE,
    Manifest,
    Plan,
    VectorIndex,
    VectorOptions,
    plan,
)


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
    assert (manifest.model_id, manifest.dimension, manifest.count, manifest.fingerprint) == ("model-x", 8, 10, "10:9:45")
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


# -- the approximate index (IVF), forced on small sets -------------------------------------

IVF_OPTIONS = VectorOptions(kind="ivf")


def clustered_rows(n: int, dim: int = 32, centers: int = 60, seed: int = 1) -> np.ndarray:
    """Unit vectors around a few dozen centers, like the synthetic knowledge base (perturbed real vectors)."""
    rng = np.random.default_rng(seed)
    middle = unit_rows(centers, dim, seed + 1)
    rows = middle[rng.integers(centers, size=n)] + rng.normal(0, 0.08, (n, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def exact_top(vectors: np.ndarray, ids: np.ndarray, query: np.ndarray, k: int) -> list[int]:
    return ids[np.argsort(-(vectors @ query), kind="stable")[:k]].tolist()


def ivf_index(n: int = 6000) -> tuple[VectorIndex, np.ndarray, np.ndarray]:
    vectors = clustered_rows(n)
    ids = np.arange(1000, 1000 + 3 * n, 3, dtype=np.int64)  # ids need not be dense
    index = VectorIndex(32, IVF_OPTIONS)
    index.add(ids, vectors)
    index.compact()
    return index, ids, vectors


def test_plan_is_flat_when_small_and_ivf_with_parameters_by_size_when_large():
    auto = VectorOptions()
    assert plan(50_000, auto) == Plan("flat")
    assert plan(200_000, auto) == Plan("ivf", 1024, 64)
    assert plan(1_000_000, auto) == Plan("ivf", 2048, 64)  # 64 lists recall 0.977-0.997 there, in half the time
    assert plan(4_000_000, auto) == Plan("ivf", 4096, 128)
    assert plan(1_000_000, VectorOptions(nlist=1000, nprobe=50)) == Plan("ivf", 1000, 50)
    assert plan(5_000_000, VectorOptions(kind="flat")) == Plan("flat")
    assert plan(2000, IVF_OPTIONS).nlist <= 2000 // 39
    assert plan(0, IVF_OPTIONS) == Plan("flat")  # nothing to train on: IVF once there are vectors


def test_ivf_index_keeps_recall_at_10_against_the_exact_scan():
    index, ids, vectors = ivf_index()
    assert index.kind == "ivf" and index.nprobe < index.base.nlist
    queries = clustered_rows(100, seed=9)
    recall = np.mean([
        len(set(index.search(q, 10)[0].tolist()) & set(exact_top(vectors, ids, q, 10))) / 10 for q in queries
    ])
    assert recall >= 0.95


def test_ivf_index_takes_adds_and_removes_and_compaction_keeps_them():
    index, ids, vectors = ivf_index()
    extra = clustered_rows(40, seed=5)
    extra_ids = np.arange(900_000, 900_040, dtype=np.int64)
    index.add(extra_ids, extra)
    gone = np.concatenate([ids[:30], extra_ids[:10]])
    assert index.remove(gone) == 40
    assert len(index) == len(ids) + 40 - 40
    assert set(index.ids().tolist()) == set(ids[30:].tolist()) | set(extra_ids[10:].tolist())
    for query, chunk_id in ((vectors[0], ids[0]), (extra[0], extra_ids[0])):
        assert chunk_id not in index.search(query, 50)[0]
    assert index.search(extra[20], 1)[0][0] == extra_ids[20]
    assert np.allclose(index.reconstruct(extra_ids[20]), extra[20])
    assert np.allclose(index.reconstruct_many(ids[[40, 41]]), vectors[[40, 41]], atol=1e-3)  # fp16 in the base
    index.compact()
    assert index.delta.ntotal == 0 and len(index.removed) == 0 and index.kind == "ivf"
    assert len(index) == len(ids)
    assert [index.search(q, 1)[0][0] for q in extra[10:]] == extra_ids[10:].tolist()
    assert ids[0] not in index.ids() and np.allclose(index.reconstruct(extra_ids[20]), extra[20], atol=1e-3)


def test_filters_on_an_ivf_index_fill_the_page_even_when_narrow():
    index, ids, vectors = ivf_index()
    rng = np.random.default_rng(3)
    narrow = np.sort(rng.choice(ids, 15, replace=False))  # 0.25% of the chunks, anywhere
    rows = np.searchsorted(ids, narrow)
    third = ids[::3]
    for query in clustered_rows(10, seed=11):
        found, scores = index.search(query, 10, allowed_ids=narrow)
        assert found.tolist() == exact_top(vectors[rows], narrow, query, 10)
        assert np.all(np.diff(scores) <= 0)
        found, _ = index.search(query, 10, allowed_ids=third)
        assert set(found) <= set(third.tolist()) and len(found) == 10
        assert len(set(found.tolist()) & set(exact_top(vectors[::3], third, query, 10))) >= 9


def test_saved_ivf_index_opens_memory_mapped_and_changes_go_beside_it(tmp_path):
    index, ids, vectors = ivf_index()
    index.save(tmp_path, Manifest("m", 32, 0, "f"))
    base_file = (tmp_path / INDEX_FILE).stat()
    loaded, manifest = VectorIndex.load(tmp_path, IVF_OPTIONS)
    assert loaded.base.mapped and manifest.kind == "ivf" and manifest.count == len(ids)
    assert loaded.search(vectors[7], 5)[0].tolist() == index.search(vectors[7], 5)[0].tolist()
    # FAISS aborts the process on any change to a mapped index: these must land in the delta.
    loaded.add(np.array([5], np.int64), vectors[7:8])
    loaded.remove(ids[7:8])
    assert loaded.search(vectors[7], 1)[0].tolist() == [5]
    loaded.save(tmp_path, Manifest("m", 32, 0, "f"))
    assert (tmp_path / INDEX_FILE).stat().st_ino == base_file.st_ino  # only the delta was written
    again, manifest = VectorIndex.load(tmp_path, IVF_OPTIONS)
    assert manifest.count == len(ids) and again.search(vectors[7], 1)[0].tolist() == [5]
    assert ids[7] not in again.ids() and 5 in again.ids()


def test_searches_in_threads_stay_right_while_another_thread_adds_removes_compacts_and_saves(tmp_path):
    """Threads of one process share an index: a search during a change sees the state before or after it."""
    index, ids, vectors = ivf_index(3000)
    doomed = ids[1::2]
    extra = clustered_rows(36 * 200, seed=100)
    extra_ids = np.arange(10_000_000, 10_000_000 + len(extra), dtype=np.int64)
    known = [(ids[row], vectors[row]) for row in range(0, 3000, 2)]  # ids that stay; added ones join once in
    gone: list[int] = []  # ids removed so far (appended once `remove` returned)
    stop = threading.Event()
    errors: list[BaseException] = []

    def search() -> None:
        rng = np.random.default_rng(threading.get_ident() % 2**32)
        try:
            while not stop.is_set():
                chunk_id, vector = known[-1 - int(rng.integers(min(len(known), 400)))]  # often in the delta
                removed_before = set(gone)
                found, scores = index.search(vector, 10)
                assert found[0] == chunk_id and abs(float(scores[0]) - 1) < 1e-3
                assert len(set(found.tolist())) == len(found) and not removed_before & set(found.tolist())
                assert np.allclose(index.reconstruct(chunk_id), vector, atol=1e-3)  # fp16 once compacted into an IVF base
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
            stop.set()

    def change() -> None:
        try:
            for step in range(36):
                rows = slice(200 * step, 200 * step + 200)
                index.add(extra_ids[rows], extra[rows])
                known.extend(zip(extra_ids[rows], extra[rows], strict=True))
                batch = doomed[step * 40 : step * 40 + 40]
                index.remove(batch)
                gone.extend(batch.tolist())
                if step % 2 == 1:
                    index.compact()
                if step % 5 == 4:
                    index.save(tmp_path, Manifest("m", 32, 0, "f"))  # maps the new base back: another swap
        except BaseException as exc:
            errors.append(exc)
        finally:
            stop.set()

    readers = [threading.Thread(target=search) for _ in range(4)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads between almost every bytecode: races show at once
    try:
        for thread in readers:
            thread.start()
        change()
        for thread in readers:
            thread.join(timeout=60)
    finally:
        sys.setswitchinterval(interval)
    assert not errors, errors[0]
    assert len(index) == len(ids) + len(extra) - len(gone)
    assert not set(gone) & set(index.ids().tolist())


def test_auto_index_turns_approximate_past_the_threshold_and_back():
    options = VectorOptions(flat_max=1000, nlist=16)  # fixed lists: only the kind is in question
    index = VectorIndex(32, options)
    vectors = clustered_rows(3000)
    index.add(np.arange(800), vectors[:800])
    index.compact()
    assert index.kind == "flat" and not index.needs_compaction
    index.add(np.arange(800, 3000), vectors[800:])
    assert index.needs_compaction
    index.compact()
    assert index.kind == "ivf"
    index.remove(np.arange(1050, 3000))
    assert not index.needs_compaction  # within 10% of the threshold: no flip-flop
    index.remove(np.arange(700, 1050))
    assert index.needs_compaction
    index.compact()
    assert index.kind == "flat" and len(index) == 700


def test_ivf_lists_hold_half_precision_vectors_close_to_the_originals(tmp_path):
    index, ids, vectors = ivf_index()
    assert index.base.index.code_size == 32 * 2  # two bytes a dimension: half the file every worker maps
    assert np.abs(index.reconstruct_many(ids) - vectors).max() < 1e-3
    found, scores = index.search(vectors[5], 3)
    assert found[0] == ids[5] and abs(scores[0] - 1.0) < 1e-3


def test_an_ivf_flat_base_saved_by_an_earlier_version_opens_and_compacts_to_half_precision(tmp_path):
    vectors = clustered_rows(3000)
    ids = np.arange(3000, dtype=np.int64) * 2
    flat = faiss.IndexIVFFlat(faiss.IndexFlatIP(32), 32, 40, faiss.METRIC_INNER_PRODUCT)
    flat.train(vectors)
    flat.add_with_ids(vectors, ids)
    faiss.write_index(flat, str(tmp_path / INDEX_FILE))
    np.savez(tmp_path / DELTA_FILE, ids=np.empty(0, np.int64), vectors=np.empty((0, 32), np.float32),
             removed=np.empty(0, np.int64), token=np.array("t"))
    (tmp_path / MANIFEST_FILE).write_text(json.dumps(
        {"model_id": "m", "dimension": 32, "count": 3000, "fingerprint": "f", "format": 2, "kind": "ivf",
         "base_count": 3000, "token": "t"}))
    loaded, _ = VectorIndex.load(tmp_path, IVF_OPTIONS)
    assert np.array_equal(loaded.reconstruct_many(ids[:50]), vectors[:50])  # float32 rows, read as they are
    loaded.remove(ids[:10])
    loaded.add(np.array([1], np.int64), vectors[:1])
    loaded.compact()  # keeps the 40 centroids, rewrites the lists in fp16
    assert loaded.base.index.code_size == 64 and loaded.base.nlist == 40 and len(loaded) == 2991
    assert loaded.search(vectors[100], 1)[0].tolist() == [ids[100]]
    assert np.abs(loaded.reconstruct_many(ids[10:]) - vectors[10:]).max() < 1e-3


def test_files_of_the_first_format_still_open(tmp_path):
    old = faiss.IndexIDMap2(faiss.IndexFlatIP(8))
    old.add_with_ids(unit_rows(4), np.arange(4, dtype=np.int64))
    faiss.write_index(old, str(tmp_path / INDEX_FILE))
    (tmp_path / MANIFEST_FILE).write_text(json.dumps(
        {"model_id": "m", "dimension": 8, "count": 4, "fingerprint": "f", "centering": "none", "format": 1}))
    loaded, manifest = VectorIndex.load(tmp_path)
    assert manifest.format == 1 and sorted(loaded.ids()) == [0, 1, 2, 3]


# -- a knowledge base on an IVF index (forced), following its database ---------------------

TOPICS = [
    "Refunds are paid to the original card within five working days.",
    "Fibre installation needs a technician visit and a signed access form.",
    "Customers may pause a mobile plan for up to three months a year.",
    "A damaged router is replaced free of charge within the warranty.",
    "Business accounts get a named account manager and quarterly reviews.",
    "Roaming charges in the EU follow the domestic price list.",
    "Complaints are acknowledged within one working day by email.",
    "Direct debit dates can be moved once per billing cycle.",
    "Parental controls are set up in the customer portal under settings.",
    "Number porting takes one working day once the code is received.",
    "Late payment fees are waived for customers in hardship schemes.",
    "Landline faults are repaired within two days for priority customers.",
]


def topic_doc(i: int, text: str) -> DocumentInput:
    return DocumentInput(source=f"/docs/t{i}.md", source_file=f"/docs/t{i}.md", title=f"Topic {i}", text=text)


def db_and_index_ids(kb) -> tuple[list[int], list[int]]:
    return [int(i) for i in kb.store.chunk_ids()], sorted(int(i) for i in kb.indexes.vectors.ids())


def test_knowledge_base_on_an_ivf_index_follows_and_repairs_from_the_database(make_kb):
    writer = make_kb(vector_index="ivf")
    writer.add_documents([topic_doc(i, text) for i, text in enumerate(TOPICS)])
    writer.reindex()
    assert writer.indexes.vectors.kind == "ivf" and writer.indexes.vectors.base.mapped
    reader = make_kb(vector_index="ivf")  # another process: the saved file, mapped
    assert reader.indexes.vectors.base.mapped and reader.indexes.vectors.token == writer.indexes.vectors.token
    writer.delete(["/docs/t3.md"])
    writer.add_documents([topic_doc(99, "Satellite dishes are aligned by the installer at no extra cost.")])
    reader.refresh()
    db, indexed = db_and_index_ids(reader)
    assert indexed == db
    sources = [r.source for r in reader.search("who aligns the satellite dish", k=3, mode="dense").results]
    assert sources[0] == "/docs/t99.md"
    assert "/docs/t3.md" not in [r.source for r in reader.search("broken router replacement", k=12).results]
    reader.close()
    reopened = make_kb(vector_index="ivf")  # the saved base and delta, repaired against the database
    db, indexed = db_and_index_ids(reopened)
    assert indexed == db and reopened.indexes.vectors.base.mapped


def test_a_process_folding_its_changes_adopts_the_base_another_just_saved(make_kb):
    first = make_kb(vector_index="ivf")
    first.add_documents([topic_doc(i, text) for i, text in enumerate(TOPICS)])
    first.reindex()
    second = make_kb(vector_index="ivf")
    first.add_documents([topic_doc(50, "Prepaid top-ups can be bought at any post office counter.")])
    first.indexes.vectors.compact()
    first.save_index()  # a new base file
    second.refresh()
    second.indexes._fold_vectors()  # what a grown delta sets off
    assert second.indexes.vectors.token == first.indexes.vectors.token
    db, indexed = db_and_index_ids(second)
    assert indexed == db and second.indexes.vectors.delta.ntotal == 0
