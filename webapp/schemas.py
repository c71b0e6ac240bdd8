"""The JSON API's requests and responses as pydantic models: one definition both checks a request and describes it.

`webapp.apispec` turns the models named by each view's `@spec.validate(...)`
into the OpenAPI document at /api/v1/openapi.json, so what is documented is
what is enforced. Request models refuse bad input with a message that names
the field (answered 400 by `webapp.apispec`); response models describe what
the `to_dict()` of each `kb` result holds, and are checked against the real
responses when `KB_CHECK_RESPONSES` is set (the tests do).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel, Strict, field_validator, model_validator

from kb.index.chunk_table import SearchFilters
from kb.search.query import MAX_QUERY_CHARS

MAX_K = 100
# The largest id a database row can have (SQLite and PostgreSQL BIGINT): larger ones are simply not found.
MAX_ID = 2**63 - 1

# A whole number in a JSON body: "5" and true are refused rather than read as 5 and 1.
Whole = Annotated[int, Strict()]
Lang = Literal["th", "zh", "en"]
Kind = Literal["guidance", "note"]
Mode = Literal["hybrid", "dense", "keyword"]
LANG_DESCRIPTION = "th, zh, en, or und when unknown"


class Request(BaseModel):
    """A request's fields; unknown ones are ignored."""

    model_config = ConfigDict(populate_by_name=True)


class Query(Request):
    """Query-string fields: an empty value (`?lang=`) counts as absent, as a form leaves it.

    Except the text the request is about (`text_fields`): an empty one is kept,
    so that the search can say what is missing in its own words.
    """

    text_fields: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="before")
    @classmethod
    def _blank_is_absent(cls, values: Any) -> Any:
        if isinstance(values, dict):
            return {name: value for name, value in values.items()
                    if name in cls.text_fields or not (isinstance(value, str) and not value.strip())}
        return values


# -- requests -------------------------------------------------------------------------------------------


class Paging(Query):
    limit: int = Field(20, ge=1, le=200, description="1-200, default 20")
    offset: int = Field(0, ge=0, le=10**9, description="items to skip")


class SearchFields(Query):
    """What GET /search takes in its query string and POST /search in its JSON body."""

    text_fields = frozenset({"q"})

    q: str = Field(max_length=MAX_QUERY_CHARS, description="what to look for, in any language "
                                                           f"(at most {MAX_QUERY_CHARS} characters)")
    k: int = Field(10, ge=1, le=MAX_K, description=f"results per page (1-{MAX_K}, default 10)")
    offset: int = Field(0, ge=0, le=10_000, description="results to skip (paging)")
    mode: Mode = Field("hybrid", description="hybrid (default), dense or keyword")
    lang: Lang | None = Field(None, description="only passages in this language")
    kind: Kind | None = Field(None, description="only guidance or only customer notes")
    tag: list[str] = Field(default_factory=list, description="only documents with one of these tags")
    product: str | None = Field(None, description="only notes about this product")
    status: str | None = Field(None, description="only notes with this status")
    channel: str | None = Field(None, description="only notes from this channel")
    date_from: dt.date | None = Field(None, alias="from", description="on or after this date (YYYY-MM-DD)")
    date_to: dt.date | None = Field(None, alias="to", description="on or before this date (YYYY-MM-DD)")
    facets: bool = Field(False, description="count the candidates per language, kind, product, status, "
                                            "channel and tag")

    @field_validator("tag", mode="before")
    @classmethod
    def _tags(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list):
            return [t.strip() for t in value if isinstance(t, str) and t.strip()] + [
                t for t in value if not isinstance(t, str)]
        return value

    @model_validator(mode="after")
    def _dates_in_order(self) -> SearchFields:
        if self.date_from and self.date_to and self.date_from > self.date_to:
            raise ValueError("from: the start date is after the end date")
        return self

    def filters(self) -> SearchFilters:
        def text(value: str | None) -> str | None:
            return (value or "").strip() or None

        return SearchFilters(lang=self.lang, kind=self.kind, tags=self.tag, product=text(self.product),
                             status=text(self.status), channel=text(self.channel), date_from=self.date_from,
                             date_to=self.date_to)


class AskRequest(Request):
    question: str = Field(max_length=MAX_QUERY_CHARS, description="the question, in any language")


class DocumentQuery(Paging):
    kind: Kind | None = Field(None, description="guidance or note")
    lang: Lang | None = Field(None, description="main language")


class PastedText(Request):
    text: str = Field(description="the knowledge to add, as a guidance document of its own")
    title: str = Field("", max_length=500)
    lang: Lang | None = None
    tags: list[str] = Field(default_factory=list)
    visibility: str | None = Field(None, max_length=255, description="who may read it: internal (all staff), partner (partners "
                                "too) or roles separated by commas (agent,admin); only one you can read yourself; "
                                "empty: what the file says (front matter), else internal")


