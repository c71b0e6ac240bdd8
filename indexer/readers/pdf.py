"""Read PDF files: text page by page (a page that fails is a problem, not a failure), unlocking if we can."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pypdf

from indexer.readers.common import MAX_TITLE_CHARS, _first_short_line, _title_from_stem, _where
from kb.documents import DocumentInput, ReadError, ReadProblem, ReadResult

_MEANINGLESS_PDF_TITLES = {"untitled", "title", "document", "no title", "microsoft word"}


def _read_pdf(path: Path, data: bytes) -> ReadResult:
    where = _where(path)
    if b"%PDF-" not in data[:1024]:
        raise ReadError(f"{where}: not a valid PDF file (no '%PDF-' header)")
    try:
        reader = pypdf.PdfReader(io.BytesIO(data), strict=False)
    except Exception as exc:  # pypdf raises many types for broken files
        raise ReadError(f"{where}: not a valid PDF file, it may be damaged ({exc})") from exc
    _unlock_pdf(reader, where)
    problems: list[ReadProblem] = []
    pages: list[str] = []
    try:
        page_list = list(reader.pages)
    except Exception as exc:
        raise ReadError(f"{where}: not a valid PDF file, cannot read its pages ({exc})") from exc
    for number, page in enumerate(page_list, start=1):
        try:
            page_text = page.extract_text() or ""
        except Exception as exc:
            problems.append(
                ReadProblem(where, f"cannot extract text from this page ({exc})", f"page {number}")
            )
            continue
        if page_text.strip():
            pages.append(page_text.strip())
    if not pages:
        if problems:
            raise ReadError(f"{where}: could not extract text from any page ({problems[0].message})")
        raise ReadError(f"{where}: no extractable text (scanned PDF? run OCR first)")
    text = "\n\n".join(pages)
    metadata_title = _pdf_metadata_title(reader)
    first_line = None if metadata_title else _first_short_line(text)
    title = metadata_title or first_line or _title_from_stem(path)
    doc = DocumentInput(
        source=where,
        source_file=where,
        title=title,
        text=text,
        metadata={"format": "pdf", "pages": len(page_list)},
        title_from_text=first_line is not None,
    )
    return ReadResult(documents=[doc], problems=problems)


def _unlock_pdf(reader: pypdf.PdfReader, where: str) -> None:
    """Open an encrypted PDF with the empty password (many are 'protected' only against editing)."""
    if not reader.is_encrypted:
        return
    try:
        unlocked = reader.decrypt("")
    except pypdf.errors.DependencyError as exc:
        raise ReadError(
            f"{where}: encrypted PDF (AES); install the 'cryptography' package to read it"
        ) from exc
    except Exception as exc:
        raise ReadError(f"{where}: encrypted PDF, cannot decrypt it ({exc})") from exc
    if unlocked == pypdf.PasswordType.NOT_DECRYPTED:
        raise ReadError(f"{where}: encrypted PDF, cannot read without a password")


def _pdf_metadata_title(reader: pypdf.PdfReader) -> str | None:
    """The document-info /Title, unless it is a placeholder or a file name."""
    try:
        title = (reader.metadata.title if reader.metadata else None) or ""
    except Exception:
        return None
    title = " ".join(str(title).split())
    title = re.sub(r"^Microsoft (Word|PowerPoint|Excel) - ", "", title)
    if not title or title.lower() in _MEANINGLESS_PDF_TITLES or len(title) > MAX_TITLE_CHARS:
        return None
    if re.search(r"\.(docx?|pptx?|xlsx?|pdf|txt|indd|rtf|odt)$", title, re.IGNORECASE):
        return None
    return title
