"""Importing customer notes from a CSV or JSONL file whose columns are named the exporter's way.

Three steps, so that nothing is written until the whole file is known to be good:

1. `read_table`: the file's own columns (the CSV header, or the union of the
   JSONL objects' keys) and its rows, numbered as `kb ingest` numbers them.
2. `guess_mapping`, then `check_import`: each of our note fields
   (`NOTE_FIELDS`) mapped to one of their columns, every row validated by the
   readers' own rules (`read_notes_rows`), every problem reported by row and field.
3. `import_notes`: all the notes written in one transaction
   (`KnowledgeBase.commit(atomic=True)`), or none of them.

Imported notes get the sources `<stored file>#<note id>` like `kb ingest`
gives, the stored file being `<data dir>/imports/by/<user name>/<safe file name>`
(a folder per importer, as uploads have), so importing the same file again
skips unchanged notes and updates changed ones instead of adding them twice,
and two people's files of the same name never touch each other's notes. Columns left unmapped are not stored: they may
hold personal data that nothing else would mask.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.exc import DBAPIError

from indexer import writer
from indexer.readers.encodings import decode_bytes
from indexer.readers.notes import (
    REQUIRED_NOTE_FIELDS,
    csv_error_reason,
    csv_rows,
    jsonl_objects,
    read_notes_rows,
    sniff_delimiter,
)
from indexer.uploads import safe_file_name
from kb.documents import NOTE_FIELDS, DocumentInput, ReadError, ReadProblem
from kb.engine import Engine
from kb.errors import InvalidInput

IMPORTS = "imports"
PENDING = "pending"
BY_OWNER = "by"  # imports/by/<user name>/: apart from imports/pending/, whatever a user is called
FORMATS = {".csv": "csv", ".jsonl": "jsonl"}
# Files uploaded for mapping but never imported are removed after this long.
PENDING_MAX_AGE = dt.timedelta(days=1)
_TOKEN = re.compile(r"^[0-9a-f]{32}$")

# Column names exporters use for our fields, compared after `_key` (lower case,
# separators as spaces). The first match wins; each column maps to one field.
SYNONYMS: dict[str, tuple[str, ...]] = {
    "id": ("id", "note id", "ticket id", "ticket", "ticket no", "ticket number", "case id", "case no",
           "case number", "case", "reference", "ref", "number", "no", "เลขที่", "รหัส", "编号", "編號",
           "工单号", "工單號"),
    "date": ("date", "created", "created at", "created on", "opened", "opened at", "opened on", "date opened",
             "reported", "reported at", "received", "timestamp", "วันที่", "日期"),
    "customer_name": ("customer name", "customer", "client name", "client", "contact name", "full name",
                      "name", "ชื่อลูกค้า", "ชื่อ", "客户姓名", "客戶姓名", "姓名"),
    "customer_email": ("customer email", "email", "e mail", "email address", "mail", "contact email",
                       "อีเมล", "邮箱", "電子郵件", "郵箱"),
    "customer_phone": ("customer phone", "phone", "phone number", "telephone", "tel", "mobile", "mobile number",
                       "contact number", "เบอร์โทร", "โทรศัพท์", "电话", "電話", "手机", "手機"),
    "channel": ("channel", "contact channel", "source", "via", "medium", "ช่องทาง", "渠道", "管道"),
    "product": ("product", "product name", "service", "plan", "item", "สินค้า", "ผลิตภัณฑ์", "产品", "產品"),
    "complaint": ("complaint", "complaint text", "customer complaint", "description", "issue", "problem",
                  "details", "message", "text", "body", "comment", "ปัญหา", "ข้อร้องเรียน", "เรื่องร้องเรียน",
                  "ร้องเรียน", "รายละเอียด", "投诉", "投訴", "投诉内容", "投訴內容", "客户投诉", "客戶投訴", "问题",
                  "問題", "描述"),
    "resolution": ("resolution", "solution", "resolution notes", "fix", "action", "action taken", "actions",
                   "what we did", "steps taken", "ผลการแก้ไข", "วิธีแก้ไข",
                   "outcome", "answer", "response", "การแก้ไข", "วิธีแก้", "解决方案", "解決方案", "处理结果",
                   "處理結果"),
    "status": ("status", "state", "ticket status", "case status", "สถานะ", "状态", "狀態"),
    "tags": ("tags", "tag", "labels", "label", "categories", "category", "topics", "แท็ก", "หมวดหมู่", "标签",
             "標籤", "类别", "類別"),
}


def _key(name: str) -> str:
    return re.sub(r"[\s_\-.#:/]+", " ", str(name).replace("\ufeff", "").casefold()).strip()


@dataclass
class ImportProblem:
    """Something that stops the import: a row's field, a row, or (row None) the file or the mapping."""

    row: int | None
    field: str | None
    message: str
    column: str | None = None  # the file's column mapped to `field`

    def to_dict(self) -> dict:
        return {"row": self.row, "field": self.field, "column": self.column, "message": self.message}


