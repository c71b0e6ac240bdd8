"""Customer notes as cases: list and open them, find similar past complaints, count "this helped".

A case is a document of kind `note` with its `Note` row (complaint,
resolution, status, product, channel, date and the customer). Similar cases
are the hybrid search restricted to notes, one result per case, ranked by
similarity (see `case_order`):

1. Relevance is a case's search score over the best one's: 1.0 is the best match.
2. "This helped" lifts a case by `HELP_STEP * log1p(helped)` (relevance units,
   i.e. that share of the best score), at most `HELP_CAP`: enough to reorder
   near-equals, never enough to bury a clearly better match.

Whether a case was resolved is not a sort key: an agent who pastes a
complaint wants the same problem first, and an exact match that is still
open tells them who else is working on it. Resolved or open is shown as a
badge and can be chosen as a filter (`CaseFilters.state`). Sorting resolved
cases first (as this module once did, above a relevance floor of 0.4) put a
100% match in fifth place on the bundled corpus.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import and_, func, not_, select
from sqlalchemy.exc import IntegrityError

from kb.access import OPERATOR, Viewer, visibility_clause
from kb.documents import NOTE, short_source
from kb.index.chunk_table import SearchFilters
from kb.search import weights
from kb.search.pipeline import search_text
from kb.storage.models import CaseFeedback, Document, DocumentTag, Note
from kb.text.privacy import EMAIL, LABELS, NAME, PHONE, mask_personal_data

if TYPE_CHECKING:
    from kb.engine import Engine

# Statuses that mean "solved", compared case-insensitively. The corpus uses
# resolved, open, pending and escalated; imports bring their own words.
RESOLVED_STATUSES = frozenset({"resolved", "closed", "solved", "done", "fixed", "แก้ไขแล้ว", "ปิดเคส",
                               "已解决", "已解決", "已关闭", "已關閉"})
MAX_SIMILAR = 50
MAX_VOTER_CHARS = 128
# The values of the resolved/open filter (`CaseFilters.state`); empty means both.
RESOLVED, OPEN = "resolved", "open"
STATES = (RESOLVED, OPEN)


def is_resolved(status: str, resolution: str) -> bool:
    """Solved, by its status, with a resolution another agent can reuse."""
    return (status or "").strip().casefold() in RESOLVED_STATUSES and bool((resolution or "").strip())


@dataclass
class CaseFilters:
    """What case lists and similar cases can be narrowed to; empty fields narrow nothing."""

    product: str | None = None
    channel: str | None = None
    status: str | None = None
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    state: str | None = None  # RESOLVED, OPEN (anything not resolved), or None for both

    def search_filters(self) -> SearchFilters:
        return SearchFilters(kind=NOTE, product=self.product, channel=self.channel, status=self.status,
                             date_from=self.date_from, date_to=self.date_to)

    def to_dict(self) -> dict:
        out = {k: v for k, v in self.__dict__.items() if v not in (None, "")}
        return {k: v.isoformat() if isinstance(v, dt.date) else v for k, v in out.items()}


@dataclass
class Customer:
    """Who complained. Kept apart so that masking it for those who may not see it happens in one place."""

    name: str
    email: str
    phone: str

    def to_dict(self) -> dict:
        return {"name": self.name, "email": self.email, "phone": self.phone}

    def masked(self) -> Customer:
        """The customer as shown to someone without the `pii` permission: that there is one, nothing more."""
        return Customer(LABELS[NAME] if self.name else "", LABELS[EMAIL] if self.email else "",
                        LABELS[PHONE] if self.phone else "")


@dataclass
class CaseSummary:
    doc_id: int
    note_id: str
    title: str
    lang: str
    date: dt.date | None
    product: str
    channel: str
    status: str
    complaint: str
    resolution: str
    helped: int

    @property
    def resolved(self) -> bool:
        return is_resolved(self.status, self.resolution)

    def to_dict(self) -> dict:
        return {
            "doc_id": self.doc_id, "note_id": self.note_id, "title": self.title, "lang": self.lang,
            "date": self.date.isoformat() if self.date else None, "product": self.product,
            "channel": self.channel, "status": self.status, "resolved": self.resolved,
            "complaint": self.complaint, "resolution": self.resolution, "helped": self.helped,
        }


@dataclass
class Case(CaseSummary):
    """One case whole, with its customer and topics."""

    customer: Customer = field(default_factory=lambda: Customer("", "", ""))
    tags: list[str] = field(default_factory=list)
    source: str = ""

    def to_dict(self) -> dict:
        return {**super().to_dict(), "customer": self.customer.to_dict(), "tags": self.tags, "source": short_source(self.source)}


@dataclass
class SimilarCase(CaseSummary):
    score: float = 0.0      # the search score
    relevance: float = 0.0  # the score over the best one's

    def to_dict(self) -> dict:
        return {**super().to_dict(), "score": round(self.score, 6), "relevance": round(self.relevance, 4)}


@dataclass
class HelpedCount:
    doc_id: int
    helped: int
    counted: bool  # this call added the voter's mark (False: it was there already, or was removed)
    marked: bool   # the voter's mark is there now

    def to_dict(self) -> dict:
        return {"doc_id": self.doc_id, "helped": self.helped, "counted": self.counted, "marked": self.marked}


# -- similar cases ----------------------------------------------------------------


def helped_lift(helped: int) -> float:
    """How much "this helped" adds to a case's relevance: grows with the log of the count, capped."""
    return min(weights.HELP_STEP * math.log1p(max(helped, 0)), weights.HELP_CAP)