def file_schema(schema: dict) -> None:
    """One file in a multipart body (absent rather than null when not sent: the view says it is missing)."""
    schema.pop("default", None)
    schema.update(type="string", contentMediaType="application/octet-stream")


def files_schema(schema: dict) -> None:
    """Files in a multipart body, as OpenAPI 3.1 describes them (absent, rather than null, when none is sent)."""
    schema.pop("default", None)
    schema.update(type="array", items={"type": "string", "contentMediaType": "application/octet-stream"})


class UploadForm(Request):
    files: Any = Field(None, description="one or more files (txt, md, html, docx, pdf, csv, jsonl)",
                       json_schema_extra=files_schema)
    visibility: str | None = Field(None, max_length=255, description="who may read it: internal (all staff), partner (partners "
                                "too) or roles separated by commas (agent,admin); only one you can read yourself; "
                                "empty: what the file says (front matter), else internal")
    topics: str | None = Field(None, max_length=2000, description="topics for every document of the files, "
                                                                  "separated by commas (added to the files' own)")


class TopicQuery(Query):
    lang: Lang | None = Field(None, description="only documents in this language")


class TopicsBody(Request):
    topics: list[str] = Field(max_length=50)


class Strict(Request):
    """A body whose unknown fields are refused: a misspelt field would otherwise silently do nothing."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")


class CollectionFields(Strict):
    name: str | None = Field(None, max_length=200)
    description: str | None = Field(None, max_length=5000)
    lang: Literal["th", "zh", "en", ""] | None = Field(None, description="the workshop's language")


class NewCollection(CollectionFields):
    name: str = Field(max_length=200)


class CollectionQuery(Query):
    parallel: Literal["0", "1"] | None = Field(None, description="1 to add each item's parallel passages")


class NewItem(Strict):
    doc_id: Whole = Field(ge=0, le=MAX_ID)
    chunk_id: Whole | None = Field(None, ge=0, le=MAX_ID)
    start: Whole | None = Field(None, ge=0, le=MAX_ID)
    end: Whole | None = Field(None, ge=0, le=MAX_ID)
    annotation: str | None = Field(None, max_length=5000)


class Annotation(Strict):
    annotation: str = Field(max_length=5000)


class NewOrder(Strict):
    items: list[Whole] = Field(description="every item id of the collection exactly once, in the new order")


class ExportQuery(Query):
    format: Literal["md", "html", "docx"] = Field(description="md, html or docx")


class AuditQuery(Query):
    limit: int = Field(100, ge=1, le=1000, description="1-1000, default 100")
    offset: int = Field(0, ge=0, le=10**9)
    actor: str | None = Field(None, description="only this actor, e.g. user:somchai")
    action: str | None = Field(None, description="only this action: search, view, export, similar, ask, login...")


# -- responses ------------------------------------------------------------------------------------------


class Error(BaseModel):
    class Detail(BaseModel):
        code: str
        message: str = Field(description="what went wrong and what to do")

    error: Detail


HeadingPath = list[str]
HEADING_PATH = "where the passage sits: document title, section, subsection (outermost first)"


class Passage(BaseModel):
    chunk_id: int
    lang: str = Field(description=LANG_DESCRIPTION)
    start: int
    end: int
    score: float
    snippet: str
    highlights: list[list[int]]
    heading_path: HeadingPath = Field(description=HEADING_PATH)


class Explain(BaseModel):
    dense_rank: int | None
    keyword_rank: int | None
    keyword_share: float = Field(description="how much of the rank came from matching words rather than meaning")


class SearchResult(BaseModel):
    doc_id: int
    chunk_id: int
    title: str
    source: str
    kind: Kind
    lang: str = Field(description=LANG_DESCRIPTION)
    score: float
    text: str
    start: int
    end: int
    doc_lang: str
    snippet: str
    highlights: list[list[int]] = Field(description="[start, end) spans of snippet to mark")
    heading_path: HeadingPath = Field(description=HEADING_PATH)
    more_passages: int
    passages: list[Passage]
    explain: Explain


class QueryEcho(BaseModel):
    text: str
    lang: str
    terms: list[str]
    mode: Mode
    filters: dict[str, Any]


class SearchResponse(BaseModel):
    results: list[SearchResult] = Field(description="best first; empty when nothing is relevant enough")
    query: QueryEcho
    has_more: bool
    facets: dict[str, dict[str, int]] | None = None


class Citation(BaseModel):
    doc_id: int
    chunk_id: int
    title: str
    source: str
    start: int
    end: int
    text: str
    lang: str
    heading_path: HeadingPath = Field(description=HEADING_PATH)


class AskResponse(BaseModel):
    answer: str | None = Field(description="sentences quoted from the first citation, or null")
    lang: str | None = Field(description="the language the answer is written in")
    confidence: float = Field(description="the chance that the answer is right (fitted on staff questions)")
    question_lang: str
    citations: list[Citation] = Field(description="the answer's source first (its exact offsets), then the "
                                                  "passages consulted")
    in_question_language: Citation | None = Field(description="when the answer is in another language: the best "
                                                              "passage in the asker's")
    evidence: dict[str, float] = Field(description="what the confidence was computed from")


class DocumentSummary(BaseModel):
    id: int
    title: str
    source: str
    kind: Kind
    lang: str
    languages: list[str]
    tags: list[str]
    updated_at: str | None


class DocumentList(BaseModel):
    documents: list[DocumentSummary]
    total: int
    limit: int
    offset: int


class Heading(BaseModel):
    start: int
    end: int
    level: int = Field(description="1 outermost")


class PassageSpan(BaseModel):
    chunk_id: int
    start: int
    end: int
    lang: str


class RelatedDocument(DocumentSummary):
    score: float
    passage_lang: str


class OriginalFileInfo(BaseModel):
    name: str
    size: int = Field(description="bytes")
    url: str = Field(description="where to download it (GET answers the file as it was ingested)")


class Document(DocumentSummary):
    text: str
    visibility: str
    owner: str = Field(description="the user name of who uploaded it; empty when the operator ingested it")
    is_mixed: bool
    note: dict[str, Any] | None
    headings: list[Heading] = Field(description="[start, end) of each heading in text, and its level")
    passages: list[PassageSpan]
    related: list[RelatedDocument]
    original: OriginalFileInfo | None = Field(
        description="the file it was read from, when you may download it (all of its documents, "
                    "and their personal data, are yours to see)")


class UploadResult(BaseModel):
    name: str
    status: Literal["added", "updated", "skipped", "failed", "queued"]
    doc_ids: list[int]
    error: str | None


class JobFile(BaseModel):
    name: str
    state: Literal["queued", "added", "updated", "skipped", "failed"]
    error: str | None
    doc_ids: list[int]


class Job(BaseModel):
    """An ingest job on the queue (KB_QUEUE_URL) and each of its files' outcome."""

    id: str
    kind: Literal["upload", "files"]
    state: Literal["queued", "running", "retrying", "done", "failed"]
    attempts: int = Field(description="how many times a worker has started it")
    error: str | None = Field(description="why the last try failed (retrying) or why it failed")
    created_at: str
    started_at: str | None
    finished_at: str | None
    files_done: int
    files_total: int
    files: list[JobFile]