@dataclass
class NoteTable:
    """A notes file read with its own column names, before mapping."""

    name: str
    format: str  # "csv" or "jsonl"
    label: str   # how rows are numbered: "row" (spreadsheet rows, the header is 1) or "line"
    columns: list[str]
    rows: list[tuple[int, dict]]
    problems: list[ImportProblem] = field(default_factory=list)  # rows that could not be read at all


@dataclass
class ImportReport:
    name: str
    format: str
    columns: list[str]
    mapping: dict[str, str]
    source_file: str = ""  # where the file is kept once imported; the notes' sources start with it
    rows: int = 0
    problems: list[ImportProblem] = field(default_factory=list)
    documents: list[DocumentInput] = field(default_factory=list)
    added: int = 0
    updated: int = 0
    skipped: int = 0  # already there, unchanged
    valid_only: bool = False  # import the rows that passed and report the others (else all rows or none)

    @property
    def ok(self) -> bool:
        """Whether it may be imported: no problem at all, or (valid_only) only rows' problems and some valid rows."""
        if not self.problems:
            return True
        return self.valid_only and bool(self.documents) and all(p.row is not None for p in self.problems)

    @property
    def valid(self) -> int:
        """Rows that passed every check."""
        return len(self.documents)

    @property
    def imported(self) -> int:
        return self.added + self.updated

    def to_dict(self) -> dict:
        return {
            "name": self.name, "format": self.format, "rows": self.rows, "valid": self.valid,
            "problems": [p.to_dict() for p in self.problems], "imported": self.imported, "added": self.added,
            "updated": self.updated, "skipped": self.skipped, "columns": self.columns, "mapping": self.mapping,
            "valid_only": self.valid_only,
        }


# -- reading the file -------------------------------------------------------------


def read_table(name: str, data: bytes) -> NoteTable:
    """The file's columns and rows; ReadError ("<name>: <what is wrong>") when it cannot be used at all."""
    fmt = FORMATS.get(Path(name or "").suffix.lower())
    if fmt is None:
        raise ReadError(f"{name}: notes are imported from .csv or .jsonl files")
    try:
        text, _encoding = decode_bytes(data)
    except ReadError as exc:
        raise ReadError(f"{name}: {exc}") from None
    if not text.strip():
        raise ReadError(f"{name}: empty file")
    read_problems: list[ReadProblem] = []
    if fmt == "csv":
        columns, rows = _csv_table(name, text, read_problems)
        label = "row"
    else:
        rows = list(jsonl_objects(text, name, read_problems))
        columns = list(dict.fromkeys(str(key).strip() for _, obj in rows for key in obj if str(key).strip()))
        rows = [(n, {str(k).strip(): v for k, v in obj.items()}) for n, obj in rows]
        label = "line"
    problems = [ImportProblem(_location_number(p.location), None, p.message) for p in read_problems]
    return NoteTable(name, fmt, label, columns, rows, problems)


def _csv_table(name: str, text: str, problems: list[ReadProblem]) -> tuple[list[str], list[tuple[int, dict]]]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sniff_delimiter(text), strict=True)
    try:
        header = [cell.replace("\ufeff", "").strip() for cell in next(reader)]
    except csv.Error as exc:
        raise ReadError(f"{name}: row 1 (the header) is not valid CSV ({csv_error_reason(exc)})") from None
    if not any(header):
        raise ReadError(f"{name}: row 1 should name the columns but is empty")
    seen: dict[str, str] = {}
    for column in filter(None, header):
        if column.casefold() in seen:
            raise ReadError(f"{name}: the column {column!r} appears twice in the header (row 1)")
        seen[column.casefold()] = column
    return [c for c in header if c], list(csv_rows(reader, header, name, problems))


def _location_number(location: str | None) -> int | None:
    match = re.search(r"(\d+)", location or "")
    return int(match.group(1)) if match else None


# -- mapping and checking -----------------------------------------------------------


