"""Retrieval quality and latency, all three modes side by side.

Quality, on XQuAD (../shared/bench/xquad: 120 parallel paragraphs and 612
questions in each of English, Thai and Chinese): a fresh knowledge base holds
all 360 paragraphs (one document each, titled after its article), and every
question goes through `KnowledgeBase.search`, the code path of `kb search`.
(a) one pool of all 360 paragraphs, the gold being the paragraph in the
    question's language;
(b) for each pair of question and paragraph language, the search filtered to
    the paragraph language, the gold being the parallel paragraph.
Top-1 and top-5 recall and MRR@10 per mode.

Latency: median and 99th percentile per query (model encode included, no
cache) on the bundled corpus and on a synthetic knowledge base of 100,000
chunks, with the time spent in each stage.

    python bench/retrieval.py [--xquad DIR] [--skip-synthetic] [--fusion-grid] [--latency-only]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from indexer.pipeline import ingest_paths  # noqa: E402
from kb.config import Settings  # noqa: E402
from kb.documents import DocumentInput  # noqa: E402
from kb.index.chunk_table import SearchFilters  # noqa: E402
from kb.knowledge_base import KnowledgeBase  # noqa: E402
from kb.search import weights  # noqa: E402

LANGS = ("en", "th", "zh")
MODES = ("hybrid", "dense", "keyword")


def find_xquad() -> Path | None:
    for parent in REPO.parents:
        candidate = parent / "shared" / "bench" / "xquad"
        if candidate.is_dir():
            return candidate
    fallback = Path("/work/shared/bench/xquad")
    return fallback if fallback.is_dir() else None


def load_xquad(directory: Path):
    paragraphs, questions = [], []
    for lang in LANGS:
        data = json.loads((directory / f"xquad.dev.{lang}.json").read_text(encoding="utf-8"))
        index = 0
        for article in data["data"]:
            for paragraph in article["paragraphs"]:
                paragraphs.append((lang, index, article["title"], paragraph["context"]))
                for qa in paragraph["qas"]:
                    questions.append((lang, index, qa["question"], [a["text"] for a in qa["answers"]]))
                index += 1
    return paragraphs, questions


def build_xquad_kb(directory: Path, models_dir: Path, tmp: Path) -> tuple[KnowledgeBase, dict]:
    paragraphs, questions = load_xquad(directory)
    kb = KnowledgeBase.open(Settings.from_env(data_dir=tmp / "xquad", models_dir=models_dir))
    docs = [
        DocumentInput(source=f"xquad/{lang}/{index:03d}", source_file=f"xquad/{lang}.json", title=title,
                      text=context, language=lang, metadata={"xquad": index})
        for lang, index, title, context in paragraphs
    ]
    started = time.perf_counter()
    for i in range(0, len(docs), 60):
        kb.add_documents(docs[i : i + 60])
    kb.save_index()
    print(f"built XQuAD knowledge base: {len(docs)} paragraphs, {kb.stats().chunks} chunks "
          f"in {time.perf_counter() - started:.0f} s")
    return kb, {"questions": questions, "doc_ids": xquad_doc_ids(kb)}


def xquad_doc_ids(kb: KnowledgeBase) -> dict[tuple[str, int], int]:
    """(language, paragraph index) -> document id, read from the sources build_xquad_kb gives them."""
    doc_ids = {}
    for doc_id, info in kb.indexes.table.docs.items():
        _, lang, index = info.source.split("/")
        doc_ids[(lang, int(index))] = doc_id
    return doc_ids


def evaluate(kb: KnowledgeBase, data: dict, mode: str, pair_langs: bool) -> dict[str, tuple[float, float, float]]:
    """{label: (top-1 recall, top-5 recall, MRR@10)}."""
    ranks: dict[str, list[int | None]] = defaultdict(list)
    for q_lang, index, question, _ in data["questions"]:
        targets = LANGS if pair_langs else (None,)
        for p_lang in targets:
            filters = SearchFilters(lang=p_lang) if p_lang else None
            gold = data["doc_ids"][(p_lang or q_lang, index)]
            found = [r.doc_id for r in kb.search(question, k=10, mode=mode, filters=filters).results]
            label = f"{q_lang}>{p_lang}" if p_lang else q_lang
            ranks[label].append(found.index(gold) + 1 if gold in found else None)
    return {
        label: (
            float(np.mean([r == 1 for r in values])),
            float(np.mean([r is not None and r <= 5 for r in values])),
            float(np.mean([1 / r if r else 0.0 for r in values])),
        )
        for label, values in ranks.items()
    }


def print_table(title: str, results: dict[str, dict[str, tuple[float, float, float]]]) -> None:
    labels = list(next(iter(results.values())))
    print(f"\n{title}")
    print(f"{'':<8}" + "".join(f"{mode:>24}" for mode in results))
    print(f"{'':<8}" + "".join(f"{'top1  top5   MRR':>24}" for _ in results))
    for label in labels:
        row = "".join("{:>10.3f}{:>6.3f}{:>8.3f}".format(*results[mode][label]) for mode in results)
        print(f"{label:<8}{row}")


def latency(kb: KnowledgeBase, queries: list[str], mode: str) -> tuple[float, float, dict[str, float]]:
    kb.embedder.encode_query.cache_clear()
    times, stages = [], defaultdict(float)
    for query in queries:
        started = time.perf_counter()
        response = kb.search(query, k=10, mode=mode)
        times.append(time.perf_counter() - started)
        for stage, seconds in response.timings.items():
            stages[stage] += seconds
        kb.embedder.encode_query.cache_clear()
    return (statistics.median(times) * 1000, float(np.percentile(times, 99)) * 1000,
            {stage: 1000 * total / len(queries) for stage, total in stages.items()})


def print_latency(title: str, kb: KnowledgeBase, queries: list[str]) -> None:
    print(f"\n{title} ({len(queries)} queries, k=10, milliseconds)")
    for mode in MODES:
        median, p99, stages = latency(kb, queries, mode)
        parts = ", ".join(f"{stage} {ms:.1f}" for stage, ms in sorted(stages.items()))
        print(f"  {mode:<8} median {median:6.1f}  p99 {p99:6.1f}   per stage (mean): {parts}")


def build_synthetic(source: KnowledgeBase, tmp: Path, models_dir: Path, n_chunks: int,
                    timings: dict[str, float] | None = None) -> KnowledgeBase:
    """A knowledge base of `n_chunks` chunks made from the corpus: perturbed real vectors, resampled real terms.

    Its settings come from the environment (KB_VECTOR_INDEX and the like); `timings`,
    if given, receives the seconds taken to write, to rebuild the indexes and to re-open.
    """
    from sqlalchemy import insert, select

    from kb.storage.models import Chunk, Document
    from kb.storage.store import vector_to_bytes

    with source.store.session() as s:
        rows = s.execute(select(Chunk.text, Chunk.lang, Chunk.vector, Chunk.terms, Chunk.sentences)).all()
    rng = np.random.default_rng(7)
    settings = Settings.from_env(data_dir=tmp / "synthetic", models_dir=models_dir, database_url=None)
    timings = {} if timings is None else timings
    kb = KnowledgeBase.open(settings, embedder=source.embedder)
    kb.engine.record_model(source.embedder.dimension)
    per_doc = 5
    started = time.perf_counter()
    with kb.store.session() as s:
        for first in range(0, n_chunks, 20_000):
            count = min(20_000, n_chunks - first)
            docs = [{
                "source": f"synthetic/{first + i}", "source_file": f"synthetic/{(first + i) // 1000}",
                "title": f"Synthetic document {first + i}", "kind": "guidance" if i % 3 else "note",
                "lang": "en", "languages": ["en"], "is_mixed": False, "content_hash": "x",
                "visibility": "internal", "text": "", "meta": {},
            } for i in range(0, count, per_doc)]
            doc_ids = list(s.scalars(insert(Document).returning(Document.id, sort_by_parameter_order=True), docs))
            chunks = []
            for i in range(count):
                base = rows[rng.integers(len(rows))]
                vector = np.frombuffer(base.vector, dtype="<f4") + rng.normal(0, 0.02, 384).astype(np.float32)
                # A random 80-100% of the terms, at most 120, as the vector is perturbed: whole copies would make
                # each corpus chunk thousands of exact keyword ties, which distinct real passages are not.
                terms = base.terms.split()
                keep = min(120, int(rng.integers(math.ceil(0.8 * len(terms)), len(terms) + 1))) if terms else 0
                sample = rng.choice(terms, size=keep, replace=False) if terms else []
                chunks.append({
                    "document_id": doc_ids[i // per_doc], "ordinal": i % per_doc, "start": 0, "end": 0,
                    "lang": base.lang, "token_count": 200, "text": base.text,
                    "vector": vector_to_bytes(vector / np.linalg.norm(vector)), "terms": " ".join(sample),
                    "sentences": base.sentences,
                })
            s.execute(insert(Chunk), chunks)
    timings["write_s"] = time.perf_counter() - started
    print(f"\nsynthetic knowledge base: {n_chunks} chunks written in {timings['write_s']:.0f} s")
    kb.close()
    started = time.perf_counter()
    kb = KnowledgeBase.open(settings, embedder=source.embedder)
    kb.reindex()
    timings["rebuild_s"] = time.perf_counter() - started
    print(f"indexes built from the database in {timings['rebuild_s']:.1f} s "
          f"(vectors {len(kb.indexes.vectors)}, keyword chunks {len(kb.indexes.keywords)})")
    kb.close()
    started = time.perf_counter()
    kb = KnowledgeBase.open(settings, embedder=source.embedder)
    timings["open_s"] = time.perf_counter() - started
    print(f"re-opened with saved indexes in {timings['open_s']:.1f} s")
    return kb


def analyzer_speed(kb: KnowledgeBase) -> None:
    """Keyword segmentation speed on the bundled guidance, per language (best of three passes)."""
    from kb.text.cleaning import normalize_text

    print("\nkeyword analyzer on the bundled guidance (best of 3 passes)")
    for lang in LANGS:
        texts = [normalize_text(p.read_text(encoding="utf-8"))
                 for p in sorted((REPO / "corpus" / "guidance" / lang).glob("*.md"))]
        for text in texts:
            kb.analyzer.terms(text)
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            for text in texts:
                kb.analyzer.terms(text)
            best = min(best, time.perf_counter() - started)
        chars = sum(map(len, texts))
        print(f"  {lang}: {chars} characters, {1e6 * best / chars:.2f} ms per 1,000 characters")


def fusion_grid(kb: KnowledgeBase, data: dict, corpus: KnowledgeBase) -> None:
    """Hybrid top-1 for other fusion settings: the XQuAD pool and the bundled corpus's cross-language reach."""
    print("\nfusion variants (hybrid): (a) pool top-1 per language; corpus: Thai questions whose top 5 hold "
          "the topic's English and Chinese guidance")
    saved = (weights.KEYWORD_WEIGHT, weights.LEND_SHARE)
    for keyword_weight, lend_share in [(3.0, 0.5), (5.0, 0.5), (7.0, 0.5), (10.0, 0.5), (7.0, 0.0), (7.0, 1.0)]:
        weights.KEYWORD_WEIGHT, weights.LEND_SHARE = keyword_weight, lend_share
        pool = evaluate(kb, data, "hybrid", pair_langs=False)
        print(f"  keyword weight {keyword_weight:<4} lend share {lend_share}: "
              + "  ".join(f"{lang} {pool[lang][0]:.3f}" for lang in LANGS)
              + f"  corpus {corpus_cross_language(corpus)}")
    weights.KEYWORD_WEIGHT, weights.LEND_SHARE = saved


