"""Speed of the users' workflows on the bundled corpus, through the same functions the portal calls.

- similar cases: new complaints in Thai, Chinese and English (median and 99th percentile, model included),
  and the same as an employee (masking on) and as a partner (who sees no notes at all);
- search as a partner and as an employee against the operator (what visibility and masking cost);
- parallel passages of a ten-item collection, and its .docx and Markdown handouts;
- personal-data detection over the bundled notes (characters per millisecond).

    python bench/workflows.py [--data-dir DIR] [--models-dir DIR] [--repeat N]
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from indexer.pipeline import ingest_paths  # noqa: E402
from kb.access import OPERATOR, Viewer  # noqa: E402
from kb.config import Settings  # noqa: E402
from kb.knowledge_base import KnowledgeBase  # noqa: E402
from kb.services.cases import similar_cases  # noqa: E402
from kb.services.collections import add_item, create_collection, get_collection, parallel_passages  # noqa: E402
from kb.services.handouts import HandoutLabels, build_handout, to_docx, to_markdown  # noqa: E402
from kb.text.privacy import EMAIL, NAME, PHONE, find_personal_data  # noqa: E402

COMPLAINTS = [
    "เน็ตหลุดทุกเย็น ไฟเราเตอร์กะพริบแดง", "โดนหักค่าบริการสองครั้งในเดือนนี้", "รอสายคอลเซ็นเตอร์นานเกินชั่วโมง",
    "ช่างไม่มาติดตั้งตามนัด", "ไม่ได้รับ OTP ตอนเข้าแอป", "กล่องทีวีค้างบ่อยตอนดูหนัง",
    "路由器每天晚上都断线", "这个月被重复扣费了两次", "客服电话等了一个多小时", "安装师傅没有按时上门",
    "收不到登录验证码", "電視盒子看影片時常當機",
    "internet drops every evening, red light on the router", "I was charged twice this month",
    "waited over an hour on the phone line", "the installer never showed up", "no OTP code when logging in",
    "TV box freezes during movies", "roaming does not work abroad", "the wallet top-up failed but money was taken",
]


def timed(function, *args, **kwargs) -> tuple[float, object]:
    """Milliseconds of one call, with the query-vector cache emptied first (every query is new)."""
    KB.embedder.encode_query.cache_clear()
    KB.embedder.encode_question.cache_clear()
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return (time.perf_counter() - started) * 1000, result


KB: KnowledgeBase | None = None


def summary(times: list[float]) -> str:
    ordered = sorted(times)
    p99 = ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]
    return f"median {statistics.median(ordered):7.1f} ms   p99 {p99:7.1f} ms   ({len(ordered)} runs)"


def open_corpus(data_dir: Path | None, models_dir: Path | None) -> KnowledgeBase:
    if data_dir is None:
        data_dir = Path(tempfile.mkdtemp(prefix="kb-bench-workflows-"))
    settings = Settings(data_dir=data_dir, models_dir=models_dir)
    kb = KnowledgeBase.open(settings)
    if not kb.store.has_chunks():
        started = time.perf_counter()
        report = ingest_paths(kb.engine, [REPO / "corpus"], progress=False)
        print(f"ingested the bundled corpus: {report.added} documents in {time.perf_counter() - started:.1f} s")
    return kb


def bench_similar(kb: KnowledgeBase, repeat: int) -> None:
    print("similar cases (k=10), the portal's function, model encode included:")
    for label, viewer in (("agent", Viewer("agent")), ("employee (masked)", Viewer("employee")),
                          ("partner (no notes)", Viewer("partner"))):
        times, found = [], 0
        for _ in range(repeat):
            for text in COMPLAINTS:
                ms, results = timed(similar_cases, kb, text, 10, viewer=viewer)
                times.append(ms)
                found += bool(results)
        print(f"  {label:<20} {summary(times)}   with results: {found}/{len(times)}")


def bench_search(kb: KnowledgeBase, repeat: int) -> None:
    print("search (k=10, facets), by reader:")
    for label, viewer in (("operator", OPERATOR), ("employee", Viewer("employee")), ("partner", Viewer("partner"))):
        times = []
        for _ in range(repeat):
            for text in COMPLAINTS:
                times.append(timed(kb.search, text, 10, facets=True, viewer=viewer)[0])
        print(f"  {label:<20} {summary(times)}")


def bench_collection(kb: KnowledgeBase) -> None:
    hits = kb.search("how to share customer complaint history across business units", k=10, kind="guidance").results
    collection = create_collection(kb.engine, "Benchmark workshop", lang="en")
    for hit in hits:
        add_item(kb.engine, collection.id, hit.doc_id, hit.chunk_id)
    view = get_collection(kb.engine, collection.id)
    ms, found = timed(parallel_passages, kb, view.items)
    paired = sum(len(v) for v in found.values())
    print(f"collection of {len(view.items)} items: parallel passages {ms:.1f} ms ({paired} found)")
    labels = HandoutLabels(note="Note", source="Source", sources="Sources", document_gone="gone")
    handout = build_handout(view, document_url=lambda d: f"/documents/{d}", passage_url=lambda i: "/")
    docx_ms, data = timed(to_docx, handout, labels)
    md_ms, text = timed(to_markdown, handout, labels)
    print(f"  handout: .docx {docx_ms:.1f} ms ({len(data):,} bytes), Markdown {md_ms:.1f} ms ({len(text):,} chars)")


def bench_privacy() -> None:
    rows = list(csv.DictReader((REPO / "corpus" / "notes" / "notes-2024.csv").open(encoding="utf-8")))
    rows += [json.loads(line) for line in (REPO / "corpus" / "notes" / "notes-2025.jsonl").open(encoding="utf-8")]
    texts = [(r["complaint"] + "\n\n" + (r["resolution"] or ""),
              [(NAME, r["customer_name"]), (EMAIL, r["customer_email"]), (PHONE, r["customer_phone"])]) for r in rows]
    chars = sum(len(t) for t, _ in texts)
    best, spans = float("inf"), 0
    for _ in range(3):
        started = time.perf_counter()
        spans = sum(len(find_personal_data(t, known)) for t, known in texts)
        best = min(best, time.perf_counter() - started)
    print(f"personal data: {len(texts)} notes, {chars:,} chars, {spans} spans found in {best * 1000:.1f} ms "
          f"({chars / best / 1000:.0f} chars/ms, best of 3)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, help="a data directory holding the bundled corpus (made if empty)")
    parser.add_argument("--models-dir", type=Path)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    global KB
    kb = KB = open_corpus(args.data_dir, args.models_dir)
    try:
        kb.embedder.encode_queries(["warm up"])
        similar_cases(kb.engine, "warm up", 10)
        bench_similar(kb, args.repeat)
        bench_search(kb, args.repeat)
        bench_collection(kb)
        bench_privacy()
    finally:
        kb.close()


if __name__ == "__main__":
    main()
