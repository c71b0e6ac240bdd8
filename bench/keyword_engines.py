"""Keyword engines side by side: our BM25 index (kb/index/keywords.py) and tantivy, on the same terms.

Issue 18 asks whether an existing engine should hold the keyword side. Both are
fed the same term lists (our Thai/Chinese/English segmentation; tantivy splits
them on spaces only) and asked the same questions, each engine in a fresh
process of its own, as a portal worker would open it:

- terms: the bundled corpus's chunks, and N synthetic chunks made from them
  (a real chunk's terms with 30% replaced by terms drawn from the corpus-wide
  distribution of the same language, so postings have a realistic shape);
- queries: the staff questions of bench/realq/dev.jsonl and the corpus's titles;
- printed per engine: build seconds, size on disk, open seconds and the fresh
  process's private and file-backed memory, top-50 p50/p99 unfiltered and
  filtered to one language (the portal's language and visibility filters).

Scores are the same formula (Lucene's BM25, k1 1.2, b 0.75). What tantivy does
not offer in place is printed as well: scoring a given list of chunk ids (the
hybrid fusion and the answer stage ask for it) and reading which query terms a
chunk holds.

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

from kb.index.keywords import KeywordIndex  # noqa: E402

TOP_K = 50
REPLACED_SHARE = 0.3
BATCH = 10_000


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


def build_ours(terms: list[list[str]], directory: Path) -> float:
    start = time.perf_counter()
    index = KeywordIndex()
    for i in range(0, len(terms), BATCH):
        index.add(range(i + 1, min(i + BATCH, len(terms)) + 1), terms[i : i + BATCH])
    index.compact()
    index.save(directory, {})
    return time.perf_counter() - start


def build_tantivy(terms: list[list[str]], langs: list[str], directory: Path) -> float:
    import tantivy

    start = time.perf_counter()
    index = tantivy.Index(tantivy_schema(), path=str(directory))
    writer = index.writer(heap_size=256_000_000, num_threads=1)
    for i, (chunk_terms, lang) in enumerate(zip(terms, langs, strict=True), start=1):
        writer.add_document(tantivy.Document(id=i, lang=lang, terms=" ".join(chunk_terms)))
    writer.commit()
    writer.wait_merging_threads()
    return time.perf_counter() - start


def tantivy_schema():
    import tantivy

    schema = tantivy.SchemaBuilder()
    schema.add_integer_field("id", stored=True, indexed=True, fast=True)
    schema.add_text_field("lang", tokenizer_name="raw")
    schema.add_text_field("terms", tokenizer_name="whitespace", index_option="freq")
    return schema.build()


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


def probe(engine: str, directory: Path, queries_file: Path, lang: str) -> dict:
    """Open one engine's index in this (fresh) process and time the queries on it."""
    queries = json.loads(queries_file.read_text())
    base_private, base_file = memory_mb()
    start = time.perf_counter()
    if engine == "ours":
        index, _ = KeywordIndex.load(directory)
        lang_ids = np.asarray(json.loads((directory / "lang_ids.json").read_text())[lang], np.int64)

        def search(terms, filtered):
            return index.search(terms, TOP_K, allowed_ids=lang_ids if filtered else None)[0]
    else:
        import tantivy

        schema = tantivy_schema()
        searcher = tantivy.Index.open(str(directory)).searcher()

        def search(terms, filtered):
            query = tantivy.Query.boolean_query(
                [(tantivy.Occur.Should, tantivy.Query.term_query(schema, "terms", t)) for t in terms])
            if filtered:  # the language only filters: it adds nothing to the score
                only = tantivy.Query.const_score_query(tantivy.Query.term_query(schema, "lang", lang), 0.0)
                query = tantivy.Query.boolean_query([(tantivy.Occur.Must, query), (tantivy.Occur.Must, only)])
            hits = searcher.search(query, TOP_K).hits
            return [searcher.doc(address)["id"][0] for _, address in hits]
    open_s = time.perf_counter() - start
    figures = {"open_s": round(open_s, 3)}
    for filtered in (False, True):
        search(queries[0], filtered)  # first-touch costs are the open's
        times, found = [], 0
        for terms in queries:
            start = time.perf_counter()
            found += len(search(terms, filtered))
            times.append(time.perf_counter() - start)
        p50, p99 = percentiles(times)
        key = "filtered" if filtered else "all"
        figures |= {f"{key}_p50_ms": round(p50, 2), f"{key}_p99_ms": round(p99, 2), f"{key}_hits": found}
    private, file_backed = memory_mb()
    return figures | {"private_mb": round(private - base_private), "file_mb": round(file_backed - base_file)}


