"""The `kb` command line, run for real in subprocesses, and its JSON contract."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import CORPUS, REPO, run_kb

SEARCH_FIELDS = {"doc_id", "chunk_id", "title", "source", "kind", "lang", "score", "text"}


def guidance_files() -> list[Path]:
    return sorted(p for p in (CORPUS / "guidance").rglob("*") if p.is_file() and not p.name.startswith("."))


def test_second_ingest_of_the_corpus_skips_every_document(corpus_data_dir, models_dir):
    first = json.loads((corpus_data_dir / "first-ingest.json").read_text())
    proc = run_kb("ingest", str(CORPUS), "--json", data_dir=corpus_data_dir, models_dir=models_dir)
    second = json.loads(proc.stdout)
    assert second["added"] == 0 and second["updated"] == 0 and second["removed"] == 0
    assert second["skipped"] == first["added"]
    assert second["failed"] == []


def test_stats_json_has_equal_chunks_and_vectors(corpus_data_dir, models_dir):
    stats = json.loads(run_kb("stats", "--json", data_dir=corpus_data_dir, models_dir=models_dir).stdout)
    assert {"documents", "chunks", "vectors", "languages", "kinds"} <= set(stats)
    assert stats["chunks"] == stats["vectors"] > 0
    assert {"en", "th", "zh"} <= set(stats["languages"])
    assert set(stats["kinds"]) == {"guidance", "note"}
    assert stats["kinds"]["guidance"] == len(guidance_files())


def test_search_json_contract_and_filters(corpus_data_dir, models_dir):
    proc = run_kb("search", "ลูกค้ารอสายนาน", "-k", "4", "--kind", "note", "--lang", "th", "--json",
                  data_dir=corpus_data_dir, models_dir=models_dir)
    results = json.loads(proc.stdout)["results"]
    assert len(results) == 4
    for hit in results:
        assert SEARCH_FIELDS <= set(hit)
        assert hit["kind"] == "note" and hit["lang"] == "th"
    assert [r["score"] for r in results] == sorted((r["score"] for r in results), reverse=True)


def test_search_queries_file_prints_one_object_per_line_in_order(corpus_data_dir, models_dir, tmp_path):
    queries = tmp_path / "queries.txt"
    queries.write_text("data quality\n\n数据质量管理\nคุณภาพข้อมูล\n", encoding="utf-8")
    proc = run_kb("search", "--queries", str(queries), "-k", "3", "--json",
                  data_dir=corpus_data_dir, models_dir=models_dir)
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(lines) == 4
    assert len(lines[0]["results"]) == 3 and lines[1]["results"] == []
    assert lines[1]["error"]["code"] == "empty_query"
    assert all(len(line["results"]) == 3 for line in (lines[2], lines[3]))


def test_empty_query_on_the_command_line_is_a_usage_error(corpus_data_dir, models_dir):
    proc = run_kb("search", "   ", data_dir=corpus_data_dir, models_dir=models_dir, check=False)
    assert proc.returncode == 2 and "empty" in proc.stderr


THAI_QUESTIONS = {
    "breaking-silos-sbu": "ถ้าหน่วยธุรกิจสองหน่วยแข่งขันกันเองจนเกิดไซโล ผู้บริหารควรทำอย่างไร",
    "change-leadership": "ใครควรเป็นผู้นำการเปลี่ยนแปลงในโครงการ CRM?",
    "data-quality": "จะรักษาคุณภาพข้อมูลลูกค้าให้ถูกต้องและเป็นปัจจุบันได้อย่างไร",
    "information-security": "การรักษาความปลอดภัยของข้อมูลลูกค้าต้องคำนึงถึงอะไรบ้าง",
}


@pytest.mark.parametrize("topic", sorted(THAI_QUESTIONS))
def test_thai_query_finds_english_and_chinese_guidance_on_the_same_topic(corpus_kb, topic):
    hits = corpus_kb.search(THAI_QUESTIONS[topic], k=5).results
    found = [(Path(h.source).parent.name, Path(h.source).stem) for h in hits]
    assert any(lang == "en" and stem.startswith(topic) for lang, stem in found), found
    assert any(lang == "zh" and stem.startswith(topic) for lang, stem in found), found


def test_bad_files_are_reported_by_name_and_the_rest_goes_in(tmp_path, models_dir):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "good.md").write_text("---\ntitle: Good\n---\nCall-back options cut complaints about waiting.\n")
    (folder / "empty.txt").write_text("")
    (folder / "notes.csv").write_text("id,date,complaint\nN-1,2025-01-02,Bill charged twice\nN-2,2025-13-45,Late\n")
    (folder / "picture.png").write_bytes(b"\x89PNG....")
    unsupported = tmp_path / "memo.xyz"
    unsupported.write_text("hello")
    proc = run_kb("ingest", str(folder), str(unsupported), str(tmp_path / "missing.md"), "--json",
                  data_dir=tmp_path / "data", models_dir=models_dir)
    report = json.loads(proc.stdout)
    assert report["added"] == 2  # good.md and note N-1
    failed = {Path(f["path"]).name: f["error"] for f in report["failed"]}
    assert set(failed) == {"empty.txt", "notes.csv", "memo.xyz", "missing.md"}
    assert "empty" in failed["empty.txt"] and "date" in failed["notes.csv"]
    assert "unsupported" in failed["memo.xyz"]
    assert [Path(p).name for p in report["ignored"]] == ["picture.png"]


def test_exit_code_is_1_when_nothing_could_be_read(tmp_path, models_dir):
    (tmp_path / "empty.txt").write_text("")
    proc = run_kb("ingest", str(tmp_path / "empty.txt"), "--json", data_dir=tmp_path / "data",
                  models_dir=models_dir, check=False)
    assert proc.returncode == 1
    assert json.loads(proc.stdout)["failed"]


def test_delete_command_removes_a_file_and_its_vectors(tmp_path, models_dir):
    doc = tmp_path / "tip.md"
    doc.write_text("Share complaint details with every agent who serves the customer.\n")
    data = tmp_path / "data"
    run_kb("ingest", str(doc), data_dir=data, models_dir=models_dir)
    proc = run_kb("delete", str(doc), "--json", data_dir=data, models_dir=models_dir)
    assert json.loads(proc.stdout)["deleted"] == 1
    stats = json.loads(run_kb("stats", "--json", data_dir=data, models_dir=models_dir).stdout)
    assert stats["documents"] == stats["chunks"] == stats["vectors"] == 0


def _committed_documents(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
            return conn.execute("select count(*) from documents").fetchone()[0]
    except sqlite3.Error:
        return 0


def test_sigkill_midway_then_rerun_ingests_every_file_exactly_once(tmp_path, models_dir):
    data = tmp_path / "data"
    env = {**os.environ, "KB_DATA_DIR": str(data), "KB_MODELS_DIR": str(models_dir)}
    env.pop("KB_DATABASE_URL", None)
    target = CORPUS / "guidance"
    proc = subprocess.Popen([sys.executable, "-m", "cli.main", "ingest", str(target), "--json"],
                            env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 600
        while _committed_documents(data / "kb.sqlite3") == 0:
            assert proc.poll() is None, "ingest finished before it could be interrupted"
            assert time.monotonic() < deadline
            time.sleep(0.2)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    partial = _committed_documents(data / "kb.sqlite3")
    total = len(guidance_files())
    assert 0 < partial < total, "the kill must land midway"

    report = json.loads(run_kb("ingest", str(target), "--json", data_dir=data, models_dir=models_dir).stdout)
    assert report["skipped"] == partial and report["added"] == total - partial and report["failed"] == []
    stats = json.loads(run_kb("stats", "--json", data_dir=data, models_dir=models_dir).stdout)
    assert stats["documents"] == total
    assert stats["chunks"] == stats["vectors"]
    with sqlite3.connect(data / "kb.sqlite3") as conn:
        sources = [r[0] for r in conn.execute("select source from documents")]
    assert sorted(sources) == sorted(str(p.resolve()) for p in guidance_files())


@pytest.mark.parametrize("args", [["search"], ["search", "x", "--queries", "f"]])
def test_search_usage_errors(tmp_path, models_dir, args):
    proc = run_kb(*args, data_dir=tmp_path / "data", models_dir=models_dir, check=False)
    assert proc.returncode == 2


def test_sigkill_of_an_ingest_leaves_none_of_its_processes_behind(tmp_path, models_dir):
    psutil = pytest.importorskip("psutil")
    env = {**os.environ, "KB_DATA_DIR": str(tmp_path / "data"), "KB_MODELS_DIR": str(models_dir)}
    env.pop("KB_DATABASE_URL", None)
    # The guidance folder is large enough for `kb ingest` to prepare text in a worker process.
    proc = subprocess.Popen([sys.executable, "-m", "cli.main", "ingest", str(CORPUS / "guidance"), "--json"],
                            env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    parent = psutil.Process(proc.pid)
    try:
        deadline = time.monotonic() + 300
        while not any("spawn_main" in " ".join(c.cmdline()) for c in _alive(parent.children(recursive=True))):
            assert proc.poll() is None, "the ingest finished before its worker could be seen"
            assert time.monotonic() < deadline, "no worker process was started"
            time.sleep(0.1)
        tree = parent.children(recursive=True)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    deadline = time.monotonic() + 20
    while _alive(tree) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [p.cmdline() for p in _alive(tree)] == []


def _alive(processes) -> list:
    import psutil

    alive = []
    for p in processes:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                alive.append(p)
        except psutil.NoSuchProcess:
            pass
    return alive


def test_prepare_answers_embeds_every_sentence_once_so_answers_find_them_kept(tmp_path, models_dir):
    doc = tmp_path / "call-backs.md"
    doc.write_text("# Call-backs\n\nPromise a call-back only with a time. Call the customer back within two "
                   "working hours. If nobody answers, try three times before closing the case.\n")
    data = tmp_path / "data"
    run_kb("ingest", str(doc), data_dir=data, models_dir=models_dir)

    def kept() -> int:
        with sqlite3.connect(data / "kb.sqlite3") as db:
            return db.execute("SELECT COUNT(*) FROM sentence_vectors").fetchone()[0]

    assert kept() == 0
    report = json.loads(run_kb("prepare-answers", "--json", data_dir=data, models_dir=models_dir).stdout)
    assert report["sentences"] >= 3 and kept() >= 3
    before = kept()
    assert json.loads(run_kb("prepare-answers", "--json", data_dir=data, models_dir=models_dir).stdout)[
        "sentences"] == report["sentences"]
    answer = json.loads(run_kb("ask", "How soon must we call the customer back?", "--json",
                               data_dir=data, models_dir=models_dir).stdout)
    assert answer["citations"] and kept() == before  # every sentence the answer compared was ready


def test_kb_serve_loads_the_language_tools_before_the_fork_so_workers_share_them():
    """The master of `kb serve` loads jieba's and pythainlp's dictionaries and freezes them; a forked child
    segments with them without loading its own copy."""
    code = (
        "import gc, os, sys\n"
        "from cli.serve import share_language_tools\n"
        "from kb.text import analyzer\n"
        "share_language_tools()\n"
        "assert gc.get_freeze_count() > 100_000, gc.get_freeze_count()\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    loaded = analyzer._han_dictionary.cache_info().currsize, analyzer._thai_dictionary.cache_info().currsize\n"
        "    words = analyzer._han_dictionary(frozenset()).cut('客户投诉的细节')\n"
        "    os._exit(0 if loaded == (1, 1) and '客户' in words else 1)\n"
        "_, status = os.waitpid(pid, 0)\n"
        "sys.exit(os.waitstatus_to_exitcode(status))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
