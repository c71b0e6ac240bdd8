"""bench/retrieval.py and bench/answers.py run on a few XQuAD paragraphs, so the XQuAD benches never rot.

The answers bench also writes its evidence, which bench/answer_fit.py then
fits alongside our own questions: the route by which the confidence in use was set.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

sys.path.insert(0, str(REPO / "bench"))
from retrieval import LANGS, find_xquad  # noqa: E402


@pytest.fixture(scope="module")
def tiny_xquad(tmp_path_factory) -> Path:
    """The first three paragraphs of XQuAD's first article, three questions each, in every language (still parallel)."""
    source = find_xquad()
    if source is None:
        pytest.skip("XQuAD is not on this machine (shared/bench/xquad)")
    directory = tmp_path_factory.mktemp("xquad")
    for lang in LANGS:
        article = json.loads((source / f"xquad.dev.{lang}.json").read_text(encoding="utf-8"))["data"][0]
        paragraphs = [dict(p, qas=p["qas"][:3]) for p in article["paragraphs"][:3]]
        tiny = {"data": [{"title": article["title"], "paragraphs": paragraphs}]}
        (directory / f"xquad.dev.{lang}.json").write_text(json.dumps(tiny, ensure_ascii=False), encoding="utf-8")
    return directory


def run_bench(*args: str) -> list[str]:
    proc = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.splitlines()


def test_retrieval_bench_runs_on_a_few_paragraphs(tiny_xquad, models_dir):
    lines = run_bench("bench/retrieval.py", "--xquad", str(tiny_xquad), "--models-dir", str(models_dir),
                      "--skip-synthetic")
    assert any(line.startswith("built XQuAD knowledge base: 9 paragraphs") for line in lines)
    assert any(line.strip().startswith("hybrid   median") for line in lines)


def test_answers_bench_writes_evidence_that_the_fit_takes(tiny_xquad, models_dir, corpus_data_dir, tmp_path):
    evidence = tmp_path / "evidence.jsonl"
    lines = run_bench("bench/answers.py", "--xquad", str(tiny_xquad), "--models-dir", str(models_dir),
                      "--corpus-data-dir", str(corpus_data_dir), "--evidence-out", str(evidence))
    assert any(line.startswith("at MIN_CONFIDENCE") for line in lines)
    rows = [json.loads(line) for line in evidence.read_text(encoding="utf-8").splitlines()]
    # 27 questions, each asked three ways: with its paragraph, without it anywhere, without it in its own language.
    assert len(rows) == 3 * 27 and {r["pass"] for r in rows} == {"answerable", "unanswerable", "elsewhere"}
    assert all(set(r["evidence"]) >= {"coverage", "choice_gap"} for r in rows if r["evidence"])

    questions = [json.loads(line) for line in (REPO / "bench" / "realq" / "dev.jsonl").read_text(encoding="utf-8")
                 .splitlines()]
    few = [q for q in questions if q["lang"] == "en"][:4] + [q for q in questions if not q["answerable"]][:2]
    few_file = tmp_path / "few.jsonl"
    few_file.write_text("".join(json.dumps(q, ensure_ascii=False) + "\n" for q in few), encoding="utf-8")
    lines = run_bench("bench/answer_fit.py", "--data-dir", str(corpus_data_dir), "--questions", str(few_file),
                      "--xquad-evidence", str(evidence))
    assert any(line.startswith("after, XQuAD odd paragraphs: answered with the gold text en ") for line in lines)
    assert not any(line.startswith("choice:") for line in lines)  # the evidence was recorded with the choice in use
