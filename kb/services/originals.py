"""The files documents were read from, kept byte for byte so that readers can download them.

An original is stored in the database when its file is ingested (uploads and
`kb ingest` alike), so every node of a cluster serves it and none depends on
another's disk. Downloading it is a stricter right than reading its documents:
one file can hold many documents (a spreadsheet of customer notes) and the
personal data that the portal masks, so the reader must be able to see every
document read from it, and personal data too when any of them holds some.
"""

from __future__ import annotations

import hashlib
import mimetypes
from dataclasses import dataclass
from pathlib import PurePath

from sqlalchemy import delete, exists, select
from sqlalchemy.exc import IntegrityError

from kb.access import Viewer, visibility_clause
from kb.documents import PASTED_PREFIX
from kb.errors import Forbidden
from kb.storage.models import Document, OriginalFile, utcnow
from kb.storage.store import Store

# Types a browser may be told; anything else is sent as plain bytes.
_MEDIA_TYPES = {".md": "text/markdown", ".csv": "text/csv", ".txt": "text/plain", ".json": "application/json",
                ".jsonl": "application/jsonl"}


@dataclass(frozen=True)
class OriginalSummary:
    """What a document page says about its original: its file name and size."""

    name: str
    size: int


@dataclass(frozen=True)
class Original(OriginalSummary):
    content: bytes

    @property
    def media_type(self) -> str:
        suffix = PurePath(self.name).suffix.lower()
        return _MEDIA_TYPES.get(suffix) or mimetypes.guess_type(self.name)[0] or "application/octet-stream"


def keep_original(store: Store, source_file: str, data: bytes) -> None:
    """Store the bytes the documents of `source_file` were read from, replacing an older version."""
    digest = hashlib.sha256(data).hexdigest()
    values = {"name": PurePath(source_file).name[:512] or "original", "content": data, "size": len(data),
              "content_hash": digest, "updated_at": utcnow()}
    for _attempt in range(2):  # another worker may store the same file at the same moment
        try:
            with store.session() as s:
                row = s.get(OriginalFile, source_file)
                if row is None:
                    s.add(OriginalFile(source_file=source_file, **values))
                elif row.content_hash != digest:
                    for key, value in values.items():
                        setattr(row, key, value)
            return
        except IntegrityError:
            continue


def drop_orphan_originals(store: Store) -> int:
    """Forget the originals no document was read from any longer (after deletes); returns how many."""
    with store.session() as s:
        orphan = ~exists().where(Document.source_file == OriginalFile.source_file)
        return int(s.execute(delete(OriginalFile).where(orphan)).rowcount or 0)


def original_summary(store: Store, source_file: str) -> OriginalSummary | None:
    """Name and size of the original of `source_file`, without its bytes, or None when none is kept."""
    if not source_file or source_file.startswith(PASTED_PREFIX):
        return None
    with store.session() as s:
        row = s.execute(select(OriginalFile.name, OriginalFile.size)
                        .where(OriginalFile.source_file == source_file)).first()
        return OriginalSummary(row.name, row.size) if row else None


def may_download(store: Store, source_file: str, viewer: Viewer) -> bool:
    """Whether `viewer` may have the whole file: every document from it is theirs to read, personal data included.

    Asked on every view of a document, which for a note is one row of a file of thousands: the database
    answers whether any of them is hidden, and the personal data is read only until the first finding.
    """
    from_file = Document.source_file == source_file
    with store.session() as s:
        if not s.scalar(select(exists().where(from_file))):
            return False
        if s.scalar(select(exists().where(from_file, ~visibility_clause(Document.visibility, viewer.role)))):
            return False
        if viewer.sees_personal_data:
            return True
        return not any(s.scalars(select(Document.personal_data).where(from_file)))


def download_original(store: Store, doc_id: int, viewer: Viewer) -> Original | None:
    """The original of document `doc_id` for `viewer`: None when there is none they could know of (no such
    document, not theirs to read, nothing kept), Forbidden when the file holds more than is theirs to see."""
    with store.session() as s:
        doc = s.execute(select(Document.source_file, Document.visibility).where(Document.id == doc_id)).first()
    if doc is None or not viewer.can_view(doc.visibility) or original_summary(store, doc.source_file) is None:
        return None
    if not may_download(store, doc.source_file, viewer):
        raise Forbidden("the original file holds documents or personal data you may not see; "
                        "read the document in the portal instead")
    with store.session() as s:
        row = s.get(OriginalFile, doc.source_file)
        return Original(row.name, row.size, bytes(row.content)) if row else None
