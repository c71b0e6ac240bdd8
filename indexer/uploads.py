"""Knowledge added through the portal: uploaded files and pasted text.

An uploaded file is kept under the data directory, in its uploader's own
folder (`uploads/<user name>/<folders it came from>/<name>`), and ingested like
any file given to `kb ingest`, by the same readers and pipeline, so that
uploading a changed version of a file replaces the old one and an unchanged
one is skipped. Identical names from different people or folders are
different documents. A document is only replaced by someone who may change
it, and only given a visibility its uploader may grant (see kb.access). Each
file gets its own outcome; one bad file never stops the others.
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from indexer.pipeline import ingest_paths
from indexer.readers import SUPPORTED_SUFFIXES, is_supported, read_file
from indexer.writer import add_documents, document_ids_from_file, documents_from_file
from kb.access import INTERNAL, OPERATOR, PARTNER_VISIBLE, Viewer, normalize_visibility
from kb.documents import DocumentInput
from kb.engine import Engine
from kb.errors import InvalidInput
from kb.services.accounts import ROLES
from kb.services.topics import normalize_topic

UPLOADS = "uploads"
VISIBILITY_WORDS = (INTERNAL, PARTNER_VISIBLE)
# The folder of uploads made without a user (no user name can start with "_").
OPERATOR_FOLDER = "_operator"
MAX_NAME_CHARS = 120
MAX_FOLDERS = 4  # the innermost folders of an uploaded path that are kept
# Anything but letters (any script, with their marks), digits, and a few safe marks.
_UNSAFE = re.compile(r"[^\w\u0e00-\u0e7f .()\-+]", re.UNICODE)


@dataclass
class UploadOutcome:
    name: str
    status: str  # "added", "updated", "skipped" or "failed"
    doc_ids: list[int] = field(default_factory=list)
    error: str | None = None
    forbidden: bool = False  # failed because the uploader may not do it (not because of the file)

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


def upload_path(data_dir: Path, name: str, owner: str) -> Path:
    """Where an upload is kept: the uploader's folder, then the (cleaned) folders and name it was sent with.

    "../../x.md" cannot leave the folder (it is kept as "x.md"), "/tmp/x.md" is kept as "tmp/x.md".
    """
    parts = unicodedata.normalize("NFC", name or "").replace("\\", "/").split("/")
    folders = [folder for part in parts[:-1] if (folder := _UNSAFE.sub("_", part).strip(" .")[:MAX_NAME_CHARS])]
    return Path(data_dir, UPLOADS, owner or OPERATOR_FOLDER, *folders[-MAX_FOLDERS:], safe_file_name(parts[-1]))


def split_topics(text: str | None) -> list[str]:
    """Topics typed into one field, separated by commas (Latin, Chinese or Thai-keyboard ones)."""
    return [t.strip() for t in re.split(r"[,，、]", text or "") if t.strip()]


def upload_choices(visibility: str | None, topics: list[str] | None) -> tuple[str | None, list[str]]:
    """An uploader's visibility and topics, checked and in their one spelling; InvalidInput names what is wrong.

    Visibility is `internal`, `partner`, or a list of roles ("agent,admin"); empty means what the file says.
    """
    chosen = None
    if visibility and visibility.strip():
        chosen = normalize_visibility(visibility)
        parts = chosen.split(",")
        unknown = [p for p in parts if p not in (*VISIBILITY_WORDS, *ROLES)]
        if unknown or (len(parts) > 1 and any(p in VISIBILITY_WORDS for p in parts)):
            raise InvalidInput(f"visibility {visibility!r}: use internal, partner, or roles from "
                               f"{', '.join(ROLES)} separated by commas")
    return chosen, list(dict.fromkeys(normalize_topic(t) for t in topics or [] if t and t.strip()))


def choice_refusal(
    name: str, visibility: str | None, topics: list[str] | None, uploader: Viewer
) -> tuple[UploadOutcome | None, str | None, list[str]]:
    """The uploader's visibility and topics checked (see `upload_choices`) and in their one spelling, with the
    refusal of `name` when they cannot be used (unknown: failed; not the uploader's to give: forbidden)."""
    try:
        visibility, topics = upload_choices(visibility, topics)
    except InvalidInput as exc:
        return UploadOutcome(name, "failed", error=f"{name}: {exc}"), None, []
    if visibility and not uploader.can_grant(visibility):
        return UploadOutcome(name, "failed", forbidden=True, error=not_yours_to_give(name, visibility)), None, []
    return None, visibility, topics


def ingest_upload(engine: Engine, name: str, data: bytes, uploader: Viewer = OPERATOR,
                  visibility: str | None = None, topics: list[str] | None = None) -> UploadOutcome:
    """Keep one uploaded file of `uploader` and ingest it; a file that cannot be read or may not go in is not kept.

    `visibility` and `topics` (see `upload_choices`) are the uploader's choice for every document of the file.
    """
    refused, visibility, topics = choice_refusal(name, visibility, topics, uploader)
    if refused is not None:
        return refused
    refused = upload_refusal(engine, name, data, uploader)
    if refused is not None:
        return refused
    path = upload_path(engine.settings.data_dir, name, uploader.username)
    source_file = str(path.resolve())
    path.parent.mkdir(parents=True, exist_ok=True)
    previous = path.read_bytes() if path.exists() else None
    path.write_bytes(data)
    refusal = None if visibility else _visibility_refusal(path, name, uploader)
    if refusal:
        _put_back(path, previous)
        return UploadOutcome(name, "failed", error=refusal, forbidden=True)
    report = ingest_paths(engine, [path], progress=False, owner=uploader.username, visibility=visibility,
                          added_topics=topics)
    if report.failed and not report.documents_read:
        _put_back(path, previous)
        error = "; ".join(f["error"] for f in report.failed)
        return UploadOutcome(name, "failed", error=error.replace(source_file, name))
    doc_ids = document_ids_from_file(engine, source_file)
    status = "added" if report.added else "updated" if report.updated else "skipped"
    problems = "; ".join(f["error"] for f in report.failed).replace(source_file, name) or None
    return UploadOutcome(name, status, doc_ids, problems)


def upload_refusal(engine: Engine, name: str, data: bytes, uploader: Viewer = OPERATOR) -> UploadOutcome | None:
    """Why an upload cannot go in, found without reading it (its type, emptiness, whose document it would
    replace), or None; checked again when it is ingested, and first when it is queued, to answer at once."""
    path = upload_path(engine.settings.data_dir, name, uploader.username)
    if not is_supported(path):
        supported = ", ".join(sorted(SUPPORTED_SUFFIXES))
        return UploadOutcome(name, "failed", error=f"{name}: unsupported file type (supported: {supported})")
    if not data.strip():
        return UploadOutcome(name, "failed", error=f"{name}: empty file")
    source_file = str(path.resolve())
    if not all(uploader.can_change(owner, visibility) for owner, visibility in documents_from_file(engine, source_file)):
        return UploadOutcome(name, "failed", forbidden=True,
                             error=f"{name}: a document from this file exists that you may not replace "
                                   "(only its owner or an admin may); upload it under another name")
    return None


def _put_back(path: Path, previous: bytes | None) -> None:
    """Leave the uploads folder as it was before a file that did not go in."""
    if previous is None:
        path.unlink(missing_ok=True)
    else:
        path.write_bytes(previous)


def _visibility_refusal(path: Path, name: str, uploader: Viewer) -> str | None:
    """Why the file's documents may not go in with the visibility they ask for (front matter), or None.

    Read here once before ingesting, so that nothing is stored when one of them asks too much;
    a file that cannot be read is left for the ingest to report.
    """
    try:
        docs = read_file(path).documents
    except Exception:  # noqa: BLE001 - the ingest reports it, with its reason
        return None
    for doc in docs:
        if not uploader.can_grant(doc.visibility):
            return not_yours_to_give(name, doc.visibility)
    return None


def not_yours_to_give(name: str, visibility: str) -> str:
    return (f"{name}: visibility {normalize_visibility(visibility)!r} is not yours to give; "
            "give only a visibility you can read yourself (internal, partner, or a list of roles "
            "that includes yours)")


def add_pasted_text(
    engine: Engine, text: str, title: str = "", lang: str | None = None, tags: list[str] | None = None,
    uploader: Viewer = OPERATOR, visibility: str | None = None,
) -> UploadOutcome:
    """Add text typed or pasted into the portal as a guidance document of its own."""
    title = " ".join((title or "").split())
    label = title or "pasted text"
    if not (text or "").strip():
        return UploadOutcome(label, "failed", error="the text is empty: paste or type some knowledge to add")
    refused, visibility, _topics = choice_refusal(label, visibility, None, uploader)
    if refused is not None:
        return refused
    source = f"pasted:{uuid.uuid4().hex}"
    doc = DocumentInput(source=source, source_file=source, title=title or text.strip().splitlines()[0][:120],
                        title_from_text=not title, text=text, language=lang or None, tags=list(tags or []),
                        owner=uploader.username, visibility=visibility or INTERNAL)
    outcome = add_documents(engine, [doc])[0]
    if outcome.status == "failed":
        return UploadOutcome(label, "failed", error=outcome.error)
    return UploadOutcome(label, outcome.status, [outcome.doc_id] if outcome.doc_id else [])
