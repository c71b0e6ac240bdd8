"""Answer quality on XQuAD, and the no-answer threshold.

A fresh knowledge base holds all 360 XQuAD paragraphs (120 in each of English,
Thai and Chinese). Every question goes through `kb.search.answer.answer_question`,
the code path of `kb ask` and the portal:

- hit rate: the gold answer text is inside the returned answer (for an answer
  taken from another language, the parallel question's gold answer in that
  language), per question language, split into same- and cross-language answers;
- answer length in characters, and how often the right paragraph is cited;
- unanswerable: every question asked again with its paragraph removed in all
  three languages; a (necessarily wrong) answer given there counts against us;
- answer time on the bundled corpus (median and 99th percentile, model encode
  included), with nothing cached and again after a restart (sentence vectors
  kept in the database), with the time spent searching and choosing sentences.

Both passes are recorded at confidence 0, so the table shows every threshold.
With --fit, the confidence weights are fitted again (logistic regression,
scikit-learn) on the evidence of every answer: answers that hold the gold text
against answers to unanswerable questions. The intercept is shifted so that 0.5
keeps wrong answers to unanswerable questions at MAX_UNANSWERED; the estimate
printed with them is cross-validated (5 folds, grouped by paragraph).

    python bench/answers.py [--xquad DIR] [--models-dir DIR] [--fit] [--corpus-data-dir DIR]
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
from retrieval import LANGS, build_xquad_kb, find_xquad, xquad_doc_ids  # noqa: E402

from indexer.pipeline import ingest_paths  # noqa: E402
from kb.config import Settings  # noqa: E402
from kb.documents import DocumentInput  # noqa: E402
from kb.knowledge_base import KnowledgeBase  # noqa: E402
from kb.search import weights  # noqa: E402
from kb.search.answer import answer_question  # noqa: E402

# Questions about the bundled corpus, in its three languages, for the answer time.
CORPUS_QUESTIONS = (
    "Who should lead change in a CRM project?", "How do we break down silos between business units?",
    "What should we do when callers wait too long on the phone?", "How do we keep customer data accurate?",
    "What is permission marketing?", "What belongs on a CRM workshop checklist?",
    "Who may see the complaint history of a customer?", "How should a company choose a CRM vendor?",
    "ใครควรเป็นผู้นำการเปลี่ยนแปลงในโครงการ CRM?", "จะทลายไซโลระหว่างหน่วยธุรกิจได้อย่างไร",
    "ข้อมูลลูกค้าที่ไม่ถูกต้องทำให้เกิดปัญหาอะไร", "การตลาดแบบได้รับอนุญาตคืออะไร",
    "ควรสื่อสารเรื่อง CRM กับพนักงานเมื่อใด", "ระบบบริหารความปลอดภัยของข้อมูลคืออะไร",
    "ปัจจัยแห่งความสำเร็จของ CRM มีอะไรบ้าง", "การแสดงบทบาทสมมติในเวิร์กช็อปช่วยอะไร",
    "如何处理客户投诉的电话等候时间过长?", "什么是许可式营销?", "如何打破战略业务单位之间的壁垒?",
    "数据质量管理包括哪些工作?", "谁应该领导CRM变革?", "如何选择CRM供应商?",
    "信息安全管理体系是什么?", "CRM成功的关键因素有哪些?",
)
THRESHOLDS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.45, 0.5, 0.55, 0.6, 0.7)
MAX_UNANSWERED = 0.28


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


def ask(kb, item, golds, doc_ids) -> dict:
    """One question answered at confidence 0, and how the answer compares with the gold."""
    lang, index, position, question = item
    started = time.perf_counter()
    result = answer_question(kb.engine, question, min_confidence=0.0)
    elapsed = time.perf_counter() - started
    gold_texts = golds[(index, position)].get(result.lang or lang, [])
    text = result.answer or ""
    cited = result.citations[0].doc_id if result.citations else None
    return {
        "lang": lang, "answer_lang": result.lang, "confidence": result.confidence, "length": len(text),
        "answered": result.answer is not None, "hit": bool(text) and any(g and g in text for g in gold_texts),
        "right_paragraph": cited is not None and cited == doc_ids.get((result.lang or lang, index)),
        "seconds": elapsed, "evidence": result.evidence, "paragraph": index,
        "cross_language": result.lang not in (None, lang),
    }


def ask_all(kb, questions, golds, doc_ids) -> list[dict]:
    return [ask(kb, item, golds, doc_ids) for item in questions]


def ask_with_paragraphs_removed(kb, questions, golds, doc_ids, docs_by_key, own_language_only: bool) -> list[dict]:
    """Each question asked with its paragraph removed, then put back: in all three languages (unanswerable),
    or in the question's language only (the answer must come from a parallel paragraph in another language)."""
    groups: dict[tuple, list] = defaultdict(list)
    for item in questions:
        groups[(item[1], item[0]) if own_language_only else (item[1],)].append(item)
    records = []
    for key, items in sorted(groups.items()):
        docs = [docs_by_key[(lang, key[0])] for lang in ((key[1],) if own_language_only else LANGS)]
        kb.delete([d.source for d in docs])
        records.extend(ask(kb, item, golds, doc_ids) for item in items)
        kb.add_documents(docs)
        kb.refresh()
        doc_ids.update(xquad_doc_ids(kb))  # put back under new ids
    return records


