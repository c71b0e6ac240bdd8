"""Turn files into `DocumentInput`s: guidance (.txt .md .html .pdf .docx) and customer notes (.csv .jsonl).

Every reader takes the file's bytes and returns a `ReadResult`. A file that cannot be used at
all raises `ReadError` whose message starts with the file's path and says what to do; a
notes file with some bad rows still yields its good rows, and each bad row becomes a
`ReadProblem` naming the row and the field. Readers keep the text as written: cleaning,
language detection and chunking happen later in the knowledge base.
"""

from indexer.readers.common import MAX_TITLE_CHARS
from indexer.readers.docx import DOCX_MAX_RATIO, DOCX_MAX_UNPACKED_BYTES
from indexer.readers.encodings import decode_bytes
from indexer.readers.notes import REQUIRED_NOTE_FIELDS, read_notes_rows
from indexer.readers.registry import SUPPORTED_SUFFIXES, is_supported, read_file

__all__ = [
    "DOCX_MAX_RATIO",
    "DOCX_MAX_UNPACKED_BYTES",
    "MAX_TITLE_CHARS",
    "REQUIRED_NOTE_FIELDS",
    "SUPPORTED_SUFFIXES",
    "decode_bytes",
    "is_supported",
    "read_file",
    "read_notes_rows",
]
