"""Query expansion: the query vector moved toward the best passage of a first pass.

A question and a passage in another language are far apart in meaning space,
while two passages on one subject are close whatever their languages; adding
the best passage found first carries a Thai question to the English and
Chinese passages on its subject (see `expand`).
"""

from __future__ import annotations

import numpy as np

from kb.search import weights
from kb.search.fuse import fuse
from kb.search.types import Ranking


def expand(
    engine, vector: np.ndarray, terms: list[str] | None, keyword: Ranking | None, visible: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Add the best passage of an unfiltered first pass to the query vector (pseudo-relevance feedback).

    Returns the expanded vector and the first pass's chunk ids, best first
    (the relevance floor judges the query by them, whatever the filters).

    Unfiltered, except by what the reader may see (`visible`): a hidden
    passage must not steer anyone's results.

    A question and a passage in another language are far apart, but two
    passages on one subject are close whatever their languages. The first pass
    is dense alone, or hybrid when keywords are in play (it finds the right
    passage more often). Measured on XQuAD: cross-language top-1 rose from
    0.70-0.79 to 0.84-0.92 with dense search, same-language top-1 unchanged.
    """
    indexes = engine.indexes
    first = Ranking(*indexes.vectors.search(vector, weights.MIN_DEPTH, visible))
    ids = first.ids
    if terms:
        if keyword is None:
            keyword = Ranking(*indexes.keywords.search(terms, weights.MIN_DEPTH, visible))
        (ids, _), _ = fuse(indexes, vector, first, keyword)
    if len(ids) == 0:
        return vector, ids
    expanded = vector + weights.PRF_WEIGHT * indexes.vectors.reconstruct(int(ids[0]))
    return expanded / max(float(np.linalg.norm(expanded)), 1e-12), ids
