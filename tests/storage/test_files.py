"""atomic_write: readers see the old file or the new one, whole, with the mode any new file would get."""

from __future__ import annotations

import os

import pytest

from kb.storage.files import atomic_write


def test_a_written_file_gets_the_umasks_mode_and_no_temporary_file_is_left(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write(tmp_path / "index.bin", lambda fh: fh.write(b"new"))
    finally:
        os.umask(old)
    assert (tmp_path / "index.bin").read_bytes() == b"new"
    assert (tmp_path / "index.bin").stat().st_mode & 0o777 == 0o644  # other users of the node may read it
    assert os.listdir(tmp_path) == ["index.bin"]


def test_a_failed_write_keeps_the_old_file_and_removes_its_temporary_file(tmp_path):
    (tmp_path / "index.bin").write_bytes(b"old")

    def fail(fh) -> None:
        fh.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(tmp_path / "index.bin", fail)
    assert (tmp_path / "index.bin").read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["index.bin"]
