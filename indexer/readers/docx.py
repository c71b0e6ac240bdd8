"""Read Word .docx files: paragraphs, bullets and tables as text, after refusing zip bombs."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import docx
from docx.table import Table

from indexer.readers.common import _title_from_stem, _where
from kb.documents import DocumentInput, ReadError, ReadResult

DOCX_MAX_UNPACKED_BYTES = 100 * 1024 * 1024
# Word's XML compresses about 5-20 times; a member that expands more than this (and is
# big) is built to exhaust memory, not to be read.
DOCX_MAX_RATIO = 100
_DOCX_RATIO_CHECK_FROM = 1024 * 1024


def _read_docx(path: Path, data: bytes) -> ReadResult:
    where = _where(path)
    _refuse_docx_bomb(data, where)
    try:
        document = docx.Document(io.BytesIO(data))
    except Exception as exc:  # python-docx raises KeyError, ValueError, PackageNotFoundError...
        raise ReadError(f"{where}: not a valid .docx file ({type(exc).__name__}: {exc})") from exc
    blocks = [_docx_block_text(block) for block in document.iter_inner_content()]
    text = "\n\n".join(block for block in blocks if block.strip())
    if not text.strip():
        raise ReadError(f"{where}: no text in the document")
    doc = DocumentInput(
        source=where,
        source_file=where,
        title=_docx_title(document) or _title_from_stem(path),
        text=text,
        metadata={"format": "docx"},
    )
    return ReadResult(documents=[doc])


def _refuse_docx_bomb(data: bytes, where: str) -> None:
    """Check the zip directory before python-docx unpacks anything.

    zipfile never inflates a member past the size its directory entry declares, so
    checking the declared sizes here is enough to bound what parsing can allocate.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError) as exc:
        raise ReadError(f"{where}: not a valid .docx file (not a zip archive)") from exc
    with archive:
        members = archive.infolist()
    total = sum(member.file_size for member in members)
    if total > DOCX_MAX_UNPACKED_BYTES:
        raise ReadError(
            f"{where}: refused: the .docx would unpack to {total / 2**20:.0f} MB "
            f"(limit {DOCX_MAX_UNPACKED_BYTES // 2**20} MB); it may be a zip bomb"
        )
    for member in members:
        if member.file_size < _DOCX_RATIO_CHECK_FROM:
            continue
        ratio = member.file_size / max(member.compress_size, 1)
        if ratio > DOCX_MAX_RATIO:
            raise ReadError(
                f"{where}: refused: '{member.filename}' in the .docx expands {ratio:.0f} times "
                f"(limit {DOCX_MAX_RATIO}); it looks like a zip bomb"
            )


def _docx_block_text(block) -> str:
    """A paragraph's text (list bullets as "- "), or a table as rows of " | "-joined cells."""
    if isinstance(block, Table):
        return "\n".join(_docx_row_text(row) for row in block.rows).strip()
    text = block.text.strip()
    style = block.style.name if block.style is not None else ""
    if text and style.startswith("List Bullet"):
        return "- " + text
    return text


def _docx_row_text(row) -> str:
    cells = []
    seen = set()
    for cell in row.cells:
        if id(cell._tc) in seen:  # a merged cell is repeated once per grid column
            continue
        seen.add(id(cell._tc))
        cells.append(" ".join(cell.text.split()))
    return " | ".join(cells) if any(cells) else ""


def _docx_title(document) -> str | None:
    title = (document.core_properties.title or "").strip()
    if title:
        return title
    for paragraph in document.paragraphs:
        style = paragraph.style.name if paragraph.style is not None else ""
        if style in ("Title", "Heading 1") and paragraph.text.strip():
            return paragraph.text.strip()
    return None
