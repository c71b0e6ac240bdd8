"""Knowledge added through the portal: uploaded files and pasted text.

An uploaded file is kept under the data directory (`uploads/`) and ingested
like any file given to `kb ingest`, by the same readers and pipeline, so that
uploading a changed version of a file replaces the old one and an unchanged
one is skipped. Each file gets its own outcome; one bad file never stops the
others.
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from indexer.pipeline import ingest_paths
from indexer.readers import SUPPORTED_SUFFIXES, is_supported
from indexer.writer import add_documents, document_ids_from_file
from kb.documents import DocumentInput
from kb.engine import Engine

UPLOADS = "uploads"
MAX_NAME_CHARS = 120
# Anything but letters (any script, with their marks), digits, and a few safe marks.
_UNSAFE = re.compile(r"[^\w\u0e00-\u0e7f .()\-+]", re.UNICODE)


@dataclass
class UploadOutcome:
    name: str
    status: str  # "added", "updated", "skipped" or "failed"
    doc_ids: list[int] = field(default_factory=list)
    error: str | None = None

    def to_dict(self) -> dict:
        return {"name": self.name, "status": self.status, "doc_ids": self.doc_ids, "error": self.error}


def safe_file_name(name: str) -> str:
    """A file name that cannot leave the uploads folder: no folders, no leading dots, no control characters."""
    name = unicodedata.normalize("NFC", name or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = _UNSAFE.sub("_", name).strip(" .")
    stem, dot, suffix = name.rpartition(".")
    if not dot:
        stem, suffix = name, ""
    stem = stem[: MAX_NAME_CHARS - len(suffix) - 1] or "upload"
    return f"{stem}.{suffix.lower()}" if suffix else stem


def ingest_upload(engine: Engine, name: str, data: bytes) -> UploadOutcome:
    """Keep one uploaded file and ingest it; a file that cannot be read is not kept."""
    safe = safe_file_name(name)
    if not is_supported(Path(safe)):
        supported = ", ".join(sorted(SUPPORTED_SUFFIXES))
        return UploadOutcome(name, "failed", error=f"{name}: unsupported file type (supported: {supported})")
    if not data.strip():
        return UploadOutcome(name, "failed", error=f"{name}: empty file")
    folder = engine.settings.data_dir / UPLOADS
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / safe
    existed = path.exists()
    previous = path.read_bytes() if existed else None
    path.write_bytes(data)
    report = ingest_paths(engine, [path], progress=False)
    if report.failed and not report.documents_read:
        if previous is None:
            path.unlink(missing_ok=True)
        else:
            path.write_bytes(previous)
        error = "; ".join(f["error"] for f in report.failed)
        return UploadOutcome(name, "failed", error=error.replace(str(path.resolve()), name))
    doc_ids = document_ids_from_file(engine, str(path.resolve()))
    status = "added" if report.added else "updated" if report.updated else "skipped"
    problems = "; ".join(f["error"] for f in report.failed).replace(str(path.resolve()), name) or None
    return UploadOutcome(name, status, doc_ids, problems)


def add_pasted_text(
    engine: Engine, text: str, title: str = "", lang: str | None = None, tags: list[str] | None = None,
) -> UploadOutcome:
    """Add text typed or pasted into the portal as a guidance document of its own."""
    title = " ".join((title or "").split())
    label = title or "pasted text"
    if not (text or "").strip():
        return UploadOutcome(label, "failed", error="the text is empty: paste or type some knowledge to add")
    source = f"pasted:{uuid.uuid4().hex}"
    doc = DocumentInput(source=source, source_file=source, title=title or text.strip().splitlines()[0][:120],
                        title_from_text=not title, text=text, language=lang or None, tags=list(tags or []))
    outcome = add_documents(engine, [doc])[0]
    if outcome.status == "failed":
        return UploadOutcome(label, "failed", error=outcome.error)
    return UploadOutcome(label, outcome.status, [outcome.doc_id] if outcome.doc_id else [])
