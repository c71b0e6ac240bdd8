"""What goes in and out of a search: the request, the response, its results and passages.

They live apart from the steps that make them so that every step (and every
caller: the knowledge base, the command line, the portal, the services) can
name them without importing the whole pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from kb.access import OPERATOR, Viewer
from kb.documents import short_source
from kb.errors import InvalidInput
from kb.index.chunk_table import SearchFilters
from kb.search.snippets import Snippet

MODES = ("hybrid", "dense", "keyword")


class EmptyQueryError(InvalidInput):
    """A search needs some text to look for."""

    code = "empty_query"


@dataclass
class SearchRequest:
    query: str
    k: int = 10
    offset: int = 0
    mode: str = "hybrid"
    filters: SearchFilters = field(default_factory=SearchFilters)
    group: bool = True
    facets: bool = False  # count the candidates per language, kind, product, status, channel and tag
    viewer: Viewer = OPERATOR  # who reads the results: what they may see, and whether personal data is masked
    snippets: bool = True  # answers read whole passages and skip the snippets (the slowest part of a search)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r} (expected one of: {', '.join(MODES)})")
        if self.k < 1 or self.offset < 0:
            raise ValueError("k must be at least 1 and offset at least 0")


@dataclass
class Passage:
    chunk_id: int
    lang: str
    start: int
    end: int
    text: str
    score: float
    snippet: Snippet
    headings: list[str] = field(default_factory=list)  # the sections it sits under, outermost first
    title: str = ""  # its document's

    @property
    def heading_path(self) -> list[str]:
        """Document title > section > subsection, as a breadcrumb shows it."""
        return [self.title, *self.headings] if self.title else list(self.headings)

    def to_dict(self) -> dict:
        return {
            "chunk_id": self.chunk_id, "lang": self.lang, "start": self.start, "end": self.end,
            "score": round(self.score, 6), "snippet": self.snippet.text, "highlights": self.snippet.highlights,
            "heading_path": self.heading_path,
        }


@dataclass
class SearchResult:
    """One document (or one chunk when not grouped), shown by its best passage."""

    doc_id: int
    title: str
    source: str
    kind: str
    doc_lang: str
    score: float
    best: Passage
    more: list[Passage]
    more_count: int
    dense_rank: int | None
    keyword_rank: int | None
    keyword_share: float

    @property
    def chunk_id(self) -> int:
        return self.best.chunk_id

    @property
    def lang(self) -> str:
        return self.best.lang

    @property
    def text(self) -> str:
        return self.best.text

    @property
    def heading_path(self) -> list[str]:
        """Title > section > subsection of the best passage."""
        return [self.title, *self.best.headings] if self.title else list(self.best.headings)

    def to_dict(self) -> dict:
        return {
            "doc_id": self.doc_id, "chunk_id": self.best.chunk_id, "title": self.title, "source": short_source(self.source),
            "kind": self.kind, "lang": self.best.lang, "score": round(self.score, 6), "text": self.best.text,
            "start": self.best.start, "end": self.best.end, "doc_lang": self.doc_lang,
            "snippet": self.best.snippet.text, "highlights": self.best.snippet.highlights,
            "heading_path": self.heading_path, "more_passages": self.more_count, "passages": [p.to_dict() for p in self.more],
            "explain": {
                "dense_rank": self.dense_rank, "keyword_rank": self.keyword_rank,
                "keyword_share": round(self.keyword_share, 3),
            },
        }


@dataclass
class SearchResponse:
    results: list[SearchResult]
    query: str
    query_lang: str
    query_terms: list[str]
    mode: str
    filters: SearchFilters
    has_more: bool
    timings: dict[str, float] = field(default_factory=dict)
    facets: dict[str, dict[str, int]] | None = None  # field -> value -> documents, when asked for

    def to_dict(self) -> dict:
        out = {
            "results": [r.to_dict() for r in self.results],
            "query": {"text": self.query, "lang": self.query_lang, "terms": self.query_terms,
                      "mode": self.mode, "filters": self.filters.to_dict()},
            "has_more": self.has_more,
        }
        if self.facets is not None:
            out["facets"] = self.facets
        return out


@dataclass
class Ranking:
    """One retriever's candidates, best first: chunk ids and their scores."""

    ids: np.ndarray
    scores: np.ndarray

    @classmethod
    def empty(cls) -> Ranking:
        return cls(np.empty(0, np.int64), np.empty(0, np.float32))