# Thai questions on topics the bundled corpus holds in all three languages (file stems).
CORPUS_THAI_QUESTIONS = {
    "breaking-silos-sbu": "ถ้าหน่วยธุรกิจสองหน่วยแข่งขันกันเองจนเกิดไซโล ผู้บริหารควรทำอย่างไร",
    "change-leadership": "ใครควรเป็นผู้นำการเปลี่ยนแปลงในโครงการ CRM?",
    "data-quality": "จะรักษาคุณภาพข้อมูลลูกค้าให้ถูกต้องและเป็นปัจจุบันได้อย่างไร",
    "information-security": "การรักษาความปลอดภัยของข้อมูลลูกค้าต้องคำนึงถึงอะไรบ้าง",
}


def corpus_cross_language(corpus: KnowledgeBase) -> str:
    found = 0
    for topic, question in CORPUS_THAI_QUESTIONS.items():
        hits = {(Path(h.source).parent.name, Path(h.source).stem.startswith(topic))
                for h in corpus.search(question, k=5).results}
        found += (("en", True) in hits) and (("zh", True) in hits)
    return f"{found}/{len(CORPUS_THAI_QUESTIONS)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--xquad", type=Path, default=None)
    parser.add_argument("--models-dir", type=Path, default=REPO / "data" / "models")
    parser.add_argument("--synthetic-chunks", type=int, default=100_000)
    parser.add_argument("--skip-synthetic", action="store_true")
    parser.add_argument("--fusion-grid", action="store_true")
    parser.add_argument("--latency-only", action="store_true", help="skip the recall tables")
    args = parser.parse_args()
    xquad = args.xquad or find_xquad()
    if xquad is None:
        sys.exit("XQuAD not found: pass --xquad DIR (the folder with xquad.dev.{en,th,zh}.json)")

    with tempfile.TemporaryDirectory(prefix="kb-retrieval-") as raw_tmp:
        tmp = Path(raw_tmp)
        kb, data = build_xquad_kb(xquad, args.models_dir, tmp)
        if not args.latency_only:
            pool = {mode: evaluate(kb, data, mode, pair_langs=False) for mode in MODES}
            print_table("(a) one pool of 360 paragraphs, gold in the question's language", pool)
            pairs = {mode: evaluate(kb, data, mode, pair_langs=True) for mode in MODES}
            print_table("(b) question language > paragraph language (search filtered to it)", pairs)
        queries = [q for _, _, q, _ in data["questions"][::9]]
        corpus = KnowledgeBase.open(Settings(data_dir=tmp / "corpus", models_dir=args.models_dir),
                                    embedder=kb.embedder)
        ingest_paths(corpus.engine, [REPO / "corpus"], progress=False)
        print(f"\nbundled corpus, Thai questions whose top 5 (hybrid) hold the topic's English and Chinese "
              f"guidance: {corpus_cross_language(corpus)}")
        if args.fusion_grid:
            fusion_grid(kb, data, corpus)
        analyzer_speed(corpus)
        print_latency(f"latency on the bundled corpus ({corpus.stats().chunks} chunks)", corpus, queries)
        if not args.skip_synthetic:
            synthetic = build_synthetic(corpus, tmp, args.models_dir, args.synthetic_chunks)
            print_latency(f"latency on the synthetic knowledge base ({args.synthetic_chunks} chunks)",
                          synthetic, queries)
            synthetic.close()
        corpus.close()
        kb.close()


if __name__ == "__main__":
    main()