def relevance(score: float, best: float) -> float:
    return score / best if best > 0 else (1.0 if score >= best else 0.0)


def case_order(scores: list[float], helped: list[int], best: float | None = None) -> list[int]:
    """Indexes of the candidates in the order to show them: by relevance, lifted a little by "this helped".

    `best` is the score relevance is measured against (default: the best of `scores`).
    """
    best = max(scores, default=0.0) if best is None else best
    rel = [relevance(s, best) for s in scores]
    return sorted(range(len(scores)), key=lambda i: (-(rel[i] + helped_lift(helped[i])), i))


def _in_state(summary: CaseSummary, state: str | None) -> bool:
    return state is None or summary.resolved == (state == RESOLVED)


def similar_cases(
    engine: Engine, text: str, k: int = 10, filters: CaseFilters | None = None, exclude: tuple[int, ...] = (),
    viewer: Viewer = OPERATOR,
) -> list[SimilarCase]:
    """The past cases most like this complaint, in any language, the most similar first.

    Raises `kb.search.types.EmptyQueryError` for an empty text and ValueError for a
    `k` out of range. `exclude` leaves out cases (the one being looked at).
    """
    if not 1 <= k <= MAX_SIMILAR:
        raise ValueError(f"k must be between 1 and {MAX_SIMILAR}")
    filters = filters or CaseFilters()
    if filters.state not in (None, *STATES):
        raise ValueError(f"state must be one of: {', '.join(STATES)} (or empty for both)")
    depth = max(weights.CANDIDATES_PER_RESULT * k, weights.MIN_CANDIDATES) + len(exclude)
    if filters.state:  # resolved or open is known after the search: look at more candidates
        depth *= 2
    response = search_text(engine, text, k=depth, filters=filters.search_filters(), viewer=viewer)
    left_out = set(exclude)
    hits = [hit for hit in response.results if hit.doc_id not in left_out]
    summaries = case_summaries(engine, [hit.doc_id for hit in hits], viewer)
    hits = [hit for hit in hits if hit.doc_id in summaries]  # deleted meanwhile
    # Relevance is measured before the resolved/open filter, so that choosing
    # one leaves every case's percentage as it was.
    best = max((h.score for h in hits), default=0.0)
    hits = [hit for hit in hits if _in_state(summaries[hit.doc_id], filters.state)]
    if not hits:
        return []
    order = case_order([h.score for h in hits], [summaries[h.doc_id].helped for h in hits], best)
    return [
        SimilarCase(**summaries[hits[i].doc_id].__dict__, score=hits[i].score,
                    relevance=relevance(hits[i].score, best))
        for i in order[:k]
    ]