class UploadResults(BaseModel):
    results: list[UploadResult]
    job_id: str | None = Field(None, description="with a queue: the job that ingests the files marked queued")
    job: Job | None = None


class Deleted(BaseModel):
    deleted: list[str] = Field(description="the sources removed")


class Topic(BaseModel):
    tag: str
    documents: int
    languages: dict[str, int] = Field(description="guidance documents per main language")


class TopicList(BaseModel):
    topics: list[Topic]


class TopicDocuments(BaseModel):
    tag: str
    documents: dict[str, list[DocumentSummary]] = Field(description="the topic's guidance by main language")


class DocumentTopics(BaseModel):
    doc_id: int
    topics: list[str]


class Health(BaseModel):
    status: str


class Ready(BaseModel):
    status: Literal["ready", "not_ready"]
    documents: int
    chunks: int
    vectors: int
    keyword_chunks: int


class NotReady(RootModel[Ready | Error]):
    """Not ready: the counts that disagree, or why the database cannot be read."""


class AuditEntry(BaseModel):
    id: int
    at: str
    actor: str
    action: str
    target: str
    details: dict[str, Any]


class AuditLog(BaseModel):
    entries: list[AuditEntry]
    total: int
    limit: int
    offset: int


class ParallelPassage(BaseModel):
    doc_id: int
    chunk_id: int
    lang: str
    title: str
    source: str
    start: int
    end: int
    text: str
    score: float = Field(description="cosine of language-centered vectors")


class CollectionItem(BaseModel):
    id: int
    position: int
    doc_id: int | None = Field(description="null once the document was deleted")
    chunk_id: int | None
    start: int
    end: int
    lang: str
    text: str = Field(description="copied from the document when the item was added")
    title: str
    source: str
    annotation: str
    created_at: str | None
    parallel: list[ParallelPassage] | None = Field(None, description="with ?parallel=1: the same passage in each "
                                                                     "other language, where found")


class CollectionSummary(BaseModel):
    id: int
    name: str
    description: str
    lang: Literal["th", "zh", "en", ""]
    owner: str
    shared: bool
    share_token: str | None
    share_url: str | None = Field(description="the read-only page for anyone with the link")
    item_count: int
    created_at: str | None
    updated_at: str | None


class Collection(CollectionSummary):
    items: list[CollectionItem] = Field(description="in their order")


class CollectionList(BaseModel):
    collections: list[CollectionSummary]


class CollectionDeleted(BaseModel):
    deleted: int
