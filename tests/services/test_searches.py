"""The search log: each person's recent searches, and the knowledge-gap list of searches that found nothing."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import update

from kb.services import searches
from kb.storage.models import SearchLogEntry
from kb.storage.store import Store


def test_recent_searches_are_the_users_own_latest_distinct_ones(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'kb.sqlite3'}")
    for query in ("refund policy", "ลูกค้ารอสายนาน", "Refund policy?", "router drops"):
        searches.record_search(store, "somchai", query, searches.SEARCH, 3)
    searches.record_search(store, "other", "someone else's search", searches.SEARCH, 3)
    searches.record_search(store, "somchai", "a question", searches.ASK, 1)
    assert searches.recent_searches(store, "somchai") == ["router drops", "Refund policy?", "ลูกค้ารอสายนาน"]


def test_gaps_count_the_same_search_once_mask_personal_data_and_forget_old_ones(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'kb.sqlite3'}")
    for user, query in (("a", "warranty for solar panels"), ("b", "Warranty for solar panels?"),
                        ("a", "warranty for solar panels"), ("c", "何时退款"), ("c", "call 081-234-5678 back")):
        searches.record_search(store, user, query, searches.SEARCH, 0)
    searches.record_search(store, "d", "why did the bill double", searches.ASK, 0)
    searches.record_search(store, "d", "refund policy", searches.SEARCH, 5)  # found something: no gap
    gaps = searches.knowledge_gaps(store)
    first = gaps[0]
    assert (first.query, first.times, first.people) == ("warranty for solar panels", 3, 2)  # its latest wording
    assert {g.query for g in gaps} >= {"何时退款", "why did the bill double"}
    assert not any("refund policy" in g.query for g in gaps)
    assert not any("081-234-5678" in g.query for g in gaps)  # an agent pasted a phone number: masked
    with store.session() as s:
        s.execute(update(SearchLogEntry).values(at=dt.datetime.now(dt.UTC) - dt.timedelta(days=200)))
    assert searches.knowledge_gaps(store) == []
    assert searches.prune(store) == 7
