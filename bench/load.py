"""Load during change: concurrent API searchers against `kb serve` while `kb ingest` adds documents.

Searchers (Thai, Chinese and English queries in turn) call GET /api/v1/search
as fast as they can for the whole run; meanwhile new documents, each with a
word found nowhere else, are ingested one by one with the `kb` command, and
after each ingest a watcher searches for that word until a result shows it.
Printed: requests, errors (anything but 200, or no answer), latency
p50/p95/p99, throughput, and how long each new document took to be found
after its ingest finished. Only 127.0.0.1 is contacted; the run stops by itself.

    python bench/load.py [--seconds 180] [--searchers 30] [--workers 4] [--corpus corpus/] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from indexer.pipeline import ingest_paths  # noqa: E402
from kb.config import Settings  # noqa: E402
from kb.knowledge_base import KnowledgeBase  # noqa: E402
from kb.services import accounts  # noqa: E402

QUERIES = [
    "ลูกค้ารอสายนาน ควรแก้ไขอย่างไร", "การแบ่งปันความรู้เรื่องข้อร้องเรียน", "เราเตอร์หลุดบ่อย",
    "如何打破部门之间的壁垒", "客户投诉如何升级", "数据质量由谁负责",
    "how do we handle a silo between two business units", "who should lead a CRM change", "charged twice refund",
]
VISIBLE_WITHIN = 5.0  # seconds: the target for a new document to be found after its ingest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, token: str, timeout: float = 30.0) -> tuple[int, dict | None]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, None


def prepare(data_dir: Path, corpus: Path, models_dir: Path | None) -> str:
    """The knowledge base ingested, and an API token of a bench user."""
    kb = KnowledgeBase.open(Settings(data_dir=data_dir, models_dir=models_dir))
    try:
        if kb.stats().documents == 0:
            ingest_paths(kb.engine, [corpus], progress=False)
        try:
            accounts.add_user(kb.store, "load-bench", "admin", accounts.new_password())
        except accounts.AccountError:
            pass
        account = next(a for a in accounts.list_users(kb.store) if a.username == "load-bench")
        return accounts.create_token(kb.store, account.id, "bench/load.py")[1]
    finally:
        kb.close()


def stop_processes(*procs: subprocess.Popen, timeout: float = 30.0) -> None:
    """Ask the processes to stop (SIGTERM), all at once; kill any still running after `timeout` seconds."""
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()


def wait_ready(base: str, server: subprocess.Popen, limit: float = 300.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"kb serve stopped with {server.returncode}")
        try:
            with urllib.request.urlopen(f"{base}/readyz", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise SystemExit("kb serve did not get ready")


class Searchers:
    def __init__(self, base: str, token: str, count: int, stop: threading.Event) -> None:
        self.base, self.token, self.stop = base, token, stop
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(i,), daemon=True) for i in range(count)]

    def run(self, number: int) -> None:
        i = number
        while not self.stop.is_set():
            query = QUERIES[i % len(QUERIES)]
            i += 1
            started = time.perf_counter()
            try:
                status, _ = get(f"{self.base}/api/v1/search?{urllib.parse.urlencode({'q': query})}", self.token)
            except (OSError, ValueError) as exc:
                status, problem = 0, f"{exc.__class__.__name__}: {exc}"
            else:
                problem = "" if status == 200 else f"HTTP {status}"
            elapsed = time.perf_counter() - started
            with self.lock:
                self.latencies.append(elapsed)
                if problem:
                    self.errors.append(problem)


def add_documents(base: str, token: str, data_dir: Path, env: dict, stop: threading.Event,
                  found_after: list[float], failures: list[str]) -> None:
    """One new document at a time through `kb ingest`, then how long until a search finds it."""
    folder = Path(tempfile.mkdtemp(prefix="kb-load-docs-"))
    number = 0
    while not stop.is_set():
        number += 1
        marker = f"loadmarker{number}x{os.getpid()}"
        path = folder / f"load-{number}.md"
        path.write_text(f"# Escalation drill {number}\n\nDuring drill {marker} the duty manager calls the customer "
                        "back within one hour and logs the outcome in the case notes.\n", encoding="utf-8")
        result = subprocess.run([sys.executable, "-m", "cli.main", "ingest", str(path)], cwd=REPO, env=env,
                                capture_output=True, text=True)
        if result.returncode != 0:
            failures.append(f"ingest {path.name}: {result.stderr[-300:]}")
            continue
        done = time.perf_counter()
        while time.perf_counter() - done < 60:
            status, body = get(f"{base}/api/v1/search?{urllib.parse.urlencode({'q': marker, 'mode': 'keyword'})}",
                               token)
            if status == 200 and body and body["results"]:
                found_after.append(time.perf_counter() - done)
                break
            time.sleep(0.1)
        else:
            failures.append(f"{path.name} not found 60 s after its ingest")
    shutil.rmtree(folder, ignore_errors=True)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=180)
    parser.add_argument("--searchers", type=int, default=30)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--corpus", type=Path, default=REPO / "corpus")
    parser.add_argument("--data-dir", type=Path, help="a knowledge base to copy (default: ingest --corpus afresh)")
    parser.add_argument("--models-dir", type=Path)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="kb-load-"))
    data_dir = work / "data"
    if args.data_dir:
        shutil.copytree(args.data_dir, data_dir, ignore=shutil.ignore_patterns("*.lock"))
    started = time.perf_counter()
    token = prepare(data_dir, args.corpus, args.models_dir)
    print(f"knowledge base ready in {time.perf_counter() - started:.0f} s")

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "KB_DATA_DIR": str(data_dir), "PYTHONPATH": str(REPO)}
    if args.models_dir:
        env["KB_MODELS_DIR"] = str(args.models_dir)
    server = subprocess.Popen([sys.executable, "-m", "cli.main", "serve", "--host", "127.0.0.1", "--port", str(port),
                               "--workers", str(args.workers)], cwd=REPO, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_ready(base, server)
        stop = threading.Event()
        searchers = Searchers(base, token, args.searchers, stop)
        found_after: list[float] = []
        failures: list[str] = []
        adder = threading.Thread(target=add_documents, args=(base, token, data_dir, env, stop, found_after, failures),
                                 daemon=True)
        began = time.perf_counter()
        for thread in [*searchers.threads, adder]:
            thread.start()
        time.sleep(args.seconds)
        stop.set()
        for thread in searchers.threads:
            thread.join(timeout=60)
        adder.join(timeout=120)
        elapsed = time.perf_counter() - began
    finally:
        stop_processes(server)
        shutil.rmtree(work, ignore_errors=True)

    ms = [t * 1000 for t in searchers.latencies]
    print(f"{args.searchers} searchers, kb serve --workers {args.workers}, {elapsed:.0f} s")
    print(f"requests {len(ms)}, errors {len(searchers.errors)}, {len(ms) / elapsed:.1f} per second")
    print(f"latency ms: p50 {percentile(ms, 0.50):.0f}, p95 {percentile(ms, 0.95):.0f}, p99 {percentile(ms, 0.99):.0f}")
    if found_after:
        print(f"documents added during the run: {len(found_after)}, found after their ingest in "
              f"median {statistics.median(found_after):.2f} s, at most {max(found_after):.2f} s "
              f"(target {VISIBLE_WITHIN:.0f} s)")
    for problem in sorted(set(searchers.errors))[:10] + failures[:10]:
        print(f"problem: {problem}")
    late = [t for t in found_after if t > VISIBLE_WITHIN]
    return 1 if searchers.errors or failures or late else 0


if __name__ == "__main__":
    sys.exit(main())
