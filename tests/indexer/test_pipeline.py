"""Which files an ingest picks up from the paths it is given."""

from __future__ import annotations

from indexer.pipeline import IngestReport, find_files


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
