"""The keyword index (kb/index/keywords.py, BM25 on tantivy) at scale, opened as a portal worker opens it.

Issue 18 asked whether an existing engine should hold the keyword side; this
bench's first version measured our own BM25 index beside tantivy on the same
terms, tantivy won on every line and the index moved onto it (docs/scaling.md,
"The keyword side"). It now measures that index:

- terms: the bundled corpus's chunks, and N synthetic chunks made from them
  (a real chunk's terms with 30% replaced by terms drawn from the corpus-wide
  distribution of the same language, so postings have a realistic shape);
- queries: the staff questions of bench/realq/dev.jsonl and the corpus's titles;
- printed: build seconds, size on disk, open seconds and the fresh process's
  private and file-backed memory, top-50 p50/p99 unfiltered and filtered to
  one language (the portal's language and visibility filters, as allowed ids);
  filters of other widths under both strategies of `KeywordIndex.search` (a
  clause per id or a term set on the id field, or a deeper unfiltered
  search), which place `SMALL_SET`; `holds` and `score_ids` of 50 ids (relevance floor,
  fusion); and one catch-up commit of 100 chunks.

    python bench/keyword_engines.py --chunks N [--json] [--corpus-data-dir DIR] [--work-dir DIR] [--models-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from kb.index import keywords  # noqa: E402
from kb.index.keywords import KeywordIndex  # noqa: E402

TOP_K = 50
REPLACED_SHARE = 0.3
BATCH = 10_000
MANIFEST = {"analyzer": "bench"}
SHARES = (0.001, 0.01, 0.05, 0.1, 0.2, 0.5)  # filter widths measured under both strategies
SWEEP_QUERIES = 100


def corpus_terms(corpus_data_dir: Path | None, work: Path,
                 models_dir: Path) -> tuple[list[list[str]], list[str], list[list[str]]]:
    """Every chunk's terms and language in the bundled corpus, and the queries' terms."""
    from bench.scale import corpus_questions, open_corpus
    from kb.search.query import clean_query, query_terms

    kb = open_corpus(work, models_dir, corpus_data_dir)
    terms, langs = [], []
    for batch in kb.store.iter_chunks():
        terms += batch.terms
        langs += batch.langs
    titles = sorted({info.title for info in kb.indexes.table.docs.values()})
    queries = [query_terms(kb.engine, clean_query(q)) for q in corpus_questions(1000) + titles]
    kb.close()
    return terms, langs, [q for q in queries if q]


def synthetic(terms: list[list[str]], langs: list[str], n: int, seed: int = 18) -> tuple[list[list[str]], list[str]]:
    """`n` term lists shaped like the real ones: a real chunk's terms, 30% swapped for same-language terms."""
    rng = random.Random(seed)
    pools: dict[str, list[str]] = {}
    for chunk_terms, lang in zip(terms, langs, strict=True):
        pools.setdefault(lang, []).extend(chunk_terms)  # frequency-weighted: common terms stay common
    out_terms, out_langs = [], []
    for _ in range(n):
        k = rng.randrange(len(terms))
        pool = pools[langs[k]]
        out_terms.append([rng.choice(pool) if rng.random() < REPLACED_SHARE else t for t in terms[k]])
        out_langs.append(langs[k])
    return out_terms, out_langs


def build(terms: list[list[str]], langs: list[str], directory: Path) -> float:
    """Seconds to build the index as a rebuild does: aside, in one commit, then switched in."""
    start = time.perf_counter()
    index = KeywordIndex.aside(directory, MANIFEST)
    with index.changes():
        for i in range(0, len(terms), BATCH):
            index.add(range(i + 1, min(i + BATCH, len(terms)) + 1), terms[i : i + BATCH], langs[i : i + BATCH])
    return time.perf_counter() - start


def disk_mb(directory: Path) -> float:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file()) / 1e6


