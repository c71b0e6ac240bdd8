"""Read customer notes from CSV and JSON Lines, one document per valid row, each bad row a problem."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from indexer.readers.common import _empty_text_error, _normalise_tags, _where
from indexer.readers.encodings import decode_bytes
from kb.documents import (
    NOTE,
    NOTE_FIELDS,
    DocumentInput,
    NoteFields,
    ReadError,
    ReadProblem,
    ReadResult,
)

REQUIRED_NOTE_FIELDS = ("id", "complaint")
_TEXT_NOTE_FIELDS = (
    "customer_name",
    "customer_email",
    "customer_phone",
    "channel",
    "product",
    "complaint",
    "resolution",
    "status",
)
_TITLE_COMPLAINT_CHARS = 60


def read_notes_rows(
    rows: Iterable[dict],
    path: str,
    location_label: str = "row",
    *,
    first_number: int = 1,
    metadata: dict | None = None,
) -> ReadResult:
    """Customer notes from dicts keyed by `NOTE_FIELDS` (keys matched case-insensitively).

    Shared by the CSV and JSONL readers and by imports that map their own columns.
    Rows are numbered from `first_number` in problem locations ("row 3") and in each
    note's metadata; `metadata` (format, encoding) is added to every note. A bad row
    becomes one `ReadProblem` per fault and is skipped; every other row still goes in.
    """
    numbered = enumerate(rows, start=first_number)
    return _notes_from_numbered_rows(numbered, path, location_label, metadata or {}, [])


def _notes_from_numbered_rows(
    numbered: Iterable[tuple[int, dict]], path: str, label: str, metadata: dict, problems: list[ReadProblem]
) -> ReadResult:
    """Build notes from (number, row) pairs, appending to `problems` as it goes.

    `problems` may already hold (and keep receiving, from the iterator) problems the
    caller found while producing rows, so every problem stays in file order.
    """
    result = ReadResult(problems=problems)
    first_seen: dict[str, int] = {}
    for number, row in numbered:
        where = f"{label} {number}"
        row = {_column_name(key): value for key, value in row.items() if key is not None}
        faults: list[str] = []
        fields = _note_text_fields(row, faults)
        note_date = _note_date(row.get("date"), faults)
        tags = _note_tags(row.get("tags"), faults)
        note_id = fields["id"]
        if note_id == "":
            faults.append("field 'id' is empty: every note needs an id")
        if fields["complaint"] == "":
            faults.append("field 'complaint' is empty: nothing to index")
        if note_id and note_id in first_seen:
            faults.append(f"duplicate id {note_id} (first seen on {label} {first_seen[note_id]})")
        if faults:
            result.problems.extend(ReadProblem(path, fault, where) for fault in faults)
            continue
        first_seen[note_id] = number
        extra = {
            key: value
            for key, value in row.items()
            if key not in NOTE_FIELDS and key and value not in (None, "")
        }
        result.documents.append(
            _note_document(path, fields, note_date, tags, {**extra, **metadata, "row": number})
        )
    return result


def _column_name(name: object) -> str:
    """' Customer Name\ufeff' -> 'customer_name': header cells as people type them."""
    return re.sub(r"[\s\-]+", "_", str(name).replace("\ufeff", "").strip().lower())


def _note_text_fields(row: dict, faults: list[str]) -> dict[str, str | None]:
    """Each text field trimmed ('' when absent); None, plus a fault, when it is a list, object or boolean."""
    fields: dict[str, str | None] = {}
    for name in ("id", *_TEXT_NOTE_FIELDS):
        value = row.get(name)
        if value is None:
            fields[name] = ""
        elif isinstance(value, str):
            fields[name] = value.strip()
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            fields[name] = str(value)  # JSON ids are often numbers
        else:
            fields[name] = None
            faults.append(f"field '{name}': expected text, got {_json_type(value)}")
    return fields


def _json_type(value: object) -> str:
    names = {
        bool: "true/false",
        list: "a list",
        dict: "an object",
        str: "a string",
        int: "a number",
        float: "a number",
        type(None): "null",
    }
    return names.get(type(value), type(value).__name__)


def _note_date(value: object, faults: list[str]) -> dt.date | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    text = str(value).strip()
    try:
        return _parse_note_date(text)
    except ValueError:
        faults.append(f"field 'date': cannot read {text!r} as a date (expected YYYY-MM-DD)")
        return None


def _parse_note_date(text: str) -> dt.date:
    """YYYY-MM-DD, YYYY/MM/DD or an ISO datetime ('2024-03-05T14:30:00Z'); ValueError otherwise.

    Day-first and month-first forms (05/03/2024) are refused rather than guessed:
    both are common in our markets and a wrong guess silently misdates a case.
    """
    for pattern in ("%Y-%m-%d", "%Y/%m/%d"):
        try:
            return dt.datetime.strptime(text, pattern).date()
        except ValueError:
            pass
    if not re.match(r"\d{4}-\d{2}-\d{2}", text):
        raise ValueError(text)
    return dt.datetime.fromisoformat(text).date()


def _note_tags(value: object, faults: list[str]) -> list[str]:
    if value is None or isinstance(value, (str, list)):
        return _normalise_tags(value)
    faults.append(f"field 'tags': expected text or a list, got {_json_type(value)}")
    return []


def _note_document(
    path: str, fields: dict[str, str], note_date: dt.date | None, tags: list[str], metadata: dict
) -> DocumentInput:
    """A note's document: complaint and resolution only; personal data stays in `NoteFields`."""
    note = NoteFields(
        note_id=fields["id"],
        complaint=fields["complaint"],
        resolution=fields["resolution"],
        date=note_date,
        customer_name=fields["customer_name"],
        customer_email=fields["customer_email"],
        customer_phone=fields["customer_phone"],
        channel=fields["channel"],
        product=fields["product"],
        status=fields["status"],
    )
    text = note.complaint + (f"\n\n{note.resolution}" if note.resolution else "")
    return DocumentInput(
        source=f"{path}#{note.note_id}",
        source_file=path,
        title=_note_title(note),
        text=text,
        kind=NOTE,
        tags=tags,
        metadata=metadata,
        visibility="internal",
        note=note,
    )


