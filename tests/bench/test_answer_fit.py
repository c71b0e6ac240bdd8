"""bench/answer_fit.py runs on a handful of our questions, so the fit that sets the answer weights never rots."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import REPO


def test_answer_fit_fits_and_reports_both_halves(corpus_data_dir, models_dir, tmp_path):
    questions = [json.loads(line) for line in (REPO / "bench" / "realq" / "dev.jsonl").read_text(encoding="utf-8")
                 .splitlines()]
    few = [q for q in questions if q["lang"] == "en"][:4] + [q for q in questions if not q["answerable"]][:2]
    path = tmp_path / "few.jsonl"
    path.write_text("".join(json.dumps(q, ensure_ascii=False) + "\n" for q in few), encoding="utf-8")
    env = {**os.environ, "KB_MODELS_DIR": str(models_dir)}
    proc = subprocess.run([sys.executable, "bench/answer_fit.py", "--data-dir", str(corpus_data_dir),
                           "--questions", str(path)], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert any(line.startswith("after, test: answered_right") and "ece" in line for line in lines)
    assert any(line.startswith(("CONFIDENCE_WEIGHTS = {", "confidence: kept")) for line in lines)


def test_every_question_of_our_set_names_gold_text_that_its_gold_document_holds():
    import unicodedata

    def folded(text: str) -> str:
        return unicodedata.normalize("NFKC", text).casefold()

    questions = [json.loads(line) for line in (REPO / "bench" / "realq" / "dev.jsonl").read_text(encoding="utf-8")
                 .splitlines()]
    assert len({q["id"] for q in questions}) == len(questions)
    assert {q["lang"] for q in questions} == {"en", "th", "zh"} and {q["split"] for q in questions} == {"fit", "test"}
    for q in questions:
        if not q["answerable"]:
            assert q["gold_doc"] is None and q["gold_answers"] == []
            continue
        gold = folded((REPO / "corpus" / "guidance" / q["gold_doc"]).read_text(encoding="utf-8"))
        assert any(folded(answer) in gold for answer in q["gold_answers"]), q["id"]
