"""Ingest throughput: the whole pipeline next to a bare encode of the same chunks.

Builds a fresh knowledge base from PATHs (default: the bundled corpus), then
encodes exactly the chunks the pipeline produced with a bare call of the
encoder the pipeline uses (ONNX Runtime on a CPU, sentence-transformers
elsewhere) in the same process, and prints chunks per
second for both, the pipeline's overhead, where its time went, and the peak
memory of the process and of its worker. Target: pipeline within 15% of the bare encode.

With `--huge`, the input is one generated file instead: Thai sentences from the
bundled corpus, shuffled, on a single line of `--huge-mb` megabytes (default 9,
the file that once took 7.6 GB and 12 minutes). Target: peak memory <= 1.5 GB,
time close to the bare encode of its chunks.

    python bench/ingest.py [PATH ...] [--batch-size N] [--repeat N]
    python bench/ingest.py --huge [--huge-mb 9]
"""

from __future__ import annotations

import argparse
import random
import re
import resource
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sqlalchemy import select  # noqa: E402

import indexer.pipeline as pipeline  # noqa: E402
import indexer.writer as writer  # noqa: E402
from kb.config import Settings  # noqa: E402
from kb.knowledge_base import KnowledgeBase  # noqa: E402
from kb.storage.store import Chunk  # noqa: E402


class StageTimer:
    """Wraps functions to add up the wall time spent inside them."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    def wrap(self, owner, name: str, label: str) -> None:
        original = getattr(owner, name)

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[label] += time.perf_counter() - start

        setattr(owner, name, timed)


def peak_rss_mib(who: int = resource.RUSAGE_SELF) -> float:
    """Peak resident memory of this process, or of the largest of its finished children."""
    return resource.getrusage(who).ru_maxrss / 1024


_THAI_LETTER = re.compile(r"[\u0e01-\u0e4e]")


def write_huge_thai_line(folder: Path, megabytes: float) -> Path:
    """A .txt file of `megabytes` MB holding one line: the bundled Thai guidance's phrases, shuffled."""
    phrases = [
        phrase for path in sorted((REPO / "corpus" / "guidance" / "th").glob("*.md"))
        for phrase in path.read_text(encoding="utf-8").split() if _THAI_LETTER.search(phrase)
    ]
    rng = random.Random(20)
    target = int(megabytes * 1_000_000)
    pieces, size = [], 0
    while size < target:
        rng.shuffle(phrases)
        for phrase in phrases:
            pieces.append(phrase)
            size += len(phrase.encode("utf-8")) + 1
            if size >= target:
                break
    path = folder / "huge-thai-one-line.txt"
    path.write_text(" ".join(pieces) + "\n", encoding="utf-8")
    return path


def run_once(args, settings: Settings, embedder, worker, timer: StageTimer) -> tuple[float, float, int, object]:
    """One fresh pipeline run, then a bare encode of exactly the chunks it made."""
    kb = KnowledgeBase.open(settings, embedder=embedder)
    timer.wrap(kb.engine.indexes, "refresh", "index update")
    timer.wrap(kb.engine, "save_index", "save index")
    start = time.perf_counter()
    report = pipeline.ingest_paths(kb.engine, args.paths, progress=False, worker=worker)
    pipeline_seconds = time.perf_counter() - start
    with kb.store.session() as s:
        texts = list(s.scalars(select(Chunk.text).order_by(Chunk.id)))
    kb.close()
    bare_inputs = [embedder.passage_prefix + " ".join(t.split()) for t in texts]
    start = time.perf_counter()
    if embedder.fast is not None:  # the encoder the pipeline used (ONNX Runtime on a CPU)
        embedder.fast.encode(bare_inputs)
    else:
        embedder.model.encode(bare_inputs, batch_size=embedder.batch_size, normalize_embeddings=True)
    bare_seconds = time.perf_counter() - start
    return pipeline_seconds, bare_seconds, len(texts), report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", default=[str(REPO / "corpus")])
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=3, help="runs to take the median of (default 3)")
    parser.add_argument("--models-dir", type=Path, default=REPO / "data" / "models")
    parser.add_argument("--huge", action="store_true", help="ingest one generated single-line Thai file instead")
    parser.add_argument("--huge-mb", type=float, default=9.0, help="its size in MB (default 9)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="kb-bench-") as tmp:
        if args.huge:
            huge = write_huge_thai_line(Path(tmp), args.huge_mb)
            args.paths, args.repeat = [str(huge)], 1
            print(f"huge file: {huge.stat().st_size / 1e6:.2f} MB on one line")
        base = Settings(data_dir=Path(tmp) / "setup", models_dir=args.models_dir, batch_size=args.batch_size)
        start = time.perf_counter()
        # As `kb ingest` does: the worker process starts first and warms up
        # while the model loads; neither start-up is counted below.
        worker = pipeline.IngestWorker.start(base) if pipeline.worth_a_worker(args.paths) else None
        embedder = KnowledgeBase.open(base).embedder
        if worker is not None:
            worker.wait_until_ready()
        load_seconds = time.perf_counter() - start
        embedder.encode_passages(["warm-up passage"] * 8)
        timer = StageTimer()
        timer.wrap(pipeline, "read_file", "read files")
        timer.wrap(pipeline._Planner, "submit", "triage (+ first batch prep)")
        timer.wrap(pipeline._Planner, "next_plan", "waiting for prepared text")
        timer.wrap(embedder, "encode_passages", "embed")
        timer.wrap(writer, "_write", "database write")
        runs = []
        for i in range(args.repeat):
            settings = base.with_overrides(data_dir=Path(tmp) / f"run{i}")
            runs.append(run_once(args, settings, embedder, worker, timer))
        if worker is not None:
            worker.close()

    pipeline_seconds = statistics.median(r[0] for r in runs)
    bare_seconds = statistics.median(r[1] for r in runs)
    n, report = runs[0][2], runs[0][3]
    print(f"documents: {report.added} added, {len(report.failed)} failed; chunks: {n}; runs: {len(runs)} (medians)")
    print(f"model load and worker start: {load_seconds:.1f} s (not counted below); device {embedder.device}, "
          f"batch {embedder.batch_size}, worker process: {'yes' if worker else 'no'}")
    print(f"pipeline:    {pipeline_seconds:7.2f} s  {n / pipeline_seconds:7.2f} chunks/s")
    print(f"bare encode: {bare_seconds:7.2f} s  {n / bare_seconds:7.2f} chunks/s")
    print(f"pipeline overhead vs bare encode: {100 * (pipeline_seconds / bare_seconds - 1):+.1f}% (target <= +15%)")
    print("  per run: " + ", ".join(f"{100 * (p / b - 1):+.1f}%" for p, b, _, _ in runs))
    print("pipeline time by stage (mean per run; text is prepared ahead, in a worker process):")
    for label, seconds in timer.seconds.items():
        print(f"  {label:<28} {seconds / len(runs):7.2f} s")
    print(f"peak memory (RSS): {peak_rss_mib():.0f} MiB in this process, "
          f"{peak_rss_mib(resource.RUSAGE_CHILDREN):.0f} MiB in the worker (target for --huge: <= 1536 MiB)")


if __name__ == "__main__":
    main()
