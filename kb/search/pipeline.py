"""Hybrid search: keyword (BM25 on segmented words) and meaning (language-centered vectors), fused.

Keyword search finds exact terms (product codes, names, "SBU") but cannot cross
languages; dense search crosses languages but misses exact terms. Every query
runs both (unless a mode says otherwise), with the filters applied inside
each retriever, and the two are fused per chunk by score (see `fuse`). Results are grouped
per document (its best passage first, the other matching passages after it),
and every result says how much of its rank came from each side.

Cross-language reach comes from three steps (see `kb.index.centering`, `_expand`
and `lent_keyword_scores`): vectors are language-centered, the query vector
is expanded with the best passage of a first, unfiltered pass, which carries
a Thai question to the English and Chinese passages on the same subject, and
those passages share part of the keyword score of the passage they say again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy import select

from kb.access import OPERATOR, Viewer
from kb.documents import KINDS
from kb.errors import InvalidInput
from kb.index.chunk_table import SearchFilters
from kb.search.snippets import Snippet, make_snippet
from kb.storage.models import Chunk, Document
from kb.text.cleaning import normalize_text
from kb.text.languages import detect_language
from kb.text.privacy import PiiSpan, mask

if TYPE_CHECKING:
    from kb.engine import Engine

MODES = ("hybrid", "dense", "keyword")
MAX_QUERY_CHARS = 2000
# Weight of the best passage added to the query vector (see _expand).
PRF_WEIGHT = 1.0
# Score fusion (see `fuse`): a dense z-score plus KEYWORD_WEIGHT times the BM25
# score relative to the best one. Chosen with bench/retrieval.py --fusion-grid.
DENSE_WEIGHT = 1.0
KEYWORD_WEIGHT = 5.0
# Keyword evidence lent across languages (see `lent_keyword_scores`): how many
# keyword hits and dense candidates take part, how close (cosine of
# language-centered vectors) a passage must be to a hit to borrow from it, and
# what share of the hit's keyword score it gets. On XQuAD, parallel paragraphs
# have cosines of 0.41 and more (5th percentile), unrelated ones at most 0.38.
LEND_DEPTH = 20
LEND_MIN_SIMILARITY = 0.45
LEND_SHARE = 0.5
# Candidates each retriever contributes per result asked for; grows if grouping needs more.
DEPTH_PER_RESULT = 5
MIN_DEPTH = 50
MAX_PASSAGES = 3


class EmptyQueryError(InvalidInput):
    """A search needs some text to look for."""


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

    def to_dict(self) -> dict:
        return {
            "chunk_id": self.chunk_id, "lang": self.lang, "start": self.start, "end": self.end,
            "score": round(self.score, 6), "snippet": self.snippet.text, "highlights": self.snippet.highlights,
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

    def to_dict(self) -> dict:
        return {
            "doc_id": self.doc_id, "chunk_id": self.best.chunk_id, "title": self.title, "source": self.source,
            "kind": self.kind, "lang": self.best.lang, "score": round(self.score, 6), "text": self.best.text,
            "start": self.best.start, "end": self.best.end, "doc_lang": self.doc_lang,
            "snippet": self.best.snippet.text, "highlights": self.best.snippet.highlights,
            "more_passages": self.more_count, "passages": [p.to_dict() for p in self.more],
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


def clean_query(query: str) -> str:
    """Normalized, trimmed, and cut (at a space if there is one) to MAX_QUERY_CHARS."""
    text = " ".join(normalize_text(query or "").split())
    if not text:
        raise EmptyQueryError("the query is empty: type a few words to search for")
    if len(text) > MAX_QUERY_CHARS:
        cut = text.rfind(" ", 0, MAX_QUERY_CHARS)
        text = text[: cut if cut > MAX_QUERY_CHARS // 2 else MAX_QUERY_CHARS]
    return text


@dataclass
class _Ranking:
    ids: np.ndarray
    scores: np.ndarray

    @classmethod
    def empty(cls) -> _Ranking:
        return cls(np.empty(0, np.int64), np.empty(0, np.float32))


def search_text(
    engine: Engine, query: str, k: int = 10, lang: str | None = None, kind: str | None = None, *,
    mode: str = "hybrid", filters: SearchFilters | None = None, offset: int = 0, group: bool = True,
    facets: bool = False, viewer: Viewer = OPERATOR, snippets: bool = True,
) -> SearchResponse:
    """Passages about `query`, in any language, one result per document unless `group=False`.

    `lang` and `kind` are shorthands for the same fields of `filters`;
    `viewer` limits the results to what that reader may see, masked for them;
    `snippets=False` leaves each passage's snippet empty (for callers that read whole passages).
    """
    if kind is not None and kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r} (expected one of: {', '.join(KINDS)})")
    filters = replace(filters or SearchFilters(), **{
        name: value for name, value in (("lang", lang), ("kind", kind)) if value is not None
    })
    return search(engine, SearchRequest(query, k, offset, mode, filters, group, facets, viewer, snippets))


def search(engine: Engine, request: SearchRequest) -> SearchResponse:
    timings: dict[str, float] = {}
    clock = time.perf_counter
    query = clean_query(request.query)
    engine.refresh()
    indexes = engine.indexes
    query_lang = detect_language(query)
    terms = list(dict.fromkeys(engine.analyzer.term_texts(query)))
    filters, visible = request.filters, None
    if request.viewer.role is not None:
        filters = replace(filters, visible_to=request.viewer.role)
        visible = indexes.table.allowed_ids(SearchFilters(visible_to=request.viewer.role))
    allowed = visible if visible is not None and request.filters.is_empty() else indexes.table.allowed_ids(filters)
    response = SearchResponse([], query, query_lang, terms, request.mode, request.filters, False, timings,
                              {} if request.facets else None)
    if allowed is not None and len(allowed) == 0 or len(indexes.table) == 0:
        return response

    vector = None
    if request.mode != "keyword" and indexes.vectors is not None and len(indexes.vectors):
        started = clock()
        vector = indexes.center_query(engine.embedder.encode_query(query), query_lang)
        timings["encode"] = clock() - started

    depth = max(MIN_DEPTH, DEPTH_PER_RESULT * (request.offset + request.k))
    wanted = request.offset + request.k + 1
    while True:
        fused, dense, keyword, parts = _retrieve(engine, vector, terms, allowed, depth, request.mode, timings, visible)
        started = clock()
        groups = _group(engine, fused, request.group, wanted)
        timings["fusion"] = timings.get("fusion", 0.0) + clock() - started
        exhausted = len(fused[0]) < depth or (allowed is not None and depth >= len(allowed))
        if len(groups) >= wanted or exhausted or depth >= len(indexes.table):
            break
        depth *= 4
    page = groups[request.offset : request.offset + request.k]
    response.has_more = len(groups) > request.offset + request.k
    started = clock()
    response.results = _materialize(engine, page, dense, keyword, parts, set(terms),
                                    mask_personal_data=not request.viewer.sees_personal_data,
                                    snippets=request.snippets)
    timings["fetch"] = clock() - started
    if request.facets:
        response.facets = indexes.table.facet_counts(fused[0][indexes.table.contains(fused[0])])
    return response


def _retrieve(engine, vector, terms, allowed, depth, mode, timings, visible=None):
    """(fused ids, fused scores), the dense ranking, the keyword ranking and each chunk's (dense, keyword) parts.

    `allowed` are the chunks the filters and the reader's rights allow, `visible` those the rights alone allow.
    """
    indexes = engine.indexes
    clock = time.perf_counter
    keyword = dense = _Ranking.empty()
    if mode != "dense" and terms:
        started = clock()
        keyword = _Ranking(*indexes.keywords.search(terms, depth, allowed))
        timings["keyword search"] = timings.get("keyword search", 0.0) + clock() - started
    if vector is not None:
        started = clock()
        reuse = keyword if allowed is None or allowed is visible else None
        expanded = _expand(engine, vector, terms if mode == "hybrid" else None, reuse, visible)
        dense = _Ranking(*indexes.vectors.search(expanded, depth, allowed))
        timings["vector search"] = timings.get("vector search", 0.0) + clock() - started
    if mode == "dense":
        return (dense.ids, dense.scores), dense, keyword, {}
    if mode == "keyword":
        return (keyword.ids, keyword.scores), dense, keyword, {}
    started = clock()
    fused, parts = fuse(indexes, expanded, dense, keyword)
    timings["fusion"] = timings.get("fusion", 0.0) + clock() - started
    return fused, dense, keyword, parts


def _expand(
    engine, vector: np.ndarray, terms: list[str] | None, keyword: _Ranking | None, visible: np.ndarray | None = None,
) -> np.ndarray:
    """Add the best passage of an unfiltered first pass to the query vector (pseudo-relevance feedback).

    Unfiltered, except by what the reader may see (`visible`): a hidden
    passage must not steer anyone's results.

    A question and a passage in another language are far apart, but two
    passages on one subject are close whatever their languages. The first pass
    is dense alone, or hybrid when keywords are in play (it finds the right
    passage more often). Measured on XQuAD: cross-language top-1 rose from
    0.70-0.79 to 0.84-0.92 with dense search, same-language top-1 unchanged.
    """
    indexes = engine.indexes
    first = _Ranking(*indexes.vectors.search(vector, MIN_DEPTH, visible))
    ids = first.ids
    if terms:
        if keyword is None:
            keyword = _Ranking(*indexes.keywords.search(terms, MIN_DEPTH, visible))
        (ids, _), _ = fuse(indexes, vector, first, keyword)
    if len(ids) == 0:
        return vector
    expanded = vector + PRF_WEIGHT * indexes.vectors.reconstruct(int(ids[0]))
    return expanded / max(float(np.linalg.norm(expanded)), 1e-12)


def fuse(indexes, vector: np.ndarray, dense: _Ranking, keyword: _Ranking):
    """Fused ranking of the union of both candidate lists: ((ids, scores), {chunk id: (dense part, keyword part)}).

    A chunk scores DENSE_WEIGHT times its cosine as a z-score among the best
    MIN_DEPTH dense candidates, plus KEYWORD_WEIGHT times its BM25 score over
    the best BM25 score. Scores rather than ranks, because a rank says nothing
    of how good a hit is: with reciprocal rank fusion every weak keyword match
    outranked a strong passage in another language, and on XQuAD score fusion
    found the right paragraph first more often in every language (see the
    bench). Keyword-only candidates get their exact cosine from the index.
    """
    keyword_part: dict[int, float] = {}
    if len(keyword.ids) and keyword.scores[0] > 0:
        top = float(keyword.scores[0])
        keyword_part = {
            c: KEYWORD_WEIGHT * v / top for c, v in zip(keyword.ids.tolist(), keyword.scores.tolist(), strict=True)
        }
        keyword_part.update(lent_keyword_scores(indexes, dense.ids, keyword_part))
    cosine = dict(zip(dense.ids.tolist(), dense.scores.tolist(), strict=True))
    missing = np.asarray([c for c in keyword_part if c not in cosine], np.int64)
    if len(missing):
        cosine.update(zip(missing.tolist(), (indexes.vectors.reconstruct_many(missing) @ vector).tolist(), strict=True))
    if not cosine and not keyword_part:
        return (np.empty(0, np.int64), np.empty(0, np.float32)), {}
    head = dense.scores[:MIN_DEPTH] if len(dense.scores) else np.asarray(list(cosine.values()), np.float32)
    mean, spread = float(np.mean(head)), float(np.std(head)) or 1.0
    parts = {
        c: (DENSE_WEIGHT * (value - mean) / spread, keyword_part.get(c, 0.0)) for c, value in cosine.items()
    }
    order = sorted(parts.items(), key=lambda item: (-(item[1][0] + item[1][1]), item[0]))
    return (
        (np.asarray([c for c, _ in order], np.int64), np.asarray([d + k for _, (d, k) in order], np.float32)),
        parts,
    )


def lent_keyword_scores(indexes, dense_ids: np.ndarray, keyword_part: dict[int, float]) -> dict[int, float]:
    """Keyword scores that passages in other languages borrow from the keyword hits they say again.

    Keyword search cannot cross languages, so a passage in another language
    than the query never has keyword evidence, however well it answers. A
    dense candidate without keyword match, in another language than a keyword
    hit and close to it in meaning (cosine of language-centered vectors at
    least LEND_MIN_SIMILARITY), gets LEND_SHARE of the best such hit's score.
    Passages in the hit's own language borrow nothing: they lack the words.
    """
    hits = np.asarray(list(keyword_part)[:LEND_DEPTH], np.int64)
    if len(hits) == 0 or indexes.vectors is None:
        return {}
    candidates = np.asarray([c for c in dense_ids[:LEND_DEPTH].tolist() if c not in keyword_part], np.int64)
    if len(candidates) == 0:
        return {}
    similar = indexes.vectors.reconstruct_many(candidates) @ indexes.vectors.reconstruct_many(hits).T
    other_language = indexes.table.lang_of(candidates)[:, None] != indexes.table.lang_of(hits)[None, :]
    lends = (similar >= LEND_MIN_SIMILARITY) & other_language
    return {
        int(chunk_id): LEND_SHARE * keyword_part[int(hits[np.argmax(row)])]
        for chunk_id, row in zip(candidates.tolist(), lends, strict=True) if row.any()
    }


@dataclass
class _ChunkRow:
    id: int
    text: str
    lang: str
    start: int
    end: int
    sentences: list | None


def _masked(row) -> _ChunkRow:
    """A chunk row whose text has its document's personal data replaced by labels (same length: spans hold)."""
    spans = [PiiSpan.from_dict(d) for d in row.personal_data or []]
    text = mask(row.text, spans, row.start) if spans else row.text
    return _ChunkRow(row.id, text, row.lang, row.start, row.end, row.sentences)