def run_probe(engine: str, directory: Path, queries_file: Path, lang: str) -> dict:
    done = subprocess.run([sys.executable, __file__, "--probe", engine, str(directory), str(queries_file), lang],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def overlap_at_10(work: Path, queries_file: Path) -> float:
    """How far the two engines agree on the top 10 (same formula; ties and float order differ)."""
    done = subprocess.run([sys.executable, __file__, "--agree", str(work), str(queries_file)],
                          capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def agree(work: Path, queries_file: Path) -> float:
    import tantivy

    queries = json.loads(queries_file.read_text())
    ours, _ = KeywordIndex.load(work / "ours")
    schema = tantivy_schema()
    searcher = tantivy.Index.open(str(work / "tantivy")).searcher()
    shares = []
    for terms in queries:
        mine = set(ours.search(terms, 10)[0].tolist())
        should = [(tantivy.Occur.Should, tantivy.Query.term_query(schema, "terms", t)) for t in terms]
        theirs = {searcher.doc(a)["id"][0] for _, a in searcher.search(tantivy.Query.boolean_query(should), 10).hits}
        if mine or theirs:
            shares.append(len(mine & theirs) / max(len(mine), len(theirs)))
    return float(np.mean(shares))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--probe":
        print(json.dumps(probe(sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]), sys.argv[5])))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--agree":
        print(agree(Path(sys.argv[2]), Path(sys.argv[3])))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, required=True, help="synthetic chunks to index")
    parser.add_argument("--json", action="store_true", help="end with one line of JSON")
    parser.add_argument("--corpus-data-dir", type=Path, help="an ingested bundled corpus to copy instead of ingesting")
    parser.add_argument("--work-dir", type=Path, help="keep the indexes here (default: a temporary directory)")
    parser.add_argument("--models-dir", type=Path,
                        default=Path(os.environ.get("KB_MODELS_DIR") or REPO / "data" / "models"))
    args = parser.parse_args()
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="kb-keywords-"))
    try:
        figures = compare(args, work)
    finally:
        if args.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(figures))


def compare(args: argparse.Namespace, work: Path) -> dict:
    real_terms, real_langs, queries = corpus_terms(args.corpus_data_dir, work, args.models_dir)
    terms, langs = synthetic(real_terms, real_langs, args.chunks)
    del real_terms
    lang = Counter(langs).most_common(1)[0][0]
    queries_file = work / "queries.json"
    queries_file.write_text(json.dumps(queries, ensure_ascii=False))
    print(f"{len(terms):,} synthetic chunks, {sum(map(len, terms)) / len(terms):.0f} terms each; "
          f"{len(queries)} queries; filter: language {lang} ({Counter(langs)[lang] / len(langs):.0%} of chunks)")
    figures: dict = {"chunks": len(terms)}
    for engine in ("ours", "tantivy"):
        directory = work / engine
        directory.mkdir(parents=True, exist_ok=True)
        build_s = build_ours(terms, directory) if engine == "ours" else build_tantivy(terms, langs, directory)
        if engine == "ours":
            lang_ids = {lang: [i for i, x in enumerate(langs, start=1) if x == lang]}
            (directory / "lang_ids.json").write_text(json.dumps(lang_ids))
        found = run_probe(engine, directory, queries_file, lang)
        figures[engine] = {"build_s": round(build_s, 1), "disk_mb": round(disk_mb(directory), 1)} | found
        f = figures[engine]
        print(f"{engine:8} build {f['build_s']:7.1f} s  disk {f['disk_mb']:8.1f} MB  open {f['open_s']:6.2f} s  "
              f"memory private {f['private_mb']:5} MB file {f['file_mb']:5} MB  "
              f"top-{TOP_K} p50/p99 {f['all_p50_ms']:.2f}/{f['all_p99_ms']:.2f} ms, "
              f"filtered {f['filtered_p50_ms']:.2f}/{f['filtered_p99_ms']:.2f} ms")
    figures["top10_agreement"] = round(overlap_at_10(work, queries_file), 3)
    print(f"top-10 agreement between the two: {figures['top10_agreement']:.3f} (same formula; ties order differently)")
    print("tantivy lacks, in place: scores of a given list of chunk ids (fusion, answers), "
          "and which query terms a chunk holds (the relevance floor); each would be a filtered query per call")
    return figures


if __name__ == "__main__":
    main()
