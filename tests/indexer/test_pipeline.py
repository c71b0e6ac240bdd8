"""Which files an ingest picks up from the paths it is given, and the limits one file must keep to."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from indexer.pipeline import IngestReport, find_files, ingest_paths
from indexer.prepare import TextPreparer, TooManyChunks
from kb.config import Settings
from tests.conftest import REPO


def test_folders_are_walked_recursively_skipping_hidden_ignored_and_unsupported(tmp_path):
    (tmp_path / "a.md").write_text("a")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.txt").write_text("b")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "c.md").write_text("c")
    (tmp_path / ".hidden.md").write_text("d")
    (tmp_path / "drafts").mkdir()
    (tmp_path / "drafts" / "e.md").write_text("e")
    (tmp_path / "README.md").write_text("about this folder")
    (tmp_path / "photo.jpg").write_bytes(b"\xff\xd8")
    (tmp_path / ".kbignore").write_text("# not knowledge\nREADME.md\ndrafts/\n")
    report = IngestReport()
    found = find_files([tmp_path], report)
    assert [p.relative_to(tmp_path).as_posix() for p in found] == ["a.md", "sub/b.txt"]
    assert report.ignored == [str(tmp_path / "photo.jpg")]
    assert report.failed == []


def test_named_files_are_taken_as_given_and_missing_ones_fail(tmp_path):
    (tmp_path / "a.md").write_text("a")
    report = IngestReport()
    found = find_files([tmp_path / "a.md", tmp_path / "a.md", tmp_path / "nope.md"], report)
    assert found == [(tmp_path / "a.md").resolve()]
    assert report.failed == [{"path": str(tmp_path / "nope.md"), "error": "no such file or folder"}]


def test_a_file_past_the_size_limit_is_reported_by_name_and_the_others_go_in(make_kb, tmp_path):
    folder = tmp_path / "files"
    folder.mkdir()
    (folder / "small.md").write_text("# Refunds\n\nRefunds are paid within five working days.\n")
    (folder / "big.txt").write_text("Returns need the receipt and the box. " * 100)
    kb = make_kb(max_file_bytes=1_000)
    report = ingest_paths(kb.engine, [folder])
    assert report.added == 1
    [failure] = report.failed
    big = (folder / "big.txt").resolve().as_posix()
    assert failure["path"] == str(folder / "big.txt")
    assert failure["error"].startswith(f"{big}: the file is 3,800 bytes") and "1,000 bytes" in failure["error"]
    assert "KB_MAX_FILE_BYTES" in failure["error"]


def test_a_file_past_the_chunk_limit_is_reported_by_name_and_the_others_go_in(make_kb, tmp_path):
    folder = tmp_path / "files"
    folder.mkdir()
    (folder / "small.md").write_text("# Refunds\n\nRefunds are paid within five working days.\n")
    (folder / "long.txt").write_text("Every complaint is logged with its customer and its product. " * 400)
    kb = make_kb(max_chunks_per_file=3)
    report = ingest_paths(kb.engine, [folder])
    assert report.added == 1
    [failure] = report.failed
    long = (folder / "long.txt").resolve().as_posix()
    assert failure["error"] == (f"{long}: its text makes more than 3 chunks, the most a file may have "
                                "(KB_MAX_CHUNKS_PER_FILE); split it into smaller files or raise the limit")
    assert kb.stats().documents == 1


def test_the_chunk_limit_stops_segmenting_early(models_dir):
    seen: list[str] = []
    preparer = TextPreparer.from_settings(Settings(models_dir=models_dir, max_chunks_per_file=2))
    counter = preparer.count_tokens

    def counting(texts: list[str]) -> list[int]:
        seen.extend(texts)
        return counter(texts)

    preparer.count_tokens = counting
    text = "Every complaint is logged with its customer and its product. " * 20_000  # ~1.2 MB
    with pytest.raises(TooManyChunks):
        preparer.chunks(text)
    assert sum(len(t) for t in seen) < len(text) / 2, "the whole text was segmented before refusing it"


def test_limits_come_from_the_environment():
    settings = Settings.from_env({"KB_MAX_FILE_BYTES": "1234", "KB_MAX_CHUNKS_PER_FILE": "7"})
    assert (settings.max_file_bytes, settings.max_chunks_per_file) == (1234, 7)
    assert Settings.from_env({}).max_file_bytes == 50 * 1024 * 1024


def test_a_process_watching_its_parent_ends_when_the_parent_is_killed(tmp_path):
    """The pid watch alone (no prctl here), so it also holds where the kernel offers no parent-death signal."""
    psutil = pytest.importorskip("psutil")
    child_code = ("import os, sys, time; sys.path.insert(0, sys.argv[1]); from indexer.pipeline import watch_parent; "
                  "watch_parent(os.getppid(), every=0.1); print('watching', flush=True); time.sleep(600)")
    parent_code = ("import subprocess, sys, time; "
                   "child = subprocess.Popen([sys.executable, '-c', sys.argv[1], sys.argv[2]]); "
                   "print(child.pid, flush=True); time.sleep(600)")
    parent = subprocess.Popen([sys.executable, "-c", parent_code, child_code, str(REPO)],
                              stdout=subprocess.PIPE, text=True)
    try:
        child = psutil.Process(int(parent.stdout.readline()))
        assert parent.stdout.readline().strip() == "watching"  # the child shares its parent's stdout
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        try:
            child.wait(timeout=30)
        except psutil.TimeoutExpired:
            child.kill()
            pytest.fail("the child outlived its killed parent")
    finally:
        if parent.poll() is None:
            parent.kill()