def guess_mapping(columns: list[str]) -> dict[str, str]:
    """Our field -> their column; each column used once.

    By the same name first, then by `SYNONYMS`, then by a synonym inside a longer
    name ("Customer complaint", "投诉内容", "เรื่องที่ลูกค้าร้องเรียน"): the best-covered column
    wins, so "Customer complaint" goes to the complaint rather than to the customer's name.
    """
    by_key: dict[str, str] = {}
    for column in columns:
        by_key.setdefault(_key(column), column)
    mapping: dict[str, str] = {}
    used: set[str] = set()
    for candidates in ((lambda f: (_key(f),)), (lambda f: SYNONYMS.get(f, ()))):
        for name in NOTE_FIELDS:
            if name in mapping:
                continue
            for candidate in candidates(name):
                column = by_key.get(_key(candidate))
                if column is not None and column not in used:
                    mapping[name] = column
                    used.add(column)
                    break
    inside = sorted(
        ((len(synonym) / len(key), name, column)
         for key, column in by_key.items() if column not in used
         for name in NOTE_FIELDS if name not in mapping
         for synonym in SYNONYMS.get(name, ()) if len(synonym) >= MIN_INSIDE_CHARS and _contains(key, synonym)),
        key=lambda found: -found[0],
    )
    for _score, name, column in inside:
        if name not in mapping and column not in used:
            mapping[name] = column
            used.add(column)
    return {name: mapping[name] for name in NOTE_FIELDS if name in mapping}


MIN_INSIDE_CHARS = 2  # a synonym shorter than this ("no", "id") only counts as the whole name


def _contains(key: str, synonym: str) -> bool:
    """Whether a column name holds a synonym: as whole words in Latin script, anywhere in Thai or Chinese."""
    synonym = _key(synonym)
    if synonym.isascii():
        return re.search(rf"(?<![a-z0-9]){re.escape(synonym)}(?![a-z0-9])", key) is not None and len(synonym) >= 4
    return synonym in key


class BadMapping(InvalidInput):
    """A mapping that names a field we do not have (a programming or API error, not a file problem)."""


def clean_mapping(mapping: dict) -> dict[str, str]:
    """Our field -> their column, empty choices dropped; BadMapping for unknown fields or non-text columns."""
    if not isinstance(mapping, dict):
        raise BadMapping('the mapping is an object {"our field": "their column"}')
    out: dict[str, str] = {}
    for name, column in mapping.items():
        if name not in NOTE_FIELDS:
            raise BadMapping(f"unknown field {name!r} (expected some of: {', '.join(NOTE_FIELDS)})")
        if column is None or column == "":
            continue
        if not isinstance(column, str):
            raise BadMapping(f"field {name!r}: the column is given by its name, as text")
        out[name] = column
    return out


def check_import(table: NoteTable, mapping: dict[str, str], source_file: str, valid_only: bool = False) -> ImportReport:
    """Map every row and validate it as `kb ingest` would; the report holds the notes or the problems.

    With `valid_only` the notes of the rows that passed are kept next to the other rows' problems
    (import those, report the rest); otherwise one problem keeps every note out.
    """
    report = ImportReport(table.name, table.format, table.columns, dict(mapping), source_file,
                          rows=len(table.rows) + len({p.row for p in table.problems}), valid_only=valid_only)
    problems = _mapping_problems(table, mapping)
    if not table.rows and not table.problems:
        problems.append(ImportProblem(None, None, "the file holds no notes"))
    if problems:
        report.problems = problems + table.problems
        return report
    column_of = dict(mapping)
    first_seen: dict[str, int] = {}
    row_problems = list(table.problems)
    for number, raw in table.rows:
        mapped = {name: raw.get(column) for name, column in mapping.items()}
        result = read_notes_rows([mapped], source_file, table.label, first_number=number,
                                 metadata={"format": table.format, "imported_from": table.name})
        for problem in result.problems:
            name = _field_of(problem.message)
            row_problems.append(ImportProblem(number, name, problem.message, column_of.get(name or "")))
        for doc in result.documents:
            note_id = doc.note.note_id
            if note_id in first_seen:
                row_problems.append(ImportProblem(
                    number, "id", f"duplicate id {note_id} (first seen on {table.label} {first_seen[note_id]})",
                    column_of.get("id")))
                continue
            first_seen[note_id] = number
            report.documents.append(doc)
    report.problems = sorted(row_problems, key=lambda p: (p.row or 0))
    if report.problems and not valid_only:
        report.documents = []  # nothing goes in until every row is right
    return report


def _mapping_problems(table: NoteTable, mapping: dict[str, str]) -> list[ImportProblem]:
    problems = []
    for name in REQUIRED_NOTE_FIELDS:
        if not mapping.get(name):
            problems.append(ImportProblem(None, name, f"choose the column that holds each note's {name} "
                                                      "(required)"))
    for name, column in mapping.items():
        if column not in table.columns:
            problems.append(ImportProblem(None, name, f"the file has no column {column!r}", column))
    return problems


