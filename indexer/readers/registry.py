"""Which reader handles which file suffix, and `read_file`, the one entry point that picks it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from indexer.readers.common import _read_bytes, _where
from indexer.readers.docx import _read_docx
from indexer.readers.html import _read_html
from indexer.readers.markdown import _read_markdown
from indexer.readers.notes import _read_csv, _read_jsonl
from indexer.readers.pdf import _read_pdf
from indexer.readers.text import _read_txt
from kb.documents import ReadError, ReadResult

SUPPORTED_SUFFIXES: frozenset[str] = frozenset(
    {".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx", ".csv", ".jsonl"}
)


def is_supported(path: Path) -> bool:
    """Whether `read_file` knows the file's type (by suffix, any case)."""
    return Path(path).suffix.lower() in SUPPORTED_SUFFIXES


def read_file(path: Path, max_bytes: int | None = None) -> ReadResult:
    """Read one file into documents, choosing the reader by suffix.

    Raises `ReadError` (message: "<absolute path>: <what is wrong>") when nothing in the
    file can be used: unsupported type, empty, binary, corrupt, encrypted, larger than
    `max_bytes` (checked before a byte is read), and so on.
    """
    path = Path(path)
    where = _where(path)
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        supported = ", ".join(sorted(SUPPORTED_SUFFIXES))
        raise ReadError(
            f"{where}: unsupported file type '{path.suffix or '(none)'}' (supported: {supported})"
        )
    if max_bytes is not None:
        _refuse_if_larger(path, where, max_bytes)
    data = _read_bytes(path, where)
    if not data.strip():
        raise ReadError(f"{where}: empty file")
    return reader(path, data)


def _refuse_if_larger(path: Path, where: str, max_bytes: int) -> None:
    try:
        size = path.stat().st_size
    except OSError:
        return  # reading it says what is wrong
    if size > max_bytes:
        raise ReadError(
            f"{where}: the file is {size:,} bytes, more than the {max_bytes:,} bytes a file may have "
            "(KB_MAX_FILE_BYTES); split it into smaller files or raise the limit"
        )


_READERS: dict[str, Callable[[Path, bytes], ReadResult]] = {
    ".txt": _read_txt,
    ".md": _read_markdown,
    ".markdown": _read_markdown,
    ".html": _read_html,
    ".htm": _read_html,
    ".pdf": _read_pdf,
    ".docx": _read_docx,
    ".csv": _read_csv,
    ".jsonl": _read_jsonl,
}
