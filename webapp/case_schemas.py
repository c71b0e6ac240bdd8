"""The cases API's requests and responses (support agents' past complaints, similar cases, note import).

Kept apart from `webapp.schemas`, whose building blocks they use, because they are
a concern of their own (webapp/cases.py) and the two together are too long to read.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, Field

from kb.services.cases import MAX_SIMILAR
from webapp.schemas import Paging, Query, Whole, file_schema

# -- requests -------------------------------------------------------------------------------------------


class CaseQuery(Paging):
    product: str | None = Field(None, description="only this product")
    channel: str | None = Field(None, description="only this channel")
    status: str | None = Field(None, description="only this status")
    state: Literal["all", "resolved", "open"] | None = Field(None, description="resolved, open (not resolved) "
                                                                               "or all (default)")
    date_from: dt.date | None = Field(None, alias="from", description="dated on or after (YYYY-MM-DD)")
    date_to: dt.date | None = Field(None, alias="to", description="dated on or before (YYYY-MM-DD)")


class SimilarRequest(Query):
    text_fields = frozenset({"text"})
    text: str = Field(max_length=20_000, description="the new complaint")
    k: Whole = Field(10, ge=1, le=MAX_SIMILAR)
    product: str | None = None
    channel: str | None = None
    status: str | None = None
    state: Literal["all", "resolved", "open"] | None = Field(
        None, description="resolved cases only, open (not resolved) ones only, or all (default)")
    date_from: dt.date | None = Field(None, alias="from")
    date_to: dt.date | None = Field(None, alias="to")


class ImportForm(Query):
    file: Any = Field(None, description="the notes, .csv or .jsonl (required)", json_schema_extra=file_schema)
    mapping: str | None = Field(None, description="JSON {our field: your column}; fields not named are guessed "
                                                  "from the column names, null unmaps one")
    dry_run: Literal["0", "1", "true", "false", "yes", "no"] | None = Field(None, description="1: check only, "
                                                                                              "write nothing")
    valid_only: Literal["0", "1", "true", "false", "yes", "no"] | None = Field(
        None, description="1: import the rows that pass and report the others (default: all rows or none)")


# -- responses ------------------------------------------------------------------------------------------


class CaseSummary(BaseModel):
    doc_id: int
    note_id: str
    title: str
    lang: str
    date: dt.date | None
    product: str
    channel: str
    status: str
    resolved: bool = Field(description="its status says solved (resolved, closed...) and it has a resolution")
    complaint: str
    resolution: str
    helped: int = Field(description="how many agents said its resolution helped")


class Customer(BaseModel):
    name: str
    email: str
    phone: str


class Case(CaseSummary):
    customer: Customer
    tags: list[str]
    source: str


class SimilarCase(CaseSummary):
    score: float = Field(description="the hybrid search score")
    relevance: float = Field(description="the score over the best result's (1 = the best match)")


class CaseList(BaseModel):
    cases: list[CaseSummary]
    total: int
    limit: int
    offset: int


class SimilarCases(BaseModel):
    results: list[SimilarCase] = Field(description="the most similar first; resolved or open is a filter "
                                                   "(`state`), not a sort key")
    filters: dict[str, Any]


class CaseHelped(BaseModel):
    doc_id: int
    helped: int
    counted: bool = Field(description="this call added your mark (false: it was there already)")
    marked: bool = Field(description="your mark is there now")


class ImportProblem(BaseModel):
    row: int | None = Field(description="row (CSV, the header is row 1) or line (JSONL); null: the file or the "
                                        "mapping")
    field: str | None
    column: str | None
    message: str


class ImportReport(BaseModel):
    name: str
    format: Literal["csv", "jsonl", ""]
    rows: int = Field(description="data rows (or lines) in the file")
    valid: int = Field(description="rows that passed every check")
    problems: list[ImportProblem]
    imported: int
    added: int
    updated: int
    skipped: int = Field(description="notes already there, unchanged")
    columns: list[str] = Field(description="the file's columns")
    mapping: dict[str, str] = Field(description="our field -> the file's column, as used")
