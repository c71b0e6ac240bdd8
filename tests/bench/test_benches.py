"""Each benchmark runs on a tiny input, so none of them rots; the figures themselves are read by people."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

from tests.conftest import REPO


def run_bench(*args: str, models_dir, timeout: int = 600, env: dict[str, str] | None = None) -> str:
    env = {**os.environ, "KB_MODELS_DIR": str(models_dir), "PYTHONPATH": str(REPO), **(env or {})}
    proc = subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-3000:])
    return proc.stdout


def test_load_bench_searches_while_documents_are_added(corpus_data_dir, models_dir):
    out = run_bench("bench/load.py", "--seconds", "8", "--searchers", "3", "--workers", "2",
                    "--data-dir", str(corpus_data_dir), "--models-dir", str(models_dir), models_dir=models_dir)
    assert re.search(r"requests [1-9]\d*, errors 0,", out), out
    assert re.search(r"latency ms: p50 \d+, p95 \d+, p99 \d+", out), out
    assert re.search(r"documents added during the run: [1-9]", out), out


def test_workflows_bench_runs_once(corpus_data_dir, models_dir, tmp_path):
    data_dir = tmp_path / "data"  # the bench makes collections: not in the corpus's shared knowledge base
    shutil.copytree(corpus_data_dir, data_dir, ignore=shutil.ignore_patterns("*.lock"))
    out = run_bench("bench/workflows.py", "--data-dir", str(data_dir), "--models-dir", str(models_dir),
                    "--repeat", "1", models_dir=models_dir)
    assert "similar" in out.lower(), out


SCALE_KEYS = {
    "chunks", "hybrid_p50_ms", "hybrid_p99_ms", "corpus_hybrid_p50_ms", "corpus_hybrid_p99_ms", "keyword_p50_ms",
    "vector_p50_ms", "flat_vector_p50_ms", "recall_at_10", "open_s", "rebuild_s", "peak_rss_mb", "index_kind",
    "state_check_ms", "refresh_unchanged_ms", "small_hybrid_p50_ms", "recall_at_10_vs_flat", "service_rss_mb",
    "service_pss_mb", "xquad_hybrid_p50_ms", "xquad_small_hybrid_p50_ms", "corpus_hybrid_stage_mean_ms",
}
INGEST_KEYS = {"ingest_1_worker_chunks_per_s", "ingest_1_worker_1_core_chunks_per_s", "ingest_2_workers_chunks_per_s",
               "bare_encode_chunks_per_s"}


def test_scale_bench_measures_an_approximate_index_against_the_flat_scan(corpus_data_dir, models_dir):
    queue = os.environ.get("KB_TEST_REDIS_URL")
    out = run_bench("bench/scale.py", "--chunks", "2000", "--queries", "20", "--json",
                    "--corpus-data-dir", str(corpus_data_dir), "--models-dir", str(models_dir),
                    "--service-workers", "2", "--ingest-files", "6", *(["--queue-url", queue] if queue else []),
                    models_dir=models_dir, env={"KB_VECTOR_INDEX": "ivf"}, timeout=1500)
    figures = json.loads(out)
    assert SCALE_KEYS <= set(figures), SCALE_KEYS - set(figures)
    assert figures["service_workers"] == 2 and figures["service_processes"] == 3  # gunicorn's arbiter and two workers
    assert figures["service_pss_mb"] <= figures["service_rss_mb"]
    if queue:
        assert INGEST_KEYS <= set(figures) and min(figures[k] for k in INGEST_KEYS) > 0
    assert figures["chunks"] == 2000 and figures["index_kind"] == "ivf"
    assert figures["recall_at_10"] >= 0.95
    assert figures["narrow_filter_recall_at_10"] == 1.0  # a narrow filter is an exact scan of what it allows


def test_keyword_bench_measures_the_tantivy_index_and_both_filter_strategies_agree(corpus_data_dir, models_dir):
    out = run_bench("bench/keyword_engines.py", "--chunks", "2000", "--json",
                    "--corpus-data-dir", str(corpus_data_dir), "--models-dir", str(models_dir), models_dir=models_dir)
    figures = json.loads(out.strip().splitlines()[-1])
    assert {"build_s", "disk_mb", "open_s", "all_p50_ms", "filtered_p50_ms", "private_mb", "holds_50_p50_ms",
            "add_100_ms"} <= set(figures)
    assert figures["all_hits"] > figures["filtered_hits"] > 0
    assert figures["strategies_agree"]  # a term set on the ids and a deeper unfiltered search: the same pages


def test_gpu_encode_bench_packs_the_model_small_and_its_vectors_match_the_cpu_model(corpus_data_dir, models_dir,
                                                                                     tmp_path):
    """The pack that travels to a GPU machine is under its 64 MB limit, and encoding it (here on the CPU, in
    float32) gives the bundled model's own vectors: the pruned vocabulary and fp16 weights lose nothing."""
    packed = tmp_path / "pack"
    out = run_bench("bench/gpu_encode.py", "--pack", str(packed), "--corpus-data-dir", str(corpus_data_dir),
                    "--models-dir", str(models_dir), models_dir=models_dir)
    assert re.search(r"packed [1-9]\d* passages", out), out
    assert sum(f.stat().st_size for f in packed.iterdir()) < 64 * 2**20
    out = run_bench("bench/gpu_encode.py", "--run", str(packed), "--device", "cpu", "--passages", "8",
                    "--batch", "4", "--dtypes", "fp32", "--json", models_dir=models_dir)
    figures = json.loads(out.strip().splitlines()[-1])
    (run,) = figures["runs"]
    assert run["passages_per_s"] > 0 and run["cosine_min"] > 0.999, figures
