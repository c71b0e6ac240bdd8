"""The whole service measured as operators run it, for bench/scale.py.

- `service_memory`: `kb serve --workers N` on a data directory, a few searches
  through the JSON API (so every worker has opened the indexes and the query
  encoder), then the resident memory of the whole process tree: the sum of RSS
  (what `ps` shows; pages the workers share are counted in each) and of PSS
  (shared pages divided among those who map them: what the machine gives).
- `ingest_rates`: the bundled guidance ingested through the queue by one `kb
  worker` as it comes (two jobs at once on every core), by one held to one core,
  and by two each held to a core of its own (one job at a time), each on a fresh
  database, in jobs of a few files as uploads arrive, timed from the first job
  queued to the last finished; next to a bare encode of the same chunks in one
  process. One worker per core against two on two cores is what adding a
  machine's worker brings; one worker against a bare encode is what the queue costs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.parse
import uuid
from pathlib import Path

from bench.load import free_port, get, stop_processes, wait_ready  # the load bench's own server helpers

REPO = Path(__file__).resolve().parents[1]
FILES_PER_JOB = 4
SEARCHES = ("call-back within two hours", "ใครควรเป็นผู้นำการเปลี่ยนแปลง", "如何处理客户投诉", "silo between business units",
            "refund for a double charge", "data quality owner", "permission marketing", "workshop role play")


def _kb(env: dict, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "cli.main", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"kb {' '.join(args)} failed: {done.stderr[-1500:]}")
    return done.stdout


def _tree_memory(pid: int) -> tuple[float, float, int]:
    """RSS and PSS (MB) summed over a process and its descendants, and how many processes."""
    import psutil

    root = psutil.Process(pid)
    rss = pss = 0.0
    processes = [root, *root.children(recursive=True)]
    for process in processes:
        info = process.memory_full_info()
        rss += info.rss
        pss += getattr(info, "pss", info.rss)
    return rss / 2**20, pss / 2**20, len(processes)


def service_memory(data_dir: Path, models_dir: Path, workers: int = 4) -> dict:
    """`kb serve --workers N` on `data_dir` after a few API searches: RSS and PSS of every process, summed."""
    env = {**os.environ, "KB_DATA_DIR": str(data_dir), "KB_MODELS_DIR": str(models_dir), "KB_COOKIE_SECURE": "0"}
    user = f"bench-{uuid.uuid4().hex[:6]}"
    _kb(env, "user", "add", user, "--role", "admin")
    token = _kb(env, "token", "create", user).strip().splitlines()[-1]
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "cli.main", "serve", "--host", "127.0.0.1", "--port", str(port),
                               "--workers", str(workers)], cwd=REPO, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_ready(base, server)
        started = time.perf_counter()
        for i in range(workers * 6):  # several per worker: gunicorn hands them to whichever is free
            query = urllib.parse.quote(SEARCHES[i % len(SEARCHES)])
            status, _ = get(f"{base}/api/v1/search?q={query}&k=10", token, timeout=120)
            if status != 200:
                raise RuntimeError(f"a search through the API answered {status}")
        searches_s = time.perf_counter() - started
        rss, pss, processes = _tree_memory(server.pid)
    finally:
        stop_processes(server)
    return {"service_rss_mb": round(rss), "service_pss_mb": round(pss), "service_processes": processes,
            "service_workers": workers, "service_searches_s": round(searches_s, 2)}


def _files(limit: int | None) -> list[Path]:
    files = sorted(p for p in (REPO / "corpus" / "guidance").rglob("*") if p.is_file())
    return files[:limit] if limit else files


def _pinned(core: int):
    """Hold a child process to one core, where the system lets us (Linux)."""
    if not hasattr(os, "sched_setaffinity") or core not in os.sched_getaffinity(0):
        return None
    return lambda: os.sched_setaffinity(0, {core})


def _ingest_through_queue(work: Path, models_dir: Path, queue_url: str, files: list[Path], workers: int,
                          one_core_each: bool) -> tuple:
    """Seconds from the first job queued to the last finished, with `workers` `kb worker` processes; the data dir;
    the last chunk id before the timed jobs (a warm-up job per worker came first).

    A worker as it comes runs two jobs at once on every core (as docs/scaling.md tells operators to run one
    per machine); `one_core_each` holds worker i to core i, one job at a time on one model thread."""
    from indexer.jobs import files_for_queue, get_job
    from indexer.queue import submit
    from kb.config import Settings
    from kb.engine import Engine

    data_dir = work / f"ingest-{workers}{'-pinned' if one_core_each else ''}"
    shutil.rmtree(data_dir, ignore_errors=True)  # a reused --work-dir: ingest afresh, or every file is skipped
    env = {**os.environ, "KB_DATA_DIR": str(data_dir), "KB_MODELS_DIR": str(models_dir), "KB_QUEUE_URL": queue_url,
           "KB_QUEUE_NAME": f"bench_{uuid.uuid4().hex[:8]}", "KB_DATABASE_URL": "",
           "KB_THREADS": "1" if one_core_each else ""}
    engine = Engine.open(Settings.from_env(env))
    command = [sys.executable, "-m", "cli.main", "worker", *(["--threads", "1"] if one_core_each else [])]
    procs = [subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              preexec_fn=_pinned(i) if one_core_each else None)
             for i in range(workers)]
    try:
        warm = [submit(engine, "files", files_for_queue([f])[0]) for f in files[:workers]]  # each worker loads its model
        _wait(engine, warm, get_job)
        after_warm = engine.store.last_chunk_id()
        rest = files[workers:]
        started = time.perf_counter()
        job_ids = [submit(engine, "files", files_for_queue(rest[i : i + FILES_PER_JOB])[0])
                   for i in range(0, len(rest), FILES_PER_JOB)]
        _wait(engine, job_ids, get_job)
        seconds = time.perf_counter() - started
    finally:
        stop_processes(*procs, timeout=60)
        engine.store.dispose()
    return seconds, data_dir, after_warm


def _wait(engine, job_ids: list[str], get_job, timeout: float = 3600) -> None:
    deadline = time.time() + timeout
    for job_id in job_ids:
        while not (view := get_job(engine, job_id)).finished:
            if time.time() > deadline:
                raise RuntimeError(f"job {job_id} did not finish")
            time.sleep(0.2)
        if view.state == "failed":
            raise RuntimeError(f"job {job_id} failed: {view.error}")


def ingest_rates(work: Path, models_dir: Path, queue_url: str, limit: int | None = None) -> dict:
    """Chunks a second through the queue: one worker on every core, one on one core, two on a core each; and a
    bare encode of the same chunks."""
    from kb.config import Settings
    from kb.embed.embedder import Embedder
    from kb.engine import stored_model_inputs
    from kb.storage.store import Store

    files = _files(limit)
    figures = {}
    runs = {"ingest_1_worker_chunks_per_s": (1, False), "ingest_1_worker_1_core_chunks_per_s": (1, True),
            "ingest_2_workers_chunks_per_s": (2, True)}
    for key, (workers, one_core_each) in runs.items():
        seconds, data_dir, after_warm = _ingest_through_queue(work, models_dir, queue_url, files, workers, one_core_each)
        store = Store(f"sqlite:///{data_dir / 'kb.sqlite3'}")
        _, texts = stored_model_inputs(store, after_warm)  # what the workers gave the model: heading line included
        store.dispose()
        if not texts:
            raise RuntimeError(f"the {workers}-worker ingest in {data_dir} added no chunks")
        figures[key] = round(len(texts) / seconds, 2)
    embedder = Embedder(Settings(models_dir=models_dir))
    embedder.encode_passages(texts[:8])  # the model opened, as the workers' was
    started = time.perf_counter()
    embedder.encode_passages(texts)
    figures["bare_encode_chunks_per_s"] = round(len(texts) / (time.perf_counter() - started), 2)
    figures["ingest_chunks"] = len(texts)
    return figures
