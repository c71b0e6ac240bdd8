"""Retrieval: candidates from the keyword index and the vector index, then fused.

Both retrievers run with the filters and the reader's rights applied inside
them (`allowed`), at a depth the pipeline raises when grouping needs more;
the dense side searches with the expanded query vector (`kb.search.expand`),
and the two candidate lists are fused by score (`kb.search.fuse`).
"""

from __future__ import annotations

import time
from concurrent.futures import Future

import numpy as np

from kb.search import weights
from kb.search.expand import expand
from kb.search.fuse import fuse, scale_of
from kb.search.types import Ranking


def retrieve(engine, vector, terms, allowed, depth, mode, timings, visible=None, lang=None):
    """(fused ids, fused scores), the dense ranking, the keyword ranking, each chunk's (dense, keyword) parts,
    and the chunk ids of the unfiltered first pass (best first; empty without a query vector).

    `allowed` are the chunks the filters and the reader's rights allow, `visible` those the rights alone allow;
    `lang`, the language filter if any, lets the keyword index cut along one posting list first.
    """
    indexes = engine.indexes
    clock = time.perf_counter
    keyword = dense = Ranking.empty()
    first = np.empty(0, np.int64)
    if mode != "dense" and terms:
        started = clock()
        keyword = Ranking(*indexes.keywords.search(terms, depth, allowed, lang))
        timings["keyword search"] = timings.get("keyword search", 0.0) + clock() - started
    if isinstance(vector, Future):  # being encoded meanwhile (kb.search.pipeline)
        started = clock()
        vector = vector.result()
        timings["encode wait"] = timings.get("encode wait", 0.0) + clock() - started
    if vector is not None:
        started = clock()
        reuse = keyword if allowed is None or allowed is visible else None
        expanded, first = expand(engine, vector, terms if mode == "hybrid" else None, reuse, visible)
        dense = Ranking(*indexes.vectors.search(expanded, depth, allowed))
        timings["vector search"] = timings.get("vector search", 0.0) + clock() - started
    if mode == "dense":
        return (dense.ids, dense.scores), dense, keyword, {}, first
    if mode == "keyword":
        return (keyword.ids, keyword.scores), dense, keyword, {}, first
    started = clock()
    scale = None
    if allowed is not None and allowed is not visible:  # filtered: measure against the unfiltered search
        scale = scale_of(Ranking(*indexes.vectors.search(expanded, weights.MIN_DEPTH, visible)),
                         Ranking(*indexes.keywords.search(terms, 1, visible)) if terms else Ranking.empty())
    fused, parts = fuse(indexes, expanded, dense, keyword, scale)
    timings["fusion"] = timings.get("fusion", 0.0) + clock() - started
    return fused, dense, keyword, parts, first