def _note_title(note: NoteFields) -> str:
    """Id, product and the complaint's first line, e.g. "N-1 · Printer X: Paper jams after the…"."""
    first_line = next((line.strip() for line in note.complaint.splitlines() if line.strip()), "")
    if len(first_line) > _TITLE_COMPLAINT_CHARS:
        first_line = first_line[: _TITLE_COMPLAINT_CHARS - 1].rstrip() + "…"
    head = f"{note.note_id} · {note.product}" if note.product else note.note_id
    return f"{head}: {first_line}"


def _read_csv(path: Path, data: bytes) -> ReadResult:
    """Notes from a CSV file, numbered like a spreadsheet: the header is row 1, data starts at row 2.

    That is the number users see when they open the file in Excel or LibreOffice to
    fix it (a cell holding line breaks still counts as one row).
    """
    where = _where(path)
    text, encoding = decode_bytes(data, path)
    _empty_text_error(where, text)
    # strict: a quote left open would otherwise swallow every later row into one cell, silently.
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sniff_delimiter(text), strict=True)
    try:
        header = [_column_name(name) for name in next(reader)]
    except csv.Error as exc:
        raise ReadError(f"{where}: row 1 (the header) is not valid CSV ({csv_error_reason(exc)})") from exc
    _check_header(header, where)
    problems: list[ReadProblem] = []
    rows = csv_rows(reader, header, where, problems)
    return _notes_from_numbered_rows(rows, where, "row", {"format": "csv", "encoding": encoding}, problems)


def sniff_delimiter(text: str) -> str:
    """The most frequent of , ; and tab in the header line (quoted parts ignored)."""
    header = next((line for line in text.splitlines() if line.strip()), "")
    unquoted = re.sub(r'"[^"]*"', "", header)
    return max((",", ";", "\t"), key=unquoted.count)


def _check_header(header: list[str], where: str) -> None:
    duplicates = sorted({name for name in header if name and header.count(name) > 1})
    if duplicates:
        raise ReadError(f"{where}: column(s) appear twice in the header: {', '.join(duplicates)}")
    missing = [name for name in REQUIRED_NOTE_FIELDS if name not in header]
    if missing:
        raise ReadError(
            f"{where}: missing required column(s): {', '.join(missing)} "
            f"(expected columns: {', '.join(NOTE_FIELDS)})"
        )


def csv_rows(
    reader, header: list[str], where: str, problems: list[ReadProblem]
) -> Iterator[tuple[int, dict]]:
    """(spreadsheet row number, {column: value}) for each data row; blank rows are skipped.

    A row with more cells than the header almost always holds an unquoted comma that
    shifted every later field, so it is reported, not guessed at.
    """
    number = 1
    try:
        for number, cells in enumerate(reader, start=2):
            if not any(cell.strip() for cell in cells):
                continue
            if len(cells) > len(header) and any(cell.strip() for cell in cells[len(header) :]):
                problems.append(
                    ReadProblem(
                        where,
                        f"the row has {len(cells)} cells but the header has "
                        f"{len(header)} columns (put values containing the delimiter "
                        "in double quotes)",
                        f"row {number}",
                    )
                )
                continue
            yield number, {name: cell for name, cell in zip(header, cells, strict=False) if name}
    except csv.Error as exc:  # raised while reading the row after `number`
        raise ReadError(
            f"{where}: row {number + 1} is not valid CSV ({csv_error_reason(exc)}); "
            "nothing from this file was imported"
        ) from exc


def csv_error_reason(exc: csv.Error) -> str:
    if "unexpected end of data" in str(exc):
        return 'a double quote (") opened in this row is never closed'
    return f"{exc}; check the double quotes in this row"


def _read_jsonl(path: Path, data: bytes) -> ReadResult:
    """Notes from JSON Lines: one object per line, located by line number (1-based)."""
    where = _where(path)
    text, encoding = decode_bytes(data, path)
    _empty_text_error(where, text)
    problems: list[ReadProblem] = []
    rows = jsonl_objects(text, where, problems)
    return _notes_from_numbered_rows(rows, where, "line", {"format": "jsonl", "encoding": encoding}, problems)


def jsonl_objects(text: str, where: str, problems: list[ReadProblem]) -> Iterator[tuple[int, dict]]:
    # Split on "\n" only: JSON strings may hold U+2028, which str.splitlines() would cut.
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.strip()
        if not line:
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(
                ReadProblem(where, f"not valid JSON ({exc.msg} at column {exc.colno})", f"line {number}")
            )
            continue
        if not isinstance(value, dict):
            problems.append(
                ReadProblem(
                    where, f"expected a JSON object {{...}}, got {_json_type(value)}", f"line {number}"
                )
            )
            continue
        yield number, value
