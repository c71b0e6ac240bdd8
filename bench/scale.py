"""Search at scale: a synthetic knowledge base of N chunks, next to the bundled corpus, in one run.

The synthetic knowledge base is bench/retrieval.py's `build_synthetic` (perturbed
real vectors, resampled real terms), built in a temporary directory or reused
from `--work-dir`. Queries: the staff questions about the corpus in
bench/realq/dev.jsonl, which are about what the synthetic chunks are made of,
and XQuAD questions (every ninth, as in bench/retrieval.py; the corpus's
document titles when XQuAD is not found), which are not: for them every
neighbour is far, the hard case for an approximate index.

Latency is compared on the staff questions, which find a page of results on
both knowledge bases: the same work at two sizes. On the bundled corpus the
relevance floor answers most XQuAD questions (football, physics) with an empty
page, which skips fetching and snippets, while on the synthetic base they find
results; their figures are printed as well (`xquad_*`), not compared.

Printed: hybrid search p50/p99 on the bundled corpus and on the synthetic
knowledge base (query encoding included, no cache); the keyword side p50 and
the vector side p50 (the index in use and an exact flat scan of the same
vectors, depth 50 as a search's first pass); recall@10 of the index against
the flat scan for real questions' vectors, unfiltered, filtered to one
language and filtered to 0.5% of the chunks; the seconds to rebuild the
indexes from the database and to open the saved ones (in a fresh process, as a
portal worker starts, with that process's private and file-backed memory: the
mapped index is shared by every worker of a node); peak RSS of this process
(taken before the flat reference is built); in that fresh process, the time of the
per-request freshness check (`Store.state`) and of a refresh that finds nothing new.

Then, as operators run it: the memory of `kb serve --workers 4` on the N chunks
(RSS and PSS summed over its processes), and the bundled guidance ingested
through the queue by one and by two `kb worker` processes next to a bare encode
of the same chunks (bench/service.py; needs --queue-url or KB_QUEUE_URL).

    python bench/scale.py --chunks N [--json] [--queries 204] [--work-dir DIR] [--corpus-data-dir DIR]
                          [--service-workers 4] [--queue-url URL] [--ingest-files N]

With the environment's KB_VECTOR_INDEX=flat (and KB_VECTOR_MMAP=0) the same run
gives the figures of the exact index held in each process.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import faiss  # noqa: E402
import numpy as np  # noqa: E402

from bench.retrieval import build_synthetic, find_xquad, latency, load_xquad  # noqa: E402
from bench.service import ingest_rates, service_memory  # noqa: E402
from indexer.pipeline import ingest_paths  # noqa: E402
from kb.config import Settings  # noqa: E402
from kb.index.chunk_table import SearchFilters  # noqa: E402
from kb.knowledge_base import KnowledgeBase  # noqa: E402
from kb.search.query import clean_query, query_language, query_terms  # noqa: E402
from kb.search.weights import MIN_DEPTH  # noqa: E402


def open_corpus(work: Path, models_dir: Path, corpus_data_dir: Path | None) -> KnowledgeBase:
    """The bundled corpus: a copy of an existing data directory, or ingested afresh."""
    target = work / "corpus"
    if corpus_data_dir is not None and not target.exists():
        shutil.copytree(corpus_data_dir, target, ignore=shutil.ignore_patterns("*.lock"))
    kb = KnowledgeBase.open(Settings.from_env(data_dir=target, models_dir=models_dir, database_url=None))
    if not kb.stats().chunks:
        ingest_paths(kb.engine, [REPO / "corpus"], progress=False)
    return kb


def open_synthetic(corpus: KnowledgeBase, work: Path, models_dir: Path, n_chunks: int) -> tuple[KnowledgeBase, dict]:
    """The synthetic knowledge base of `n_chunks` chunks, reused from `work` when it is there, and its timings."""
    settings = Settings.from_env(data_dir=work / "synthetic", models_dir=models_dir, database_url=None)
    timings: dict[str, float] = {}
    if (settings.data_dir / "kb.sqlite3").exists():
        kb = KnowledgeBase.open(settings, embedder=corpus.embedder)
        if kb.stats().chunks == n_chunks:
            started = time.perf_counter()
            kb.reindex()
            timings["rebuild_s"] = time.perf_counter() - started
            kb.close()
            started = time.perf_counter()
            kb = KnowledgeBase.open(settings, embedder=corpus.embedder)
            timings["open_s"] = time.perf_counter() - started
            print(f"reused the synthetic knowledge base in {work}: rebuilt in {timings['rebuild_s']:.1f} s, "
                  f"re-opened in {timings['open_s']:.1f} s")
            return kb, timings
        kb.close()
        shutil.rmtree(settings.data_dir)
    return build_synthetic(corpus, work, models_dir, n_chunks, timings), timings


def questions(corpus: KnowledgeBase, count: int) -> list[str]:
    xquad = find_xquad()
    if xquad is not None:
        pool = [q for _, _, q, _ in load_xquad(xquad)[1][::9]]
    else:
        pool = sorted({info.title for info in corpus.indexes.table.docs.values()})
    return pool[:count]


def corpus_questions(count: int) -> list[str]:
    """Staff questions about the bundled corpus (bench/realq), every language, at most `count`."""
    lines = (REPO / "bench" / "realq" / "dev.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["question"] for line in lines if line.strip()][:count]


def percentile(times: list[float], q: float) -> float:
    return float(np.percentile(times, q)) * 1000


def timed(call, runs: list) -> list[float]:
    times = []
    for args in runs:
        started = time.perf_counter()
        call(*args)
        times.append(time.perf_counter() - started)
    return times


def flat_reference(index) -> faiss.Index:
    """An exact flat index over the same live vectors as `index` (filled in slices to bound the copy)."""
    flat = faiss.IndexIDMap(faiss.IndexFlatIP(index.dimension))
    ids = index.ids()
    for first in range(0, len(ids), 100_000):
        part = ids[first : first + 100_000]
        flat.add_with_ids(index.reconstruct_many(part), part)
    return flat


def overlaps(index, flat: faiss.Index, vectors: list[np.ndarray], allowed: np.ndarray | None = None):
    """Per query, the share of the exact top 10 and of the exact top 50 that the index returns (one search each)."""
    params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(allowed)) if allowed is not None else None
    at10, at50 = [], []
    for vector in vectors:
        _, exact = flat.search(vector[None, :].astype(np.float32), MIN_DEPTH, params=params)
        exact = exact[0][exact[0] >= 0]
        found = index.search(vector, MIN_DEPTH, allowed)[0]
        if len(exact):
            at10.append(len(set(found[:10].tolist()) & set(exact[:10].tolist())) / len(exact[:10]))
            at50.append(len(set(found.tolist()) & set(exact.tolist())) / len(exact))
    return at10, at50


def mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else 1.0


def query_vectors(kb: KnowledgeBase, queries: list[str]) -> list[np.ndarray]:
    """As a search makes them: encoded, then centered for the query's language."""
    cleaned = [clean_query(q) for q in queries]
    return [kb.indexes.center_query(kb.embedder.encode_query(q), query_language(q)) for q in cleaned]


