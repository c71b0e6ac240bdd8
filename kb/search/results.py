"""Results: fused chunks grouped per document, their rows fetched, masked, and explained.

Ranking works on chunk ids alone; only the page that is shown is read from
the database (one round trip), with customers' personal data masked for
readers who may not see it, snippets made, and each result saying how much
of its rank came from keywords and how much from meaning.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sqlalchemy import select

from kb.search import weights
from kb.search.snippets import Snippet, make_snippet
from kb.search.types import Passage, Ranking, SearchResult
from kb.storage.models import Chunk, Document
from kb.text.privacy import PiiSpan, mask


@dataclass
class _ChunkRow:
    id: int
    text: str
    lang: str
    start: int
    end: int
    sentences: list | None
    headings: list | None


def _masked(row) -> _ChunkRow:
    """A chunk row whose text has its document's personal data replaced by labels (same length: spans hold)."""
    spans = [PiiSpan.from_dict(d) for d in row.personal_data or []]
    text = mask(row.text, spans, row.start) if spans else row.text
    return _ChunkRow(row.id, text, row.lang, row.start, row.end, row.sentences, row.headings)


@dataclass
class _Group:
    doc_id: int
    chunks: list[tuple[int, float]]  # (chunk id, score), best first


def group_chunks(engine, fused: tuple[np.ndarray, np.ndarray], group: bool, wanted: int) -> list[_Group]:
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


def materialize(
    engine, page: list[_Group], dense: Ranking, keyword: Ranking, parts: dict[int, tuple[float, float]],
    terms: set[str], mask_personal_data: bool = False, snippets: bool = True,
) -> list[SearchResult]:
    """Texts, snippets (unless not wanted) and explanations for the page's results (one database round trip)."""
    if not page:
        return []
    wanted = [cid for g in page for cid, _ in g.chunks[: 1 + weights.MAX_PASSAGES]]
    columns = [Chunk.id, Chunk.text, Chunk.lang, Chunk.start, Chunk.end, Chunk.sentences, Chunk.headings]
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
        for chunk_id, score in group.chunks[: 1 + weights.MAX_PASSAGES]:
            row = rows.get(chunk_id)
            if row is None:  # deleted since the indexes were synced
                continue
            snippet = Snippet("")
            if snippets:  # the sentences found at ingest, where the chunk has them
                sentences = [tuple(span) for span in row.sentences] if row.sentences else None
                snippet = make_snippet(row.text, row.lang, terms, engine.analyzer, sentences=sentences)
            passages.append(Passage(chunk_id, row.lang, row.start, row.end, row.text, score, snippet,
                                    list(row.headings or [])))
        if not passages:
            continue
        info = engine.indexes.table.docs.get(group.doc_id)
        for passage in passages:
            passage.title = info.title if info else ""
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