# -- reading cases ------------------------------------------------------------------


def _case_columns():
    return (Document.id, Document.title, Document.lang, Note.note_id, Note.date, Note.product, Note.channel,
            Note.status, Note.complaint, Note.resolution, Note.customer_name, Note.customer_email,
            Note.customer_phone)


def _summary(row, helped: int, viewer: Viewer = OPERATOR) -> CaseSummary:
    """A case's summary; its texts with personal data masked for a viewer who may not see it."""
    complaint, resolution, title = row.complaint or "", row.resolution or "", row.title
    if not viewer.sees_personal_data:
        known = (row.customer_name or "", row.customer_email or "", row.customer_phone or "")
        complaint = mask_personal_data(complaint, *known)
        resolution = mask_personal_data(resolution, *known)
        title = mask_personal_data(title, *known)
    return CaseSummary(
        doc_id=row.id, note_id=row.note_id, title=title, lang=row.lang, date=row.date,
        product=row.product or "", channel=row.channel or "", status=row.status or "",
        complaint=complaint, resolution=resolution, helped=helped,
    )


def helped_counts(engine: Engine, doc_ids: list[int]) -> dict[int, int]:
    if not doc_ids:
        return {}
    with engine.store.session() as s:
        return dict(s.execute(
            select(CaseFeedback.document_id, func.count()).where(CaseFeedback.document_id.in_(doc_ids))
            .group_by(CaseFeedback.document_id)
        ).all())


def case_summaries(engine: Engine, doc_ids: list[int], viewer: Viewer = OPERATOR) -> dict[int, CaseSummary]:
    """The cases among these documents the viewer may see (others are left out), with their "this helped" counts."""
    if not doc_ids:
        return {}
    with engine.store.session() as s:
        rows = s.execute(select(*_case_columns()).join(Note, Note.document_id == Document.id)
                         .where(Document.id.in_(doc_ids), visibility_clause(Document.visibility, viewer.role))).all()
    counts = helped_counts(engine, [r.id for r in rows])
    return {r.id: _summary(r, counts.get(r.id, 0), viewer) for r in rows}


def get_case(engine: Engine, doc_id: int, viewer: Viewer = OPERATOR) -> Case | None:
    """One case, or None when there is no such document, it is not a customer note, or the viewer may not see it."""
    with engine.store.session() as s:
        row = s.execute(
            select(*_case_columns(), Document.source)
            .join(Note, Note.document_id == Document.id)
            .where(Document.id == doc_id, visibility_clause(Document.visibility, viewer.role))
        ).one_or_none()
        if row is None:
            return None
        tags = list(s.scalars(select(DocumentTag.tag).where(DocumentTag.document_id == doc_id)
                              .order_by(DocumentTag.tag)))
    summary = _summary(row, helped_counts(engine, [doc_id]).get(doc_id, 0), viewer)
    customer = Customer(row.customer_name or "", row.customer_email or "", row.customer_phone or "")
    if not viewer.sees_personal_data:
        customer = customer.masked()
    return Case(**summary.__dict__, customer=customer, tags=tags, source=row.source)


def _resolved_clause():
    """`is_resolved` in SQL: a solved status (any case) and a resolution that is not blank."""
    status = func.lower(func.trim(func.coalesce(Note.status, "")))
    return and_(status.in_(sorted(RESOLVED_STATUSES)), func.trim(func.coalesce(Note.resolution, "")) != "")


