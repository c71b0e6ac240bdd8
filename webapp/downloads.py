"""Files the portal hands out: file names safe in any browser, and documents' original files."""

from __future__ import annotations

import re
import unicodedata
from pathlib import PurePath
from urllib.parse import quote

from flask import Response, abort

from kb.services import audit
from kb.services.originals import download_original
from webapp.auth import current_viewer, record
from webapp.current import get_kb


def content_disposition(disposition: str, name: str, fallback: str, extension: str) -> str:
    """`disposition` with an ASCII `filename` (`fallback` when little of `name` is ASCII) and the real
    (Thai, Chinese) name in RFC 5987 `filename*`."""
    cleaned = re.sub(r'[\x00-\x1f\x7f\\/:*?"<>|;]+', " ", unicodedata.normalize("NFC", name))
    cleaned = " ".join(cleaned.split()).strip(". ")[:80] or fallback
    ascii_name = re.sub(r"[^A-Za-z0-9._-]+", "-",
                        unicodedata.normalize("NFKD", cleaned).encode("ascii", "ignore").decode()).strip("-.")
    if len(re.sub(r"[^A-Za-z0-9]", "", ascii_name)) < 3:
        ascii_name = fallback
    dotted = f".{extension}" if extension else ""
    return (f'{disposition}; filename="{ascii_name}{dotted}"; '
            f"filename*=UTF-8''{quote(f'{cleaned}{dotted}', safe='')}")


def original_response(doc_id: int) -> Response:
    """The file document `doc_id` was read from, as a download (404 when there is none the reader may know of)."""
    original = download_original(get_kb().store, doc_id, current_viewer())
    if original is None:
        abort(404)
    record(audit.EXPORT, f"original of document {doc_id}", name=original.name, size=original.size)
    name = PurePath(original.name)
    response = Response(original.content, content_type=original.media_type)
    response.headers["Content-Disposition"] = content_disposition(
        "attachment", name.stem, f"document-{doc_id}", name.suffix.lstrip(".").lower())
    return response
