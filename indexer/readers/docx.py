"""Read Word .docx files: headings, paragraphs, lists and tables as text with light markup, after refusing zip bombs."""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import docx
from docx.table import Table

from indexer.readers.common import _title_from_stem, _where
from kb.documents import DocumentInput, ReadError, ReadResult
from kb.text.structure import heading_line, table_row

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
    text = _docx_text(document)
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


_W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
_HEADING_STYLE = re.compile(r"Heading ([1-9])")
_LIST_STYLE = re.compile(r"List (Bullet|Number|Paragraph)(?: ([2-9]))?")


def _docx_text(document) -> str:
    """Blocks separated by blank lines; the items of one list and the rows of a table by one newline.

    Headings ("Heading N" styles) are marked with their level; list paragraphs
    (the "List Bullet/Number" styles, or Word's own numbering) become "- " or
    "1. " lines indented by level, numbered as Word would show them.
    """
    formats = _numbering_formats(document)
    parts: list[str] = []
    counters: dict[tuple, int] = {}
    previous_was_item = False
    for block in document.iter_inner_content():
        if isinstance(block, Table):
            text, item = "\n".join(r for r in (_docx_row_text(row) for row in block.rows) if r), False
        else:
            text, item = _docx_paragraph_text(block, formats, counters)
        if not text.strip():
            continue
        if not item:  # lists known only by style restart after other text; Word's own numbering goes on
            for key in [k for k in counters if k[0].startswith("style:")]:
                del counters[key]
        if parts:
            parts.append("\n" if item and previous_was_item else "\n\n")
        parts.append(text)
        previous_was_item = item
    return "".join(parts)


def _docx_paragraph_text(paragraph, formats: dict, counters: dict) -> tuple[str, bool]:
    """(text, whether it is a list item)."""
    text = paragraph.text.strip()
    style = paragraph.style.name if paragraph.style is not None else ""
    heading = _HEADING_STYLE.fullmatch(style)
    if text and heading:
        return heading_line(min(int(heading.group(1)), 6), text), False
    numbered = _numbering(paragraph)
    listed = _LIST_STYLE.fullmatch(style)
    if not text or (numbered is None and listed is None):
        return text, False
    style_level = int(listed.group(2) or 1) - 1 if listed else 0
    if numbered is not None:
        num_id, level = numbered
        ordered = formats.get((num_id, level), "bullet") not in ("bullet", "none")
        level = max(level, style_level)  # "List Bullet 2" is a second level whatever its numbering says
    else:
        num_id, level = f"style:{style}", style_level
        ordered = listed.group(1) == "Number"
    for key in [k for k in counters if k[0] == num_id and k[1] > level]:
        del counters[key]  # a deeper list starts again after its parent item
    counters[(num_id, level)] = counters.get((num_id, level), 0) + 1
    marker = f"{counters[(num_id, level)]}. " if ordered else "- "
    return "  " * level + marker + " ".join(text.split()), True


def _numbering(paragraph) -> tuple[str, int] | None:
    """(numbering id, level) of a paragraph in a Word list, from its own properties or its style's."""
    for holder in (paragraph._p.pPr, getattr(paragraph.style, "_element", None)):
        num_pr = getattr(getattr(holder, "pPr", holder), "numPr", None) if holder is not None else None
        if num_pr is not None and num_pr.numId is not None and num_pr.numId.val != 0:
            level = num_pr.ilvl.val if num_pr.ilvl is not None else 0
            return str(num_pr.numId.val), int(level)
    return None


def _numbering_formats(document) -> dict[tuple[str, int], str]:
    """{(numbering id, level): its number format ("decimal", "bullet", ...)}; empty when the file has none."""
    try:
        numbering = document.part.numbering_part.element
    except (KeyError, NotImplementedError, AttributeError):
        return {}
    ns = {"w": _W}
    val = f"{{{_W}}}val"
    abstract = {}
    for node in numbering.findall("w:abstractNum", ns):
        levels = {}
        for lvl in node.findall("w:lvl", ns):
            fmt = lvl.find("w:numFmt", ns)
            levels[int(lvl.get(f"{{{_W}}}ilvl") or 0)] = fmt.get(val) if fmt is not None else "decimal"
        abstract[node.get(f"{{{_W}}}abstractNumId")] = levels
    formats = {}
    for num in numbering.findall("w:num", ns):
        ref = num.find("w:abstractNumId", ns)
        levels = abstract.get(ref.get(val) if ref is not None else None, {})
        for level, fmt in levels.items():
            formats[(num.get(f"{{{_W}}}numId"), level)] = fmt
    return formats


def _docx_row_text(row) -> str:
    cells = []
    seen = set()
    for cell in row.cells:
        if id(cell._tc) in seen:  # a merged cell is repeated once per grid column
            continue
        seen.add(id(cell._tc))
        cells.append(" ".join(cell.text.split()))
    return table_row(cells) if any(cells) else ""


def _docx_title(document) -> str | None:
    title = (document.core_properties.title or "").strip()
    if title:
        return title
    for paragraph in document.paragraphs:
        style = paragraph.style.name if paragraph.style is not None else ""
        if style in ("Title", "Heading 1") and paragraph.text.strip():
            return paragraph.text.strip()
    return None