def memory_mb() -> tuple[float, float]:
    """This process's private (anonymous) and file-backed resident memory."""
    fields = {}
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines()[1:]:
        name, value = line.split()[:2]
        fields[name.rstrip(":")] = int(value) / 1024
    return fields["Anonymous"], fields["Rss"] - fields["Anonymous"]


def percentiles(times: list[float]) -> tuple[float, float]:
    return float(np.percentile(times, 50) * 1000), float(np.percentile(times, 99) * 1000)


def timed(calls) -> tuple[list[float], list]:
    times, results = [], []
    for call in calls:
        start = time.perf_counter()
        results.append(call())
        times.append(time.perf_counter() - start)
    return times, results


def probe(directory: Path, queries_file: Path, lang_file: Path, lang: str) -> dict:
    """Open the index in this (fresh) process and time the queries on it."""
    queries = json.loads(queries_file.read_text())
    lang_ids = np.asarray(json.loads(lang_file.read_text()), np.int64)
    base_private, base_file = memory_mb()
    start = time.perf_counter()
    index = KeywordIndex.open(directory, MANIFEST)
    figures: dict = {"open_s": round(time.perf_counter() - start, 3)}
    # The portal's language filter: its chunk ids, and the language itself (one posting list to cut along);
    # and the same ids alone, as a filter on anything else that happens to select one language.
    # Memory is read after the first two, as a portal worker's searches use the index.
    runs = (("all", None, None, queries), ("filtered", lang_ids, lang, queries),
            ("ids_only", lang_ids, None, queries[:SWEEP_QUERIES]))
    for key, allowed, only, asked in runs:
        index.search(asked[0], TOP_K, allowed, only)  # first-touch costs are the open's
        times, found = timed(lambda q=q, a=allowed, o=only: index.search(q, TOP_K, a, o)[0] for q in asked)
        p50, p99 = percentiles(times)
        figures |= {f"{key}_p50_ms": round(p50, 2), f"{key}_p99_ms": round(p99, 2),
                    f"{key}_hits": int(sum(map(len, found)))}
        if key == "filtered":
            private, file_backed = memory_mb()
            figures |= {"private_mb": round(private - base_private), "file_mb": round(file_backed - base_file)}
    figures |= sweep(index, queries[:SWEEP_QUERIES])
    rng = np.random.default_rng(3)
    some = [np.sort(rng.choice(index.ids(), min(50, len(index)), replace=False)) for _ in queries[:SWEEP_QUERIES]]
    for name, call in (("holds", index.holds), ("score_ids", index.score_ids)):
        times, _ = timed(lambda q=q, ids=ids, c=call: c(q, ids) for q, ids in zip(queries, some, strict=False))
        figures[f"{name}_50_p50_ms"] = round(percentiles(times)[0], 2)
    new_ids = range(int(index.ids()[-1]) + 1, int(index.ids()[-1]) + 101)
    start = time.perf_counter()
    index.add(new_ids, [queries[i % len(queries)] for i in range(100)])
    figures["add_100_ms"] = round((time.perf_counter() - start) * 1000, 1)
    return figures


def sweep(index: KeywordIndex, queries: list[list[str]]) -> dict:
    """p50 of top-50 searches filtered to a random share of the chunks under each strategy alone; both must agree.

    In the query: `_ids_query` (a clause per id up to `SMALL_SET` ids, else a term set on the id field);
    deeper: the unfiltered search read deeper until the page is full, however deep that is.
    """
    rng = np.random.default_rng(7)
    figures: dict = {"strategies_agree": True}
    searcher, indexed = index._view.searcher, index.ids()
    for share in SHARES:
        allowed = np.sort(rng.choice(indexed, max(1, int(share * len(index))), replace=False))
        strategies = {
            "in_query": lambda q, a=allowed: keywords._top(
                searcher, keywords._restricted(keywords._terms_query(q), a, indexed), TOP_K),
            "deeper": lambda q, a=allowed: keywords._top(
                searcher, keywords._terms_query(q), TOP_K, a, len(a) / len(indexed)),
        }
        results = {}
        for strategy, search in strategies.items():
            times, found = timed(lambda q=q, s=search: s(q) for q in queries)
            figures[f"share_{share}_{strategy}_p50_ms"] = round(percentiles(times)[0], 2)
            results[strategy] = found
        same = all(np.array_equal(a[0], b[0]) and np.allclose(a[1], b[1])
                   for a, b in zip(results["in_query"], results["deeper"], strict=True))
        figures["strategies_agree"] &= same
    return figures


