"""Who sees what at the core: visibility inside retrieval, personal data out of the indexes and masked."""

from __future__ import annotations

import pytest

from kb.access import OPERATOR, Viewer, can_grant, can_view, normalize_visibility
from kb.documents import NOTE, DocumentInput, NoteFields
from kb.search.answer import answer_question
from kb.services.catalog import get_document, list_documents, related_documents

PARTNER, EMPLOYEE, AGENT = Viewer("partner"), Viewer("employee"), Viewer("agent")
PHONE = "+66 91 337 6685"


def test_visibility_rules():
    assert can_view("partner", "partner") and not can_view("internal", "partner")
    assert can_view("internal", "employee") and can_view("partner", "employee")
    assert can_view("agent,admin", "agent") and not can_view("agent,admin", "trainer")
    assert can_view("agent,admin", "admin") and can_view("anything", None)
    assert normalize_visibility(" Agent, ADMIN,agent ") == "agent,admin"
    assert normalize_visibility("") == "internal"


def test_a_visibility_is_given_only_by_someone_who_could_read_it():
    assert can_grant("employee", "internal") and can_grant("employee", "partner")
    assert not can_grant("employee", "agent,admin") and not can_grant("employee", "admin")
    assert can_grant("agent", " Agent, Admin") and not can_grant("agent", "trainer")
    assert not can_grant("partner", "internal") and can_grant("partner", "partner")
    assert can_grant("admin", "trainer") and can_grant(None, "anything")


def test_a_document_is_changed_only_by_its_owner_who_still_sees_it_or_an_admin():
    wei = Viewer("agent", "wei")
    assert wei.can_change("wei", "agent") and wei.can_change("wei", "internal")
    assert not wei.can_change("somchai", "internal") and not wei.can_change("", "internal")
    assert not Viewer("employee", "wei").can_change("wei", "agent")  # no longer sees what they own
    assert Viewer("admin", "root").can_change("wei", "agent") and OPERATOR.can_change("", "admin")


@pytest.fixture
def kb(make_kb):
    kb = make_kb()
    guidance = [
        ("shared", "partner", "Partners and we agree on one escalation desk for router outages in the value chain."),
        ("internal", "internal", "Internal escalation rules for router outages: the duty manager decides within an hour."),
        ("agents", "Agent, Admin", "Agents only: the router outage refund may go up to one month of the fee."),
    ]
    docs = [DocumentInput(source=f"mem:{name}", source_file=f"mem:{name}", title=f"Router outages ({name})",
                          text=text, visibility=vis, language="en") for name, vis, text in guidance]
    complaint = f"Router drops every evening, call me back on {PHONE} please, this is Somchai Jaidee."
    note = NoteFields(note_id="N-1", complaint=complaint, resolution="Replaced the router; stable since.",
                      customer_name="Somchai Jaidee", customer_email="somchai@example.co.th",
                      customer_phone=PHONE, product="FiberNet 500", status="resolved")
    docs.append(DocumentInput(source="mem:notes#N-1", source_file="mem:notes", title="N-1 · FiberNet 500",
                              text=f"{complaint}\n\n{note.resolution}", kind=NOTE, note=note, language="en"))
    assert all(o.status == "added" for o in kb.add_documents(docs))
    return kb


def _titles(response) -> set[str]:
    return {r.title for r in response.results}


def test_a_partner_finds_only_what_is_shared_with_partners(kb):
    response = kb.search("router outage escalation", k=10, facets=True, viewer=PARTNER)
    assert _titles(response) == {"Router outages (shared)"}
    assert response.facets["kind"] == {"guidance": 1} and sum(response.facets["lang"].values()) == 1
    assert kb.search("router drops every evening", kind="note", viewer=PARTNER).results == []
    assert _titles(kb.search("router outage", k=10, viewer=EMPLOYEE)) == {
        "Router outages (shared)", "Router outages (internal)", "N-1 · FiberNet 500"}
    assert "Router outages (agents)" in _titles(kb.search("router outage refund", k=10, viewer=AGENT))

    docs, total = list_documents(kb.engine, viewer=PARTNER)
    assert total == 1 and [d.title for d in docs] == ["Router outages (shared)"]
    hidden = next(r.doc_id for r in kb.search("duty manager", k=3).results if "internal" in r.title)
    assert get_document(kb.engine, hidden, PARTNER) is None
    assert get_document(kb.engine, hidden, EMPLOYEE) is not None
    shared = next(r.doc_id for r in kb.search("escalation desk", k=3).results if "shared" in r.title)
    assert all(r.summary.title == "Router outages (shared)" for r in related_documents(kb.engine, shared, 5, False, PARTNER))
    answer = answer_question(kb.engine, "Who decides on router outages within an hour?", viewer=PARTNER)
    assert all(c.title == "Router outages (shared)" for c in answer.citations)


def test_nobody_finds_a_note_by_the_customers_phone_number(kb):
    for viewer in (EMPLOYEE, AGENT):
        for query in (PHONE, "66913376685", "somchai@example.co.th"):
            hits = kb.search(query, mode="keyword", viewer=viewer).results
            assert hits == [], (viewer, query)
    assert kb.search("Somchai Jaidee", mode="keyword").results == []


def test_personal_data_is_masked_for_readers_without_the_pii_permission(kb):
    hit = kb.search("router drops every evening", kind="note", viewer=EMPLOYEE).results[0]
    assert PHONE not in hit.text and "Somchai" not in hit.text and "[phone]" in hit.text
    assert PHONE not in hit.best.snippet.text and "Somchai" not in hit.best.snippet.text
    view = get_document(kb.engine, hit.doc_id, EMPLOYEE)
    assert PHONE not in view.text and "[phone]" in view.text and len(view.text) == len(get_document(kb.engine, hit.doc_id).text)
    assert PHONE not in view.note["complaint"] and "Somchai" not in view.note["complaint"]

    agent_hit = kb.search("router drops every evening", kind="note", viewer=AGENT).results[0]
    assert PHONE in agent_hit.text
    assert PHONE in get_document(kb.engine, hit.doc_id, AGENT).note["complaint"]