def vector_figures(kb: KnowledgeBase, queries: list[str], staff: list[str]) -> dict:
    """Keyword and vector side p50s, and recall of the index against an exact flat scan."""
    indexes, engine = kb.indexes, kb.engine
    terms = [query_terms(engine, clean_query(q)) for q in queries]
    vectors = query_vectors(kb, queries)
    staff_vectors = query_vectors(kb, staff)
    both = vectors + staff_vectors
    keyword = timed(lambda t: indexes.keywords.search(t, MIN_DEPTH, None), [(t,) for t in terms if t])
    vector = timed(lambda v: indexes.vectors.search(v, MIN_DEPTH), [(v,) for v in vectors])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    flat = flat_reference(indexes.vectors)
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)  # as kb.index.vectors searches one query
    flat_times = timed(lambda v: flat.search(v[None, :], MIN_DEPTH), [(v,) for v in vectors])
    faiss.omp_set_num_threads(threads)
    ids = indexes.vectors.ids()
    thai = indexes.table.allowed_ids(SearchFilters(lang="th"))
    narrow = np.sort(np.random.default_rng(0).choice(ids, min(len(ids), max(20, len(ids) // 200)), replace=False))
    at10, at50 = overlaps(indexes.vectors, flat, both)
    return {
        "keyword_p50_ms": percentile(keyword, 50) if keyword else 0.0,
        "vector_p50_ms": percentile(vector, 50),
        "flat_vector_p50_ms": percentile(flat_times, 50),
        "recall_at_10": mean(at10),
        "recall_at_10_xquad": mean(at10[: len(vectors)]),
        "recall_at_10_staff": mean(at10[len(vectors) :]),
        "recall_at_50": mean(at50),
        "thai_filter_recall_at_10": mean(overlaps(indexes.vectors, flat, both, thai)[0]) if len(thai) else 1.0,
        "narrow_filter_recall_at_10": mean(overlaps(indexes.vectors, flat, both, narrow)[0]),
        "peak_rss_mb": peak,
    }


def probe_worker(data_dir: Path, models_dir: Path) -> dict:
    """Open the saved indexes in a fresh process, as a portal worker does, and read its memory."""
    proc = subprocess.run(
        [sys.executable, __file__, "--probe", str(data_dir), "--models-dir", str(models_dir)],
        capture_output=True, text=True, check=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def follow_another_writer(kb: KnowledgeBase) -> tuple[float, float]:
    """Milliseconds this process takes to follow one chunk added by another writer, then its removal.

    The chunk is a copy of the last one, written with SQL as another node's ingest would commit it, and
    removed again, so the base keeps its size.
    """
    from sqlalchemy import delete, insert, select

    from kb.storage.models import Chunk

    with kb.store.session() as s:
        row = s.execute(select(Chunk.__table__).order_by(Chunk.id.desc()).limit(1)).mappings().one()
        copy = {key: value for key, value in row.items() if key != "id"}
        copy["ordinal"] = row["ordinal"] + 1_000_000
        new_id = s.execute(insert(Chunk.__table__).values(copy).returning(Chunk.id)).scalar_one()
    started = time.perf_counter()
    kb.refresh()
    added = time.perf_counter() - started
    with kb.store.session() as s:
        s.execute(delete(Chunk).where(Chunk.id == new_id))
    started = time.perf_counter()
    kb.refresh()
    return added * 1000, (time.perf_counter() - started) * 1000


def probe(data_dir: Path, models_dir: Path) -> None:
    """(In the fresh process.) Open, search 50 times with stored vectors, print open time and memory."""
    started = time.perf_counter()
    kb = KnowledgeBase.open(Settings.from_env(data_dir=data_dir, models_dir=models_dir, database_url=None))
    open_s = time.perf_counter() - started
    state_times = timed(kb.store.state, [()] * 50)
    refresh_times = timed(kb.refresh, [()] * 50)
    follow_add_ms, follow_remove_ms = follow_another_writer(kb)
    vectors = kb.indexes.vectors
    ids = vectors.ids()
    for chunk_id in np.random.default_rng(1).choice(ids, min(50, len(ids)), replace=False):
        vectors.search(vectors.reconstruct(int(chunk_id)), MIN_DEPTH)
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    kb_of = {name: int(status.get(name, "0 kB").split()[0]) / 1024 for name in ("VmRSS", "RssAnon", "RssFile")}
    print(json.dumps({"open_s": open_s, "state_check_ms": percentile(state_times, 50),
                      "refresh_unchanged_ms": percentile(refresh_times, 50), "follow_added_chunk_ms": follow_add_ms,
                      "follow_removed_chunk_ms": follow_remove_ms, "rss_mb": kb_of["VmRSS"], "private_mb": kb_of["RssAnon"],
                      "file_mb": kb_of["RssFile"], "mapped": vectors.base.mapped}))


def run(args: argparse.Namespace, work: Path) -> dict:
    corpus = open_corpus(work, args.models_dir, args.corpus_data_dir)
    queries, staff = questions(corpus, args.queries), corpus_questions(args.queries)
    corpus.search(queries[0], k=10)  # loads the query encoder and the segmenters: not a query's cost
    corpus_p50, corpus_p99, corpus_stages = latency(corpus, staff, "hybrid")
    xquad_corpus_p50, _, _ = latency(corpus, queries, "hybrid")
    synthetic, timings = open_synthetic(corpus, work, args.models_dir, args.chunks)
    hybrid_p50, hybrid_p99, stages = latency(synthetic, staff, "hybrid")
    xquad_p50, xquad_p99, _ = latency(synthetic, queries, "hybrid")
    figures = vector_figures(synthetic, queries, staff)
    index = synthetic.indexes.vectors
    kind = {"index_kind": index.kind, "nlist": index.base.nlist, "nprobe": index.nprobe}
    index_file = synthetic.settings.index_dir / "vectors.faiss"
    synthetic.close()
    corpus.close()
    del synthetic, corpus, index  # the fresh worker below should not share the machine with this one's memory
    gc.collect()
    worker = probe_worker(work / "synthetic", args.models_dir)
    service = service_memory(work / "synthetic", args.models_dir, args.service_workers)
    ingest = ingest_rates(work, args.models_dir, args.queue_url, args.ingest_files) if args.queue_url else {}
    return {
        "chunks": args.chunks, "queries": len(staff), "xquad_queries": len(queries),
        "hybrid_p50_ms": hybrid_p50, "hybrid_p99_ms": hybrid_p99,
        "corpus_hybrid_p50_ms": corpus_p50, "corpus_hybrid_p99_ms": corpus_p99, "small_hybrid_p50_ms": corpus_p50,
        "hybrid_stage_mean_ms": stages, "corpus_hybrid_stage_mean_ms": corpus_stages,
        "latency_queries": "staff", "xquad_hybrid_p50_ms": xquad_p50, "xquad_hybrid_p99_ms": xquad_p99,
        "xquad_small_hybrid_p50_ms": xquad_corpus_p50,
        **figures,
        "open_s": worker["open_s"], "state_check_ms": worker["state_check_ms"],
        "refresh_unchanged_ms": worker["refresh_unchanged_ms"], "follow_added_chunk_ms": worker["follow_added_chunk_ms"],
        "follow_removed_chunk_ms": worker["follow_removed_chunk_ms"], "reopen_in_process_s": timings["open_s"], "rebuild_s": timings["rebuild_s"],
        "worker_rss_mb": worker["rss_mb"], "worker_private_mb": worker["private_mb"],
        "worker_file_mb": worker["file_mb"], "worker_mapped": worker["mapped"],
        "index_file_mb": index_file.stat().st_size / 2**20 if index_file.exists() else 0.0,
        **kind, **service, **ingest,
        "recall_at_10_vs_flat": figures["recall_at_10"],
    }


def report(figures: dict) -> None:
    f = figures
    print(f"\n{f['chunks']} chunks, {f['queries']} queries; vector index: {f['index_kind']}"
          + (f" (nlist {f['nlist']}, nprobe {f['nprobe']})" if f["nlist"] else ""))
    print(f"  hybrid search, staff questions: p50 {f['hybrid_p50_ms']:7.1f} ms  p99 {f['hybrid_p99_ms']:7.1f} ms  "
          f"(bundled corpus: p50 {f['corpus_hybrid_p50_ms']:.1f}, p99 {f['corpus_hybrid_p99_ms']:.1f}; "
          f"ratio p50 {f['hybrid_p50_ms'] / f['corpus_hybrid_p50_ms']:.2f}x, p99 "
          f"{f['hybrid_p99_ms'] / f['corpus_hybrid_p99_ms']:.2f}x)")
    for name, key in (("synthetic", "hybrid_stage_mean_ms"), ("bundled corpus", "corpus_hybrid_stage_mean_ms")):
        print(f"  stages on the {name} (mean) " + ", ".join(f"{s} {ms:.1f}" for s, ms in sorted(f[key].items())))
    print(f"  XQuAD questions ({f['xquad_queries']}): p50 {f['xquad_hybrid_p50_ms']:.1f} ms, p99 "
          f"{f['xquad_hybrid_p99_ms']:.1f} (bundled corpus p50 {f['xquad_small_hybrid_p50_ms']:.1f}, mostly empty pages)")
    print(f"  keyword side p50 {f['keyword_p50_ms']:.2f} ms; vector side p50 {f['vector_p50_ms']:.2f} ms "
          f"(flat scan {f['flat_vector_p50_ms']:.2f} ms)")
    print(f"  recall against the flat scan: @10 {f['recall_at_10']:.3f} (XQuAD {f['recall_at_10_xquad']:.3f}, "
          f"staff questions {f['recall_at_10_staff']:.3f}), @50 {f['recall_at_50']:.3f}, "
          f"@10 Thai only {f['thai_filter_recall_at_10']:.3f}, @10 within 0.5% {f['narrow_filter_recall_at_10']:.3f}")
    print(f"  rebuild from the database {f['rebuild_s']:.1f} s; open with saved indexes {f['open_s']:.2f} s "
          f"(fresh process; {f['reopen_in_process_s']:.2f} s in this one)")
    print(f"  freshness check (the database's change marker) p50 {f['state_check_ms']:.2f} ms; "
          f"a refresh with nothing new p50 {f['refresh_unchanged_ms']:.2f} ms")
    print(f"  following another writer: one chunk added {f['follow_added_chunk_ms']:.1f} ms, "
          f"removed {f['follow_removed_chunk_ms']:.1f} ms")
    print(f"  a fresh worker after opening: RSS {f['worker_rss_mb']:.0f} MB, of which private {f['worker_private_mb']:.0f} "
          f"MB and file-backed (shared) {f['worker_file_mb']:.0f} MB; index file {f['index_file_mb']:.0f} MB")
    print(f"  peak RSS of this process {f['peak_rss_mb']:.0f} MB")
    print(f"  the service (kb serve --workers {f['service_workers']}, {f['service_processes']} processes) after "
          f"{f['service_workers'] * 6} API searches: RSS {f['service_rss_mb']} MB summed, PSS {f['service_pss_mb']} MB")
    if "bare_encode_chunks_per_s" in f:
        print(f"  ingest through the queue ({f['ingest_chunks']} chunks): one worker "
              f"{f['ingest_1_worker_chunks_per_s']:.2f} chunks/s on every core, "
              f"{f['ingest_1_worker_1_core_chunks_per_s']:.2f} on one core; two on a core each "
              f"{f['ingest_2_workers_chunks_per_s']:.2f}; bare encode {f['bare_encode_chunks_per_s']:.2f}")
    else:
        print("  ingest through the queue: not measured (no --queue-url or KB_QUEUE_URL)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=200_000)
    parser.add_argument("--queries", type=int, default=204)
    parser.add_argument("--json", action="store_true", help="print one JSON object (progress goes to stderr)")
    parser.add_argument("--work-dir", type=Path, default=None, help="keep (and reuse) the knowledge bases here")
    parser.add_argument("--corpus-data-dir", type=Path, default=None,
                        help="a data directory holding the bundled corpus already (copied, not changed)")
    parser.add_argument("--models-dir", type=Path, default=None)
    parser.add_argument("--service-workers", type=int, default=4, help="portal workers for the service's memory")
    parser.add_argument("--queue-url", default=os.environ.get("KB_QUEUE_URL") or None,
                        help="Redis or RabbitMQ for the ingest rates (default KB_QUEUE_URL; none: not measured)")
    parser.add_argument("--ingest-files", type=int, default=None, help="only the first N files of the bundled guidance")
    parser.add_argument("--probe", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.models_dir = args.models_dir or Settings.from_env().models_dir or REPO / "data" / "models"
    if args.probe is not None:
        probe(args.probe, args.models_dir)
        return
    with contextlib.ExitStack() as stack:
        if args.json:
            stack.enter_context(contextlib.redirect_stdout(sys.stderr))
        if args.work_dir is not None:
            args.work_dir.mkdir(parents=True, exist_ok=True)
            work = args.work_dir
        else:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kb-scale-")))
        figures = run(args, work)
        if not args.json:
            report(figures)
    if args.json:
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