def run_probe(directory: Path, queries_file: Path, lang_file: Path, lang: str) -> dict:
    done = subprocess.run([sys.executable, __file__, "--probe", str(directory), str(queries_file), str(lang_file), lang],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--probe":
        print(json.dumps(probe(Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]), sys.argv[5])))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, required=True, help="synthetic chunks to index")
    parser.add_argument("--json", action="store_true", help="end with one line of JSON")
    parser.add_argument("--corpus-data-dir", type=Path, help="an ingested bundled corpus to copy instead of ingesting")
    parser.add_argument("--work-dir", type=Path, help="keep the index here (default: a temporary directory)")
    parser.add_argument("--models-dir", type=Path,
                        default=Path(os.environ.get("KB_MODELS_DIR") or REPO / "data" / "models"))
    args = parser.parse_args()
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="kb-keywords-"))
    try:
        figures = measure(args, work)
    finally:
        if args.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(figures))


def measure(args: argparse.Namespace, work: Path) -> dict:
    real_terms, real_langs, queries = corpus_terms(args.corpus_data_dir, work, args.models_dir)
    terms, langs = synthetic(real_terms, real_langs, args.chunks)
    del real_terms
    lang = Counter(langs).most_common(1)[0][0]
    queries_file, lang_file = work / "queries.json", work / "lang_ids.json"
    queries_file.write_text(json.dumps(queries, ensure_ascii=False))
    lang_file.write_text(json.dumps([i for i, x in enumerate(langs, start=1) if x == lang]))
    print(f"{len(terms):,} synthetic chunks, {sum(map(len, terms)) / len(terms):.0f} terms each; "
          f"{len(queries)} queries; filter: language {lang} ({Counter(langs)[lang] / len(langs):.0%} of chunks)")
    directory = work / "index"
    shutil.rmtree(directory, ignore_errors=True)
    build_s = build(terms, langs, directory)
    del terms
    f = {"chunks": args.chunks, "build_s": round(build_s, 1), "disk_mb": round(disk_mb(directory), 1)}
    f |= run_probe(directory, queries_file, lang_file, lang)
    print(f"build {f['build_s']:.1f} s  disk {f['disk_mb']:.1f} MB  open {f['open_s']:.3f} s  "
          f"memory private {f['private_mb']} MB file {f['file_mb']} MB  "
          f"top-{TOP_K} p50/p99 {f['all_p50_ms']:.2f}/{f['all_p99_ms']:.2f} ms, "
          f"filtered {f['filtered_p50_ms']:.2f}/{f['filtered_p99_ms']:.2f} ms "
          f"(ids alone {f['ids_only_p50_ms']:.2f}/{f['ids_only_p99_ms']:.2f} ms)")
    for share in SHARES:
        print(f"filter to {share:.1%}: p50 in the query {f[f'share_{share}_in_query_p50_ms']:.2f} ms, "
              f"deeper search {f[f'share_{share}_deeper_p50_ms']:.2f} ms")
    print(f"both strategies give the same pages: {f['strategies_agree']}; 50 ids: holds p50 "
          f"{f['holds_50_p50_ms']:.2f} ms, score_ids {f['score_ids_50_p50_ms']:.2f} ms; "
          f"a commit of 100 chunks {f['add_100_ms']:.0f} ms")
    return f


if __name__ == "__main__":
    main()