def corpus_answer_time(kb) -> None:
    """Median and 99th percentile answer time on the bundled corpus, and the mean of each stage, twice.

    First with nothing cached (the database's sentence vectors emptied, as on a
    knowledge base nobody has asked yet), then as a restarted worker meets the
    same questions: its own caches empty, the sentence vectors kept in the database.
    """
    from kb.storage.models import SentenceVector

    for question in CORPUS_QUESTIONS[:2]:  # load the segmenters' dictionaries, as a serving worker has
        answer_question(kb.engine, question + " ?")
    with kb.store.session() as session:
        session.query(SentenceVector).delete()
    for label in ("nothing cached", "after a restart, sentence vectors kept in the database"):
        kb.embedder.clear_caches()
        seconds, stages = [], defaultdict(float)
        for question in CORPUS_QUESTIONS:
            started = time.perf_counter()
            result = answer_question(kb.engine, question)
            seconds.append(time.perf_counter() - started)
            for stage, value in result.timings.items():
                stages[stage] += value / len(CORPUS_QUESTIONS)
        print(f"\nanswer time on the bundled corpus, {label} ({kb.stats().chunks} chunks, {len(seconds)} questions "
              f"in three languages): median {1000 * statistics.median(seconds):.0f} ms, "
              f"p99 {1000 * float(np.percentile(seconds, 99)):.0f} ms; mean per stage: "
              + ", ".join(f"{stage} {1000 * value:.1f} ms" for stage, value in stages.items()))