def _field_of(message: str) -> str | None:
    """The note field a reader's message is about ("field 'date': ...", "duplicate id ...")."""
    match = re.match(r"field '(\w+)'", message)
    if match:
        return match.group(1)
    return "id" if message.startswith("duplicate id") else None


# -- writing ----------------------------------------------------------------------


def stored_path(data_dir: Path, name: str, owner: str = "") -> Path:
    """Where an imported file is kept: one place per importer and file name, so their second import finds the
    first ("" for imports without a user, as the command line makes them)."""
    folder = Path(data_dir) / IMPORTS / BY_OWNER / owner if owner else Path(data_dir) / IMPORTS
    return (folder / safe_file_name(name)).resolve()


def import_notes(engine: Engine, report: ImportReport, data: bytes, *, dry_run: bool = False,
                 owner: str = "") -> ImportReport:
    """Write every note of a clean report in one transaction, or none; keep the file at `report.source_file`.

    Checks the database first (notes already there and unchanged are
    skipped; a field too long for its column is a problem). With `dry_run`
    nothing is written: the report then says how many would be skipped.
    The notes belong to `owner`, who imported them.
    """
    if not report.ok or not report.documents:
        return report
    for doc in report.documents:
        doc.owner = owner
    row_of = {doc.source: doc.metadata.get("row") for doc in report.documents}
    plan = writer.triage(engine, report.documents) if dry_run else writer.plan(engine, report.documents)
    failed = [o for o in plan.outcomes.values() if o.status == "failed"]
    if failed:
        refused = [ImportProblem(row_of.get(o.source), _field_of(o.error or ""), o.error or "refused") for o in failed]
        if not report.valid_only:
            report.problems, report.documents = refused, []
            return report
        gone = {o.source for o in failed}
        report.problems = sorted(report.problems + refused, key=lambda p: (p.row or 0))
        report.documents = [doc for doc in report.documents if doc.source not in gone]
        if not report.documents:
            return report
        plan = writer.triage(engine, report.documents) if dry_run else writer.plan(engine, report.documents)
    report.skipped = sum(1 for o in plan.outcomes.values() if o.status == "skipped")
    if dry_run:
        return report
    target = Path(report.source_file)
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(f".{target.name}.{secrets.token_hex(4)}.part")
    part.write_bytes(data)
    try:
        outcomes = writer.commit(engine, plan, atomic=True)
    except DBAPIError as exc:
        part.unlink(missing_ok=True)
        report.problems = [ImportProblem(None, None, f"the database refused the notes ({exc.orig}); "
                                                     "nothing was imported")]
        report.documents = []
        return report
    os.replace(part, target)
    report.added = sum(1 for o in outcomes if o.status == "added")
    report.updated = sum(1 for o in outcomes if o.status == "updated")
    return report


# -- files waiting for their mapping ------------------------------------------------


@dataclass
class PendingImport:
    """An uploaded notes file kept until its columns are mapped and it is imported (or abandoned)."""

    token: str
    name: str
    path: Path

    def read(self) -> bytes:
        return self.path.read_bytes()


def _pending_dir(data_dir: Path) -> Path:
    return Path(data_dir) / IMPORTS / PENDING


def save_pending(data_dir: Path, name: str, data: bytes) -> PendingImport:
    """Keep an upload under a random token (the file's own name never touches the disk as a path)."""
    suffix = Path(name or "").suffix.lower()
    if suffix not in FORMATS:
        raise ReadError(f"{name}: notes are imported from .csv or .jsonl files")
    folder = _pending_dir(data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    prune_pending(data_dir)
    token = secrets.token_hex(16)
    path = folder / f"{token}{suffix}"
    path.write_bytes(data)
    (folder / f"{token}.json").write_text(json.dumps({"name": name}), encoding="utf-8")
    return PendingImport(token, name, path)


def find_pending(data_dir: Path, token: str) -> PendingImport | None:
    if not _TOKEN.match(token or ""):
        return None
    folder = _pending_dir(data_dir)
    try:
        name = json.loads((folder / f"{token}.json").read_text(encoding="utf-8"))["name"]
    except (OSError, ValueError, KeyError):
        return None
    path = folder / f"{token}{Path(name).suffix.lower()}"
    return PendingImport(token, name, path) if path.is_file() else None


def discard_pending(pending: PendingImport) -> None:
    pending.path.unlink(missing_ok=True)
    pending.path.with_suffix(".json").unlink(missing_ok=True)


def prune_pending(data_dir: Path, max_age: dt.timedelta = PENDING_MAX_AGE) -> None:
    cutoff = dt.datetime.now().timestamp() - max_age.total_seconds()
    for path in _pending_dir(data_dir).glob("*"):
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
        except OSError:
            pass
