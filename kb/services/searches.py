"""What people search for in the portal: their recent searches, and what the knowledge base could not answer.

The list of searches that found nothing is the knowledge-gap list trainers
write the next guidance from. Queries are kept with personal data masked (an
agent may paste a customer's phone number), cut to 300 characters, and counted
by a folded form so that "Refund?" and "refund" are one gap.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import delete, func, select

from kb.storage.models import SearchLogEntry, utcnow
from kb.storage.store import Store
from kb.text.cleaning import fold
from kb.text.privacy import mask_personal_data

MAX_QUERY_CHARS = 300
KEEP_DAYS = 180
SEARCH, ASK = "search", "ask"


@dataclass(frozen=True)
class Gap:
    """A search nobody found anything for: its latest wording, how often and how recently it was asked."""

    query: str
    kind: str
    times: int
    people: int
    last_at: dt.datetime


def record_search(store: Store, username: str, query: str, kind: str, found: int, lang: str = "") -> None:
    """Log one search (`found`: results shown) or question (`found`: 1 answered, 0 not)."""
    shown = " ".join(mask_personal_data(query or "").split())[:MAX_QUERY_CHARS]
    if not shown:
        return
    with store.session() as s:
        s.add(SearchLogEntry(at=utcnow(), username=username, kind=kind, query=shown, normalized=_normalized(shown),
                             lang=lang or "", found=found))


def recent_searches(store: Store, username: str, limit: int = 8) -> list[str]:
    """The user's latest distinct searches, newest first."""
    newest = func.max(SearchLogEntry.id)
    with store.session() as s:
        rows = s.execute(
            select(SearchLogEntry.normalized, newest).where(SearchLogEntry.username == username,
                                                            SearchLogEntry.kind == SEARCH)
            .group_by(SearchLogEntry.normalized).order_by(newest.desc()).limit(limit)
        ).all()
        ids = [row[1] for row in rows]
        texts = dict(s.execute(select(SearchLogEntry.id, SearchLogEntry.query).where(SearchLogEntry.id.in_(ids))).all())
    return [texts[i] for i in ids if i in texts]


def knowledge_gaps(store: Store, days: int = 30, limit: int = 20) -> list[Gap]:
    """Searches and questions that found nothing in the last `days`, most asked first."""
    since = utcnow() - dt.timedelta(days=days)
    newest = func.max(SearchLogEntry.id)
    with store.session() as s:
        rows = s.execute(
            select(SearchLogEntry.normalized, SearchLogEntry.kind, func.count(), func.count(SearchLogEntry.username.distinct()),
                   func.max(SearchLogEntry.at), newest)
            .where(SearchLogEntry.found == 0, SearchLogEntry.at >= since)
            .group_by(SearchLogEntry.normalized, SearchLogEntry.kind)
            .order_by(func.count().desc(), newest.desc()).limit(limit)
        ).all()
        texts = dict(s.execute(select(SearchLogEntry.id, SearchLogEntry.query)
                               .where(SearchLogEntry.id.in_([row[5] for row in rows]))).all())
    return [Gap(texts.get(row[5], row[0]), row[1], row[2], row[3], row[4]) for row in rows]


def prune(store: Store, keep_days: int = KEEP_DAYS) -> int:
    """Forget searches older than `keep_days`; returns how many."""
    with store.session() as s:
        return s.execute(delete(SearchLogEntry).where(SearchLogEntry.at < utcnow() - dt.timedelta(days=keep_days))).rowcount


def _normalized(query: str) -> str:
    return " ".join(fold(query).casefold().strip(" ?？!！.。").split())[:MAX_QUERY_CHARS]