def fit_logistic(label: str, prefix: str, names: list[str], positives: list[dict], negatives: list[dict]) -> None:
    """Print weights (intercept shifted so that 0.5 lets MAX_UNANSWERED of the negatives through) and the
    share of positives kept at that cut, cross-validated in 5 folds grouped by paragraph."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold

    rows = positives + negatives
    x = np.asarray([[r["evidence"][n] for n in names] for r in rows])
    y = np.asarray([1] * len(positives) + [0] * len(negatives))
    groups = np.asarray([r["paragraph"] for r in rows])

    def cut_for(scores: np.ndarray) -> float:
        negative = np.sort(scores[y == 0])[::-1]
        allowed = int(MAX_UNANSWERED * len(negative))
        return float(negative[allowed]) + 1e-9 if allowed < len(negative) else float("-inf")

    held_out = np.zeros(len(y))
    for train, test in GroupKFold(5).split(x, y, groups):
        held_out[test] = LogisticRegression(max_iter=2000).fit(x[train], y[train]).decision_function(x[test])
    kept = held_out[y == 1] >= cut_for(held_out)
    model = LogisticRegression(max_iter=2000).fit(x, y)
    intercept = float(model.intercept_[0]) - cut_for(model.decision_function(x))
    coefficients = ", ".join(f'"{n}": {w:.3f}' for n, w in zip(names, model.coef_[0], strict=True))
    print(f"\n{label}: {len(positives)} right answers against {len(negatives)} wrong ones; cross-validated, "
          f"{kept.mean():.3f} of the right answers kept with {MAX_UNANSWERED:.0%} of the wrong ones")
    print(f"{prefix}_WEIGHTS = {{{coefficients}}}\n{prefix}_INTERCEPT = {intercept:.3f}")


def fit_confidence(answerable: list[dict], unanswerable: list[dict], elsewhere: list[dict]) -> None:
    """The confidence model fitted again on XQuAD's evidence, for comparison with the one fitted on our own
    questions (bench/answer_fit.py, the weights in use): right answers against answers to removed paragraphs."""
    right = [r for r in answerable + elsewhere if r["hit"]]
    wrong = [r for r in unanswerable if r["answered"]] + [r for r in elsewhere if not r["hit"]]
    fit_logistic("XQuAD", "CONFIDENCE", list(weights.CONFIDENCE_WEIGHTS), right, wrong)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--xquad", type=Path, default=None)
    parser.add_argument("--models-dir", type=Path, default=REPO / "data" / "models")
    parser.add_argument("--fit", action="store_true", help="fit the confidence weights again and print them")
    parser.add_argument("--evidence-out", type=Path, default=None,
                        help="write every answer's evidence as JSON lines (for bench/answer_fit.py --xquad-evidence)")
    parser.add_argument("--corpus-data-dir", type=Path, default=None,
                        help="a data dir holding the bundled corpus (default: ingest it into a temporary one); "
                             "its stored sentence vectors are emptied for the first timing")
    args = parser.parse_args()
    xquad = args.xquad or find_xquad()
    if xquad is None:
        sys.exit("XQuAD not found: pass --xquad DIR")
    questions, golds = read_questions(xquad)
    with tempfile.TemporaryDirectory(prefix="kb-answers-") as raw_tmp:
        kb, data = build_xquad_kb(xquad, args.models_dir, Path(raw_tmp))
        doc_ids = data["doc_ids"]
        answerable = ask_all(kb, questions, golds, doc_ids)
        docs_by_key: dict[tuple[str, int], DocumentInput] = {}
        for (lang, index), doc_id in doc_ids.items():
            view = kb.get_document(doc_id)
            docs_by_key[(lang, index)] = DocumentInput(
                source=view.source, source_file=view.source_file, title=view.title, text=view.text,
                language=lang, metadata=dict(view.meta or {}))
        unanswerable = ask_with_paragraphs_removed(kb, questions, golds, doc_ids, docs_by_key, False)
        elsewhere = ask_with_paragraphs_removed(kb, questions, golds, doc_ids, docs_by_key, True)
        corpus = KnowledgeBase.open(
            Settings(data_dir=args.corpus_data_dir or Path(raw_tmp) / "corpus", models_dir=args.models_dir),
            embedder=kb.embedder)
        if not args.corpus_data_dir:
            ingest_paths(corpus.engine, [REPO / "corpus"], progress=False)
        corpus_answer_time(corpus)
        corpus.close()
        kb.close()

    print(f"\n{len(answerable)} questions; answers of at most {weights.MAX_SENTENCES} sentences")
    print(f"answer time: median {1000 * statistics.median(r['seconds'] for r in answerable):.0f} ms, "
          f"p99 {1000 * float(np.percentile([r['seconds'] for r in answerable], 99)):.0f} ms")
    print("\nat every threshold: hit rate (answer holds the gold text) per question language, same-language "
          "paragraphs in the pool | across languages: own-language paragraph removed, parallels kept | "
          "unanswerable: paragraph removed in all three, share still answered (wrongly)")
    print(f"{'threshold':>9}  " + "  ".join(f"{lang:>6}" for lang in LANGS) + "     all   across  unanswerable")
    for threshold in THRESHOLDS:
        rates = []
        for lang in LANGS:
            rows = [r for r in answerable if r["lang"] == lang]
            rates.append(np.mean([r["hit"] and r["confidence"] >= threshold for r in rows]))
        overall = np.mean([r["hit"] and r["confidence"] >= threshold for r in answerable])
        across = np.mean([r["hit"] and r["confidence"] >= threshold for r in elsewhere])
        wrong = np.mean([r["answered"] and r["confidence"] >= threshold for r in unanswerable])
        marker = "  <- MIN_CONFIDENCE" if abs(threshold - weights.MIN_CONFIDENCE) < 1e-9 else ""
        print(f"{threshold:>9.2f}  " + "  ".join(f"{v:6.3f}" for v in rates)
              + f"  {overall:6.3f}  {across:6.3f}  {wrong:10.3f}{marker}")
    threshold = weights.MIN_CONFIDENCE
    given = [r for r in answerable if r["answered"] and r["confidence"] >= threshold]
    print(f"\nat MIN_CONFIDENCE {threshold}: {len(given)} of {len(answerable)} questions answered, "
          f"{sum(r['cross_language'] for r in given)} of them from another language; "
          f"average answer length {np.mean([r['length'] for r in given]):.0f} characters; "
          f"right paragraph cited {np.mean([r['right_paragraph'] for r in answerable]):.3f}")
    pairs = defaultdict(list)
    for r in elsewhere:
        if r["cross_language"] and r["confidence"] >= threshold:
            pairs[f"{r['lang']}>{r['answer_lang']}"].append(r["hit"])
    print("  across languages, answers given per pair (hit rate): "
          + ", ".join(f"{pair} {len(v)} ({np.mean(v):.3f})" for pair, v in sorted(pairs.items())))
    if args.evidence_out:
        write_evidence(args.evidence_out, {"answerable": answerable, "unanswerable": unanswerable,
                                           "elsewhere": elsewhere})
    if args.fit:
        fit_confidence(answerable, unanswerable, elsewhere)


def write_evidence(path: Path, passes: dict[str, list[dict]]) -> None:
    """Each answer of each pass as one JSON line: its pass, language, paragraph, evidence and whether it hit."""
    with path.open("w", encoding="utf-8") as out:
        for name, records in passes.items():
            for r in records:
                row = {"pass": name, **{k: r[k] for k in ("lang", "paragraph", "hit", "answered", "evidence",
                                                           "cross_language", "confidence")}}
                out.write(json.dumps(row) + "\n")
    print(f"evidence of {sum(map(len, passes.values()))} answers written to {path}")


if __name__ == "__main__":
    main()
