"""Answer quality on XQuAD, and the no-answer threshold.

A fresh knowledge base holds all 360 XQuAD paragraphs (120 in each of English,
Thai and Chinese). Every question goes through `kb.answer.answer_question`,
the code path of `kb ask` and the portal:

- hit rate: the gold answer text is inside the returned answer (for an answer
  taken from another language, the parallel question's gold answer in that
  language), per question language, split into same- and cross-language answers;
- answer length in characters, and how often the right paragraph is cited;
- unanswerable: every question asked again with its paragraph removed in all
  three languages; a (necessarily wrong) answer given there counts against us.

Both passes are recorded at confidence 0, so the table shows every threshold.

    python bench/answers.py [--xquad DIR] [--models-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import numpy as np  # noqa: E402
from retrieval import LANGS, build_xquad_kb, find_xquad  # noqa: E402

import kb.answer as answer_module  # noqa: E402
from kb.answer import answer_question  # noqa: E402
from kb.documents import DocumentInput  # noqa: E402

THRESHOLDS = (0.0, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6)


def read_questions(directory: Path) -> tuple[list[tuple[str, int, int, str]], dict[tuple[int, int], dict[str, list[str]]]]:
    """[(language, paragraph index, question position, question)] and, by (index, position), the gold answers per language."""
    questions, golds = [], defaultdict(dict)
    for lang in LANGS:
        data = json.loads((directory / f"xquad.dev.{lang}.json").read_text(encoding="utf-8"))
        index = 0
        for article in data["data"]:
            for paragraph in article["paragraphs"]:
                for position, qa in enumerate(paragraph["qas"]):
                    questions.append((lang, index, position, qa["question"]))
                    golds[(index, position)][lang] = [a["text"] for a in qa["answers"]]
                index += 1
    return questions, golds


def ask_all(kb, questions, golds, doc_ids) -> list[dict]:
    records = []
    for lang, index, position, question in questions:
        started = time.perf_counter()
        result = answer_question(kb, question, min_confidence=0.0)
        elapsed = time.perf_counter() - started
        gold_texts = golds[(index, position)].get(result.lang or lang, [])
        text = result.answer or ""
        cited = result.citations[0].doc_id if result.citations else None
        records.append({
            "lang": lang, "answer_lang": result.lang, "confidence": result.confidence, "length": len(text),
            "hit": bool(text) and any(g and g in text for g in gold_texts),
            "right_paragraph": cited is not None and cited == doc_ids.get((result.lang or lang, index)),
            "seconds": elapsed,
        })
    return records


def ask_without_own_paragraph(kb, questions, docs_by_index) -> list[dict]:
    """Each paragraph removed in all three languages while its questions are asked, then put back."""
    by_index: dict[int, list] = defaultdict(list)
    for item in questions:
        by_index[item[1]].append(item)
    records = []
    for index, items in sorted(by_index.items()):
        docs = docs_by_index[index]
        kb.delete([d.source for d in docs])
        for lang, _, _, question in items:
            result = answer_question(kb, question, min_confidence=0.0)
            records.append({"lang": lang, "confidence": result.confidence, "answered": result.answer is not None})
        kb.add_documents(docs)
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--xquad", type=Path, default=None)
    parser.add_argument("--models-dir", type=Path, default=REPO / "data" / "models")
    args = parser.parse_args()
    xquad = args.xquad or find_xquad()
    if xquad is None:
        sys.exit("XQuAD not found: pass --xquad DIR")
    questions, golds = read_questions(xquad)
    with tempfile.TemporaryDirectory(prefix="kb-answers-") as raw_tmp:
        kb, data = build_xquad_kb(xquad, args.models_dir, Path(raw_tmp))
        doc_ids = data["doc_ids"]
        answerable = ask_all(kb, questions, golds, doc_ids)
        docs_by_index: dict[int, list[DocumentInput]] = defaultdict(list)
        for (lang, index), doc_id in doc_ids.items():
            view = kb.get_document(doc_id)
            docs_by_index[index].append(DocumentInput(
                source=view.source, source_file=view.source_file, title=view.title, text=view.text,
                language=lang, metadata=dict(view.meta or {})))
        unanswerable = ask_without_own_paragraph(kb, questions, docs_by_index)
        kb.close()

    print(f"\n{len(answerable)} questions; answers of at most {answer_module.MAX_SENTENCES} sentences")
    print(f"answer time: median {1000 * statistics.median(r['seconds'] for r in answerable):.0f} ms, "
          f"p99 {1000 * float(np.percentile([r['seconds'] for r in answerable], 99)):.0f} ms")
    print("\nat every threshold: hit rate (answer holds the gold text) per question language | "
          "wrong answers to unanswerable questions")
    print(f"{'threshold':>9}  " + "  ".join(f"{lang:>6}" for lang in LANGS) + "   all    unanswerable answered")
    for threshold in THRESHOLDS:
        rates = []
        for lang in LANGS:
            rows = [r for r in answerable if r["lang"] == lang]
            rates.append(np.mean([r["hit"] and r["confidence"] >= threshold for r in rows]))
        overall = np.mean([r["hit"] and r["confidence"] >= threshold for r in answerable])
        wrong = np.mean([r["confidence"] >= threshold for r in unanswerable])
        marker = "  <- MIN_CONFIDENCE" if abs(threshold - answer_module.MIN_CONFIDENCE) < 1e-9 else ""
        print(f"{threshold:>9.2f}  " + "  ".join(f"{v:6.3f}" for v in rates) + f"  {overall:6.3f}  {wrong:10.3f}{marker}")
    chosen = [r for r in answerable if r["confidence"] >= answer_module.MIN_CONFIDENCE]
    same = [r for r in answerable if r["answer_lang"] == r["lang"]]
    cross = [r for r in answerable if r["answer_lang"] not in (None, r["lang"])]
    print(f"\nat MIN_CONFIDENCE {answer_module.MIN_CONFIDENCE}:")
    print(f"  answers from the question's own language: {len(same)}, hit rate {np.mean([r['hit'] for r in same]):.3f}")
    if cross:
        print(f"  answers from another language: {len(cross)}, hit rate (parallel gold) "
              f"{np.mean([r['hit'] for r in cross]):.3f}")
    given = [r for r in chosen if r["length"]]
    print(f"  average answer length {np.mean([r['length'] for r in given]):.0f} characters; "
          f"right paragraph cited {np.mean([r['right_paragraph'] for r in answerable]):.3f}")


if __name__ == "__main__":
    main()
