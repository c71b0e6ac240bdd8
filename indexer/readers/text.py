"""Read plain .txt files: the whole text, titled by its first short line or the file name."""

from __future__ import annotations

from pathlib import Path

from indexer.readers.common import (
    _empty_text_error,
    _first_short_line,
    _title_from_stem,
    _unify_newlines,
    _where,
)
from indexer.readers.encodings import decode_bytes
from kb.documents import DocumentInput, ReadResult


def _read_txt(path: Path, data: bytes) -> ReadResult:
    where = _where(path)
    text, encoding = decode_bytes(data, path)
    text = _unify_newlines(text)
    _empty_text_error(where, text)
    first_line = _first_short_line(text)
    doc = DocumentInput(
        source=where,
        source_file=where,
        title=first_line or _title_from_stem(path),
        text=text,
        metadata={"format": "txt", "encoding": encoding},
        title_from_text=first_line is not None,
    )
    return ReadResult(documents=[doc])
