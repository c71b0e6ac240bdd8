"""What readers hand to the knowledge base: one `DocumentInput` per document.

Readers (in `indexer/`) turn files into these; the knowledge base cleans,
segments, chunks, embeds and stores them. A customer note is a document of kind
`note` whose structured fields travel in `NoteFields`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from kb.errors import KBError

GUIDANCE = "guidance"
NOTE = "note"
KINDS = (GUIDANCE, NOTE)

NOTE_FIELDS = (
    "id", "date", "customer_name", "customer_email", "customer_phone",
    "channel", "product", "complaint", "resolution", "status", "tags",
)


@dataclass
class NoteFields:
    """The structured part of a customer note (complaint plus how it was resolved)."""

    note_id: str
    complaint: str
    resolution: str = ""
    date: dt.date | None = None
    customer_name: str = ""
    customer_email: str = ""
    customer_phone: str = ""
    channel: str = ""
    product: str = ""
    status: str = ""


@dataclass
class DocumentInput:
    """One document as read from a file, before cleaning.

    `source` identifies the document for incremental ingest: the file's absolute
    path for guidance, `path#note-id` for a note. `source_file` is the file it
    came from, so deleting a file removes every document read from it.
    With `title_from_text`, `title` is only the fallback for a text whose
    cleaned form has no short first line.
    """

    source: str
    source_file: str
    title: str
    text: str
    kind: str = GUIDANCE
    # True when the title is only the text's first line: it is taken again from
    # the cleaned text, so a boilerplate first line never becomes the title.
    title_from_text: bool = False
    tags: list[str] = field(default_factory=list)
    metadata: dict = field(default_factory=dict)
    visibility: str = "internal"
    language: str | None = None
    note: NoteFields | None = None
    owner: str = ""  # who uploaded it in the portal ("" for the operator's own ingests)


@dataclass
class ReadProblem:
    """Something wrong with part of a file (a row, a field); the rest is still read."""

    path: str
    message: str
    location: str | None = None

    def __str__(self) -> str:
        where = f"{self.path} ({self.location})" if self.location else self.path
        return f"{where}: {self.message}"


@dataclass
class ReadResult:
    documents: list[DocumentInput] = field(default_factory=list)
    problems: list[ReadProblem] = field(default_factory=list)


class ReadError(KBError):
    """A file could not be read at all; the message names the file and says why."""


PASTED_PREFIX = "pasted:"
UPLOADS_FOLDER = "/uploads/"
SHOWN_FOLDERS = 1  # folders above a file's name shown to readers ("en/breaking-silos.md")


def short_source(source: str) -> str:
    """A document's source as readers are shown it, without the server's paths.

    An upload is named as it was sent (its folders, its name); another file by
    its folder and name; a customer note by its file's name and its row id; text
    pasted into the portal by "" (the page says "pasted text").
    """
    if not source or source.startswith(PASTED_PREFIX):
        return ""
    path, hash_mark, row = source.partition("#")
    if UPLOADS_FOLDER in path:
        sent = path.rsplit(UPLOADS_FOLDER, 1)[1].split("/", 1)  # [uploader, folders and name]
        shown = sent[-1]
    else:
        shown = "/".join(path.rstrip("/").split("/")[-(SHOWN_FOLDERS + 1):])
    return shown + hash_mark + row
