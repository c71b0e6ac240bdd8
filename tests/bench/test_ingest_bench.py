"""bench/ingest.py runs, on its huge single-line Thai case made tiny, so the ingest benchmark never rots."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.conftest import REPO


def test_ingest_bench_huge_case_prints_time_chunks_and_peak_memory(models_dir):
    proc = subprocess.run([sys.executable, "bench/ingest.py", "--huge", "--huge-mb", "0.05",
                           "--models-dir", str(models_dir)], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert re.search(r"^huge file: 0\.05 MB on one line$", out, re.M), out
    assert re.search(r"^documents: 1 added, 0 failed; chunks: [1-9]\d*", out, re.M), out
    assert re.search(r"^pipeline: +[\d.]+ s", out, re.M) and re.search(r"^bare encode: +[\d.]+ s", out, re.M)
    assert re.search(r"^peak memory \(RSS\): \d+ MiB in this process, \d+ MiB in the worker", out, re.M), out
