"""Fusion: one ranking from the dense and the keyword candidates, by score.

Keyword search finds exact terms (product codes, names, "SBU") but cannot
cross languages; dense search crosses languages but misses exact terms. This
module decides how much each side counts (`fuse`), and how a passage in
another language borrows the keyword evidence of the passage it says again
(`lent_keyword_scores`). Its weights are in `kb.search.weights`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kb.search import weights
from kb.search.types import Ranking


@dataclass(frozen=True)
class Scale:
    """What fused scores are measured against: the dense head's mean and spread, and the best BM25 score.

    Taken from the search without filters (the reader's rights aside), so a
    filter only removes results and never reorders the ones it keeps.
    """

    mean: float
    spread: float
    keyword_top: float


def scale_of(dense: Ranking, keyword: Ranking) -> Scale:
    head = dense.scores[:weights.MIN_DEPTH]
    mean, spread = (float(np.mean(head)), float(np.std(head)) or 1.0) if len(head) else (0.0, 1.0)
    return Scale(mean, spread, float(keyword.scores[0]) if len(keyword.scores) else 0.0)


def fuse(indexes, vector: np.ndarray, dense: Ranking, keyword: Ranking, scale: Scale | None = None):
    """Fused ranking of the union of both candidate lists: ((ids, scores), {chunk id: (dense part, keyword part)}).

    A chunk scores weights.DENSE_WEIGHT times its cosine as a z-score among
    the best weights.MIN_DEPTH dense candidates, plus weights.KEYWORD_WEIGHT
    times its BM25 score over the best BM25 score. Scores rather than ranks,
    because a rank says nothing of how good a hit is: with reciprocal rank
    fusion every weak keyword match outranked a strong passage in another
    language, and on XQuAD score fusion found the right paragraph first more
    often in every language (see the bench). Keyword-only candidates get their
    exact cosine from the index. `scale` (see `Scale`) defaults to these lists' own.
    """
    keyword_part: dict[int, float] = {}
    top = scale.keyword_top if scale and scale.keyword_top > 0 else float(keyword.scores[0]) if len(keyword.ids) else 0.0
    if len(keyword.ids) and top > 0:
        keyword_part = {
            c: weights.KEYWORD_WEIGHT * v / top for c, v in zip(keyword.ids.tolist(), keyword.scores.tolist(), strict=True)
        }
        keyword_part.update(lent_keyword_scores(indexes, dense.ids, keyword_part))
    cosine = dict(zip(dense.ids.tolist(), dense.scores.tolist(), strict=True))
    missing = np.asarray([c for c in keyword_part if c not in cosine], np.int64)
    if len(missing):
        cosine.update(zip(missing.tolist(), (indexes.vectors.reconstruct_many(missing) @ vector).tolist(), strict=True))
    if not cosine and not keyword_part:
        return (np.empty(0, np.int64), np.empty(0, np.float32)), {}
    if scale is not None:
        mean, spread = scale.mean, scale.spread
    else:
        head = dense.scores[:weights.MIN_DEPTH] if len(dense.scores) else np.asarray(list(cosine.values()), np.float32)
        mean, spread = float(np.mean(head)), float(np.std(head)) or 1.0
    parts = {
        c: (weights.DENSE_WEIGHT * (value - mean) / spread, keyword_part.get(c, 0.0)) for c, value in cosine.items()
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
    least weights.LEND_MIN_SIMILARITY), gets weights.LEND_SHARE of
    the best such hit's score. Passages in the hit's own language borrow
    nothing: they lack the words.
    """
    hits = np.asarray(list(keyword_part)[:weights.LEND_DEPTH], np.int64)
    if len(hits) == 0 or indexes.vectors is None:
        return {}
    candidates = np.asarray([c for c in dense_ids[:weights.LEND_DEPTH].tolist() if c not in keyword_part], np.int64)
    if len(candidates) == 0:
        return {}
    similar = indexes.vectors.reconstruct_many(candidates) @ indexes.vectors.reconstruct_many(hits).T
    other_language = indexes.table.lang_of(candidates)[:, None] != indexes.table.lang_of(hits)[None, :]
    lends = (similar >= weights.LEND_MIN_SIMILARITY) & other_language
    return {
        int(chunk_id): weights.LEND_SHARE * keyword_part[int(hits[np.argmax(row)])]
        for chunk_id, row in zip(candidates.tolist(), lends, strict=True) if row.any()
    }
