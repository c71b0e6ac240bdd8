"""Relevance floor: a search with nothing relevant says so instead of padding the page.

Fusion ranks by z-scores and relative keyword scores, so it always has a
"best" result, even for `xyzzyqwerty`. Relevance here is absolute: the
cosine of the query's own (unexpanded, language-centered) vector with the
passage, plus a share of the query's keyword weight (idf) the passage holds,
so a passage that matches only a common word ("customer") counts for little
and one that holds every word of the query counts on its own. A query whose best passages fall
below weights.QUERY_FLOOR gets no results. A relevant query keeps its whole
ranking: a result lower down may be the same subject in another language,
whose cosine is lower by nature. The floor is fitted with bench/realq.py
(our own questions as staff ask them, and off-topic queries in the three
languages).
"""

from __future__ import annotations

import numpy as np

from kb.search import weights


def relevance(engine, vector: np.ndarray | None, terms: list[str], chunk_ids: list[int]) -> np.ndarray:
    """Absolute relevance of each chunk: its cosine with the query plus a share of the query's idf it holds."""
    indexes = engine.indexes
    ids = np.asarray(chunk_ids, np.int64)
    scores = np.zeros(len(ids), np.float32)
    if len(ids) == 0:
        return scores
    if vector is not None and indexes.vectors is not None:
        scores += indexes.vectors.reconstruct_many(ids) @ vector
    if terms:
        idf = indexes.keywords.idf(terms)
        weight = np.asarray(list(idf.values()), np.float32)
        if weight.sum() > 0:
            held = indexes.keywords.holds(list(idf), ids) @ weight
            scores += weights.KEYWORD_RELEVANCE_WEIGHT * held / weight.sum()
    return scores


def has_relevant(engine, vector: np.ndarray, terms: list[str], first_ids: np.ndarray) -> bool:
    """Whether the best passages of the unfiltered first pass reach weights.QUERY_FLOOR.

    Judged before the filters, so a narrow filter (one language, one product)
    still shows its best matches for a query that is about something we know;
    and only where the knowledge base has language centroids: without them
    every cosine of this model lies between 0.7 and 0.9 whatever the texts say.
    """
    if engine.indexes.centroids.overall is None or len(first_ids) == 0:
        return True
    scores = relevance(engine, vector, terms, first_ids[:weights.FLOOR_DEPTH].tolist())
    return float(scores.max()) >= weights.QUERY_FLOOR
