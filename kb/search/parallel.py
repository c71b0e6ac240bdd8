"""Passages that say the same thing in another language (translations, parallel guidance).

A passage's closest neighbour in another language counts as its parallel when
their cosine reaches `weights.PARALLEL_MIN_SIMILARITY` and, searched back, the
closest passage in the first language is in the first passage's own document
(or none there is closer): two passages on neighbouring subjects often clear the
threshold one way only. Used for "also in" links on results and for parallel
passages in collections.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kb.engine import Engine
from kb.index.chunk_table import SearchFilters
from kb.search import weights

LANGUAGES = ("th", "zh", "en")


@dataclass(frozen=True)
class Anchor:
    """A passage to find parallels of: its language-centered vector, language, document and kind."""

    key: int
    vector: np.ndarray
    lang: str
    doc_id: int | None
    kind: str | None


def parallel_chunks(
    engine: Engine, anchors: list[Anchor], visible_to: str | None = None, min_similarity: float | None = None,
) -> dict[int, list[tuple[int, float]]]:
    """For each anchor (by key), the (chunk id, cosine) of its parallel in each other language that has one.

    Only chunks of documents a reader with role `visible_to` may see are searched (None: all).
    """
    found: dict[int, list[tuple[int, float]]] = {anchor.key: [] for anchor in anchors}
    indexes = engine.indexes
    if not anchors or indexes.vectors is None or len(indexes.vectors) == 0:
        return found
    threshold = weights.PARALLEL_MIN_SIMILARITY if min_similarity is None else min_similarity
    table = indexes.table
    allowed_cache: dict[tuple[str, str | None], np.ndarray] = {}

    def allowed(lang: str, kind: str | None) -> np.ndarray:
        if (lang, kind) not in allowed_cache:
            allowed_cache[lang, kind] = table.ids[table.mask(SearchFilters(lang=lang, kind=kind, visible_to=visible_to))]
        return allowed_cache[lang, kind]

    for anchor in anchors:
        for lang in LANGUAGES:
            if lang == anchor.lang:
                continue
            ids, scores = indexes.vectors.search(anchor.vector, 1, allowed(lang, anchor.kind))
            if len(ids) == 0 or float(scores[0]) < threshold:
                continue
            candidate, score = int(ids[0]), float(scores[0])
            back_ids, back_scores = indexes.vectors.search(
                indexes.vectors.reconstruct(candidate), 1, allowed(anchor.lang, anchor.kind))
            points_back = len(back_ids) == 0 or (
                anchor.doc_id is not None and int(table.doc_of(back_ids)[0]) == anchor.doc_id
            ) or score >= float(back_scores[0]) - 1e-4  # a tie (the anchor's own text) points back too
            if points_back:
                found[anchor.key].append((candidate, score))
    return found


def also_in(engine: Engine, chunk_ids: list[int], visible_to: str | None = None) -> dict[int, list[tuple[str, int, int]]]:
    """For indexed chunks (search results), their parallels as (language, document id, chunk id)."""
    engine.refresh()
    indexes = engine.indexes
    table = indexes.table
    ids = np.asarray(chunk_ids, np.int64)
    if indexes.vectors is None or len(ids) == 0:
        return {}
    ids = ids[table.contains(ids)]
    if len(ids) == 0:
        return {}
    docs, langs = table.doc_of(ids), table.lang_of(ids)
    anchors = []
    for chunk_id, doc_id, lang in zip(ids.tolist(), docs.tolist(), langs.tolist(), strict=True):
        info = table.docs.get(int(doc_id))
        anchors.append(Anchor(chunk_id, indexes.vectors.reconstruct(chunk_id), str(lang), int(doc_id),
                              info.kind if info else None))
    found = parallel_chunks(engine, anchors, visible_to)
    out: dict[int, list[tuple[str, int, int]]] = {}
    for key, matches in found.items():
        if matches:
            match_ids = np.asarray([m for m, _ in matches], np.int64)
            out[key] = [(str(lang), int(doc), int(m)) for m, doc, lang in
                        zip(match_ids.tolist(), table.doc_of(match_ids).tolist(), table.lang_of(match_ids).tolist(),
                            strict=True)]
    return out
