"""Hybrid search, step by step: the orchestration of the modules that follow the data flow.

Every query is cleaned (`kb.search.query`), retrieved by keywords (BM25 on
segmented words) and by meaning (language-centered vectors, the query
expanded with a first pass, `kb.search.expand`), with the filters applied
inside each retriever (`kb.search.retrieve`); the two are fused per chunk by
score (`kb.search.fuse`), grouped per document, read from the database and
explained (`kb.search.results`). This module only calls the steps in order,
deepens the retrieval when grouping needs more candidates, and times them.

Cross-language reach comes from three steps (see `kb.index.centering`,
`kb.search.expand` and `kb.search.fuse.lent_keyword_scores`): vectors are
language-centered, the query vector is expanded with the best passage of a
first, unfiltered pass, which carries a Thai question to the English and
Chinese passages on the same subject, and those passages share part of the
keyword score of the passage they say again.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import TYPE_CHECKING

from kb.access import OPERATOR, Viewer
from kb.documents import KINDS
from kb.index.chunk_table import SearchFilters
from kb.search import weights
from kb.search.query import clean_query, query_language, query_terms
from kb.search.relevance import has_relevant
from kb.search.results import group_chunks, materialize
from kb.search.retrieve import retrieve
from kb.search.types import SearchRequest, SearchResponse

if TYPE_CHECKING:
    from kb.engine import Engine


# Queries are embedded here while the calling thread segments the query and searches the keywords: the model
# runs outside the GIL, so on two cores the two overlap (bundled corpus and 1M chunks: see docs/scaling.md).
_pool: ThreadPoolExecutor | None = None


def _encoding_pool() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="kb-query-encode")
    return _pool


def _forget_pool() -> None:
    """A forked child (a portal worker) has none of its parent's threads: it starts its own pool."""
    global _pool
    _pool = None


os.register_at_fork(after_in_child=_forget_pool)


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
    """One page of results: clean the query, retrieve (deeper until the page fills), group, fetch and explain."""
    timings: dict[str, float] = {}
    clock = time.perf_counter
    query = clean_query(request.query)
    engine.refresh()
    indexes = engine.indexes
    query_lang = query_language(query)
    pending = None
    if request.mode != "keyword" and indexes.vectors is not None and len(indexes.vectors):
        pending = _encoding_pool().submit(_query_vector, engine, query, query_lang, timings)
    terms = query_terms(engine, query)
    filters, visible = request.filters, None
    if request.viewer.role is not None:
        filters = replace(filters, visible_to=request.viewer.role)
        visible = indexes.table.allowed_ids(SearchFilters(visible_to=request.viewer.role))
    allowed = visible if visible is not None and request.filters.is_empty() else indexes.table.allowed_ids(filters)
    response = SearchResponse([], query, query_lang, terms, request.mode, request.filters, False, timings,
                              {} if request.facets else None)
    if allowed is not None and len(allowed) == 0 or len(indexes.table) == 0:
        return response

    depth = max(weights.MIN_DEPTH, weights.DEPTH_PER_RESULT * (request.offset + request.k))
    wanted = request.offset + request.k + 1
    while True:
        fused, dense, keyword, parts, first = retrieve(engine, pending, terms, allowed, depth, request.mode, timings,
                                                       visible, request.filters.lang)
        started = clock()
        groups = group_chunks(engine, fused, request.group, wanted)
        timings["fusion"] = timings.get("fusion", 0.0) + clock() - started
        exhausted = len(fused[0]) < depth or (allowed is not None and depth >= len(allowed))
        if len(groups) >= wanted or exhausted or depth >= len(indexes.table):
            break
        depth *= 4
    vector = pending.result() if pending is not None else None
    if vector is not None and not has_relevant(engine, vector, terms, first):
        groups = []  # nothing the reader may see is about the query: say so rather than pad the page
    page = groups[request.offset : request.offset + request.k]
    response.has_more = len(groups) > request.offset + request.k
    started = clock()
    response.results = materialize(engine, page, dense, keyword, parts, set(terms),
                                   mask_personal_data=not request.viewer.sees_personal_data,
                                   snippets=request.snippets)
    timings["fetch"] = clock() - started
    if request.facets:
        response.facets = indexes.table.facet_counts(fused[0][indexes.table.contains(fused[0])])
    return response


def _query_vector(engine: Engine, query: str, query_lang: str, timings: dict[str, float]):
    started = time.perf_counter()
    vector = engine.indexes.center_query(engine.embedder.encode_query(query), query_lang)
    timings["encode"] = time.perf_counter() - started
    return vector