@dataclass
class _Group:
    doc_id: int
    chunks: list[tuple[int, float]]  # (chunk id, score), best first


def _group(engine, fused: tuple[np.ndarray, np.ndarray], group: bool, wanted: int) -> list[_Group]:
    ids, scores = fused
    table = engine.indexes.table
    present = table.contains(ids) if len(ids) else np.zeros(0, bool)
    ids, scores = ids[present], scores[present]
    doc_ids = table.doc_of(ids) if len(ids) else np.empty(0, np.int64)
    groups: dict[int, _Group] = {}
    ordered: list[_Group] = []
    for chunk_id, doc_id, score in zip(ids.tolist(), doc_ids.tolist(), scores.tolist(), strict=True):
        if not group:
            ordered.append(_Group(doc_id, [(chunk_id, score)]))
            continue
        if doc_id in groups:
            groups[doc_id].chunks.append((chunk_id, score))
        elif len(ordered) < wanted:
            groups[doc_id] = _Group(doc_id, [(chunk_id, score)])
            ordered.append(groups[doc_id])
    return ordered


def _materialize(
    engine, page: list[_Group], dense: _Ranking, keyword: _Ranking, parts: dict[int, tuple[float, float]],
    terms: set[str], mask_personal_data: bool = False, snippets: bool = True,
) -> list[SearchResult]:
    """Texts, snippets (unless not wanted) and explanations for the page's results (one database round trip)."""
    if not page:
        return []
    wanted = [cid for g in page for cid, _ in g.chunks[: 1 + MAX_PASSAGES]]
    columns = [Chunk.id, Chunk.text, Chunk.lang, Chunk.start, Chunk.end, Chunk.sentences]
    with engine.store.session() as s:
        if mask_personal_data:
            stmt = select(*columns, Document.personal_data).join(Document, Document.id == Chunk.document_id)
            rows = {r.id: _masked(r) for r in s.execute(stmt.where(Chunk.id.in_(wanted)))}
        else:
            rows = {r.id: r for r in s.execute(select(*columns).where(Chunk.id.in_(wanted)))}
    dense_rank = {c: r for r, c in enumerate(dense.ids.tolist(), 1)}
    keyword_rank = {c: r for r, c in enumerate(keyword.ids.tolist(), 1)}
    results = []
    for group in page:
        passages = []
        for chunk_id, score in group.chunks[: 1 + MAX_PASSAGES]:
            row = rows.get(chunk_id)
            if row is None:  # deleted since the indexes were synced
                continue
            snippet = Snippet("")
            if snippets:  # the sentences found at ingest, where the chunk has them
                sentences = [tuple(span) for span in row.sentences] if row.sentences else None
                snippet = make_snippet(row.text, row.lang, terms, engine.analyzer, sentences=sentences)
            passages.append(Passage(chunk_id, row.lang, row.start, row.end, row.text, score, snippet))
        if not passages:
            continue
        info = engine.indexes.table.docs.get(group.doc_id)
        best = passages[0]
        d_rank, k_rank = dense_rank.get(best.chunk_id), keyword_rank.get(best.chunk_id)
        if parts:
            d_part, k_part = parts.get(best.chunk_id, (0.0, 0.0))
            d_part = max(d_part, 0.0)
        else:  # one retriever alone
            d_part, k_part = float(d_rank is not None), float(k_rank is not None)
        results.append(SearchResult(
            doc_id=group.doc_id, title=info.title if info else "", source=info.source if info else "",
            kind=info.kind if info else "", doc_lang=info.lang if info else best.lang, score=best.score,
            best=best, more=passages[1:], more_count=len(group.chunks) - 1,
            dense_rank=d_rank, keyword_rank=k_rank,
            keyword_share=k_part / (d_part + k_part) if d_part + k_part else 0.0,
        ))
    return results