def _filtered(stmt, filters: CaseFilters):
    if filters.state == RESOLVED:
        stmt = stmt.where(_resolved_clause())
    elif filters.state == OPEN:
        stmt = stmt.where(not_(_resolved_clause()))
    for name in ("product", "channel", "status"):
        value = getattr(filters, name)
        if value:
            stmt = stmt.where(func.lower(getattr(Note, name)) == value.strip().lower())
    if filters.date_from:
        stmt = stmt.where(Note.date >= filters.date_from)
    if filters.date_to:
        stmt = stmt.where(Note.date <= filters.date_to)
    return stmt


def list_cases(
    engine: Engine, filters: CaseFilters | None = None, limit: int = 20, offset: int = 0,
    viewer: Viewer = OPERATOR,
) -> tuple[list[CaseSummary], int]:
    """Cases the viewer may see, newest first (undated ones last), and how many match in all."""
    filters = filters or CaseFilters()
    visible = visibility_clause(Document.visibility, viewer.role)
    stmt = _filtered(select(*_case_columns()).join(Note, Note.document_id == Document.id).where(visible), filters)
    count = _filtered(select(func.count()).select_from(Note).join(Document, Document.id == Note.document_id)
                      .where(visible), filters)
    stmt = stmt.order_by(Note.date.desc().nulls_last(), Document.id.desc()).limit(limit).offset(offset)
    with engine.store.session() as s:
        rows = s.execute(stmt).all()
        total = int(s.scalar(count))
    counts = helped_counts(engine, [r.id for r in rows])
    return [_summary(r, counts.get(r.id, 0), viewer) for r in rows], total


def case_filter_values(engine: Engine) -> dict[str, list[str]]:
    """The products, channels and statuses cases have, for the filter menus."""
    out: dict[str, list[str]] = {}
    with engine.store.session() as s:
        for name in ("product", "channel", "status"):
            column = getattr(Note, name)
            out[name] = sorted(v for v in s.scalars(select(column).distinct()) if v)
    return out


# -- this helped --------------------------------------------------------------------


def _check_voter(voter: str) -> str:
    voter = (voter or "").strip()
    if not voter or len(voter) > MAX_VOTER_CHARS:
        raise ValueError(f"a voter is 1 to {MAX_VOTER_CHARS} characters")
    return voter


def _is_case(s, doc_id: int) -> bool:
    return s.scalar(select(Note.document_id).where(Note.document_id == doc_id)) is not None


def _count(s, doc_id: int) -> int:
    return int(s.scalar(select(func.count()).select_from(CaseFeedback).where(CaseFeedback.document_id == doc_id)))


def mark_helped(engine: Engine, doc_id: int, voter: str) -> HelpedCount | None:
    """Count the voter's "this helped" on a case once; a second click changes nothing. None: no such case."""
    voter = _check_voter(voter)
    with engine.store.session() as s:
        if not _is_case(s, doc_id):
            return None
        counted = s.get(CaseFeedback, (doc_id, voter)) is None
        if counted:
            try:
                with s.begin_nested():
                    s.add(CaseFeedback(document_id=doc_id, voter=voter))
            except IntegrityError:  # the same voter's other click got there first
                counted = False
        return HelpedCount(doc_id, _count(s, doc_id), counted, True)


def unmark_helped(engine: Engine, doc_id: int, voter: str) -> HelpedCount | None:
    """Take the voter's "this helped" back (nothing happens when there was none). None: no such case."""
    voter = _check_voter(voter)
    with engine.store.session() as s:
        if not _is_case(s, doc_id):
            return None
        mark = s.get(CaseFeedback, (doc_id, voter))
        if mark is not None:
            s.delete(mark)
            s.flush()
        return HelpedCount(doc_id, _count(s, doc_id), False, False)


def voter_marks(engine: Engine, voter: str, doc_ids: list[int]) -> set[int]:
    """Which of these cases the voter has marked, to offer "undo" instead of "this helped"."""
    if not doc_ids or not voter:
        return set()
    with engine.store.session() as s:
        return set(s.scalars(select(CaseFeedback.document_id).where(
            CaseFeedback.voter == voter, CaseFeedback.document_id.in_(doc_ids))))

