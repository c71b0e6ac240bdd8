"""Cases for support agents: similar past complaints across languages, "this helped", the case list, note import.

Read-only checks run on a copy of the corpus knowledge base (guidance and
notes); anything that marks cases shares that copy but removes its marks
afterwards; imports get an empty knowledge base of their own.
"""

from __future__ import annotations

import datetime as dt
import io
import itertools
import json
import re
import shutil
from pathlib import Path

import pytest
from sqlalchemy import delete, func, select, text

from indexer.note_import import check_import, guess_mapping, import_notes, read_table, stored_path
from kb.config import Settings
from kb.knowledge_base import KnowledgeBase
from kb.search.types import EmptyQueryError
from kb.search.weights import HELP_CAP
from kb.services.cases import (
    CaseFilters,
    case_order,
    get_case,
    helped_lift,
    list_cases,
    mark_helped,
    similar_cases,
    unmark_helped,
)
from kb.storage.models import CaseFeedback, Document, Note
from tests.portal_client import signed_in
from tests.webapp.test_api import check
from webapp import create_app

# Recurring problems of the corpus (corpus/notes), each told in several languages.
ROUTER_DROPS = {"N-2024-0037", "N-2024-0038", "N-2024-0043", "N-2024-0046", "N-2024-0047", "N-2025-0003",
                "N-2025-0004", "N-2025-0014", "N-2025-0022", "N-2025-0035", "N-2025-0041", "N-2025-0059",
                "N-2025-0087"}
DOUBLE_CHARGES = {"N-2024-0010", "N-2024-0028", "N-2024-0036", "N-2024-0061", "N-2024-0065", "N-2024-0077",
                  "N-2025-0029", "N-2025-0032", "N-2025-0050", "N-2025-0054", "N-2025-0058", "N-2025-0063",
                  "N-2025-0073", "N-2025-0083"}
TV_FREEZES = {"N-2024-0054", "N-2024-0078", "N-2024-0083", "N-2025-0005", "N-2025-0007", "N-2025-0013",
              "N-2025-0030", "N-2025-0045", "N-2025-0049", "N-2025-0053", "N-2025-0061", "N-2025-0069"}
# New complaints, in the words of agents, that are in no corpus file.
THAI_ROUTER = "เน็ตหลุดทุกคืน เราเตอร์ FN-500 ไฟแดงกระพริบ รีสตาร์ทแล้วก็ไม่หาย"
THAI_DOUBLE_CHARGE = "โดนตัดเงินค่าเน็ตสองครั้งในวันเดียว ขอเงินคืนด้วย"
CHINESE_TV_FREEZE = "电视盒子老是卡住不动，只能拔电源"

HEADER = "Ticket ID,Opened on,Customer,E-mail,Mobile,Via,Service,Description,Solution,State,Labels"
ROWS = [
    'T-1,2024-05-02,Ann Lee,ann@example.com,+44 7700 900001,phone,FiberNet 500,"Router drops every evening, red light",'
    "Firmware updated and Wi-Fi channel changed,resolved,device-fault",
    "T-2,2024-05-03,Somchai,som@example.co.th,0812345678,line,MobiCare SIM,ซิมใหม่ใช้ไม่ได้หลังย้ายค่าย,"
    "ส่งคำขอย้ายค่ายใหม่,open,account",
    "T-3,2024/05/04,王芳,wang@example.cn,13800000000,wechat,TVPlus 4K Box,盒子看直播卡死,恢复出厂设置后正常,resolved,"
    "device-fault;tv",
]


def notes_csv(rows=ROWS, header=HEADER) -> bytes:
    return ("\n".join([header, *rows]) + "\n").encode("utf-8")


@pytest.fixture(scope="module")
def cases_kb(corpus_data_dir, models_dir, embedder, tmp_path_factory):
    """A copy of the corpus knowledge base this module may write to."""
    data_dir = tmp_path_factory.mktemp("cases") / "data"
    shutil.copytree(corpus_data_dir, data_dir, ignore=shutil.ignore_patterns("*.lock"))
    kb = KnowledgeBase.open(Settings(data_dir=data_dir, models_dir=models_dir), embedder=embedder)
    yield kb
    kb.close()


@pytest.fixture
def kb(cases_kb):
    """The corpus copy, with every "this helped" taken back afterwards so tests stay independent."""
    yield cases_kb
    with cases_kb.store.session() as s:
        s.execute(delete(CaseFeedback))


@pytest.fixture(scope="module")
def cases_app(cases_kb):
    return create_app({"KB_INSTANCE": cases_kb, "TESTING": True, "KB_WARM_UP": False})


@pytest.fixture
def client(cases_app, kb):
    return signed_in(cases_app)


@pytest.fixture
def empty(make_kb):
    """(test client, knowledge base) on an empty knowledge base, for imports."""
    kb = make_kb()
    app = create_app({"KB_INSTANCE": kb, "TESTING": True, "KB_WARM_UP": False})
    return signed_in(app), kb


def doc_id_of(kb, note_id: str) -> int:
    with kb.store.session() as s:
        return s.scalar(select(Note.document_id).where(Note.note_id == note_id))


def guidance_id(kb) -> int:
    with kb.store.session() as s:
        return s.scalar(select(Document.id).where(Document.kind == "guidance").limit(1))


def document_count(kb) -> int:
    with kb.store.session() as s:
        return s.scalar(select(func.count(Document.id)))


# -- similar cases across languages -------------------------------------------------------------


@pytest.mark.parametrize(("complaint", "problem", "lang", "top"), [
    (THAI_ROUTER, ROUTER_DROPS, "en", 5),
    (THAI_DOUBLE_CHARGE, DOUBLE_CHARGES, "en", 8),
    (CHINESE_TV_FREEZE, TV_FREEZES, "en", 5),
])
def test_a_new_complaint_finds_the_same_problem_resolved_in_another_language(kb, complaint, problem, lang, top):
    results = similar_cases(kb.engine, complaint, k=10)
    assert [c.note_id for c in results[:3] if c.note_id in problem] != [], "the same problem leads the results"
    found = [c for c in results[:top] if c.lang == lang and c.resolved and c.note_id in problem]
    assert found, [(c.note_id, c.lang, c.status) for c in results[:top]]
    assert found[0].resolution.strip()


def test_similar_cases_are_only_customer_notes_with_their_fields(kb):
    results = similar_cases(kb.engine, "customer waited on hold for forty minutes", k=10)
    assert len(results) == 10 and len({c.doc_id for c in results}) == 10
    with kb.store.session() as s:
        kinds = set(s.scalars(select(Document.kind).where(Document.id.in_([c.doc_id for c in results]))))
    assert kinds == {"note"}
    first = results[0]
    assert first.complaint and first.product and first.channel and first.date and first.score > 0
    assert max(c.relevance for c in results) == 1.0


def test_similar_cases_follow_the_filters(kb):
    results = similar_cases(kb.engine, THAI_ROUTER, k=10, filters=CaseFilters(product="fibernet 500", status="resolved"))
    assert results and {(c.product, c.status) for c in results} == {("FiberNet 500", "resolved")}
    dated = similar_cases(kb.engine, THAI_ROUTER, k=10,
                          filters=CaseFilters(date_from=dt.date(2025, 1, 1), date_to=dt.date(2025, 6, 30)))
    assert dated and all("2025-01-01" <= c.date.isoformat() <= "2025-06-30" for c in dated)


def test_empty_complaint_and_bad_k_are_refused(kb):
    with pytest.raises(EmptyQueryError):
        similar_cases(kb.engine, "   ")
    for k in (0, 51):
        with pytest.raises(ValueError, match="k"):
            similar_cases(kb.engine, "router", k=k)


def test_a_case_can_be_left_out_of_its_own_similar_cases(kb):
    own = doc_id_of(kb, "N-2024-0047")
    results = similar_cases(kb.engine, get_case(kb.engine, own).complaint, k=5, exclude=(own,))
    assert own not in {c.doc_id for c in results}
    assert {c.note_id for c in results} & ROUTER_DROPS


# -- ranked by similarity; resolved or open is a filter -------------------------------------------


def test_cases_are_ranked_by_similarity_whatever_their_status():
    # An exact open match stays first before a weaker resolved case (case_order knows no status).
    assert case_order([10.0, 6.0, 3.5, 2.0], [0, 0, 0, 0]) == [0, 1, 2, 3]
    assert case_order([2.0, 10.0, 6.0], [0, 0, 0]) == [1, 2, 0]


def test_a_pasted_complaint_of_an_open_case_finds_that_case_first_at_100_percent(kb):
    own = get_case(kb.engine, doc_id_of(kb, "N-2024-0047"))
    assert not own.resolved, "the test needs an open case: it once came fifth, after resolved ones"
    results = similar_cases(kb.engine, own.complaint, k=10)
    assert results[0].doc_id == own.doc_id and results[0].relevance == 1.0
    assert [c.relevance for c in results] == sorted((c.relevance for c in results), reverse=True)
    assert any(c.resolved for c in results[1:]), "resolved cases are still there, in their place"


def test_on_the_corpus_the_closest_case_comes_first_and_status_does_not_reorder(kb):
    results = similar_cases(kb.engine, THAI_ROUTER, k=10)
    assert [c.relevance for c in results] == sorted((c.relevance for c in results), reverse=True)
    exact = results[0]
    assert exact.note_id == "N-2024-0047" and exact.relevance == 1.0 and not exact.resolved


def test_resolved_or_open_filters_similar_cases_and_keeps_their_relevance(kb):
    everything = {c.doc_id: c.relevance for c in similar_cases(kb.engine, THAI_ROUTER, k=20)}
    resolved = similar_cases(kb.engine, THAI_ROUTER, k=10, filters=CaseFilters(state="resolved"))
    still_open = similar_cases(kb.engine, THAI_ROUTER, k=10, filters=CaseFilters(state="open"))
    assert resolved and all(c.resolved for c in resolved)
    assert still_open and not any(c.resolved for c in still_open)
    assert still_open[0].note_id == "N-2024-0047"
    for c in resolved + still_open:
        if c.doc_id in everything:
            assert c.relevance == pytest.approx(everything[c.doc_id])
    with pytest.raises(ValueError, match="state"):
        similar_cases(kb.engine, THAI_ROUTER, filters=CaseFilters(state="maybe"))


def test_the_case_list_filters_resolved_and_open(kb):
    _, total = list_cases(kb.engine, limit=1)
    resolved, n_resolved = list_cases(kb.engine, CaseFilters(state="resolved"), limit=200)
    still_open, n_open = list_cases(kb.engine, CaseFilters(state="open"), limit=200)
    assert n_resolved + n_open == total and n_resolved and n_open
    assert all(c.resolved for c in resolved) and not any(c.resolved for c in still_open)


# -- this helped ------------------------------------------------------------------------------------


def test_this_helped_counts_once_per_voter_and_can_be_taken_back(kb):
    doc_id = doc_id_of(kb, "N-2025-0041")
    first = mark_helped(kb.engine, doc_id, "browser:a")
    again = mark_helped(kb.engine, doc_id, "browser:a")
    other = mark_helped(kb.engine, doc_id, "client:b")
    assert (first.helped, first.counted, again.helped, again.counted) == (1, True, 1, False)
    assert (other.helped, other.counted, other.marked) == (2, True, True)
    assert get_case(kb.engine, doc_id).helped == 2
    taken_back = unmark_helped(kb.engine, doc_id, "browser:a")
    assert (taken_back.helped, taken_back.marked) == (1, False)
    assert unmark_helped(kb.engine, doc_id, "browser:a").helped == 1  # nothing left to take back
    assert mark_helped(kb.engine, 10**9, "browser:a") is None
    assert mark_helped(kb.engine, guidance_id(kb), "browser:a") is None
    with pytest.raises(ValueError):
        mark_helped(kb.engine, doc_id, "")


def test_the_lift_of_this_helped_is_bounded():
    assert helped_lift(0) == 0 < helped_lift(1) < helped_lift(10) < helped_lift(1000) == HELP_CAP
    # One click on a weak match never passes a clearly better one, nor does any number of clicks.
    assert case_order([10.0, 5.0], [0, 1]) == [0, 1]
    assert case_order([10.0, 5.0], [0, 10**6]) == [0, 1]
    # Many clicks on a close second lift it above the first.
    assert case_order([10.0, 9.7], [0, 1]) == [0, 1]
    assert case_order([10.0, 9.7], [0, 20]) == [1, 0]


def test_on_the_corpus_one_click_does_not_bury_a_better_match_and_many_lift_a_close_second(kb):
    before = similar_cases(kb.engine, THAI_ROUTER, k=10)
    tail = before  # ordered by relevance
    weak = tail[-1]
    better = next(c for c in tail if c.relevance >= weak.relevance + 2 * HELP_CAP)
    mark_helped(kb.engine, weak.doc_id, "browser:one")
    after = [c.doc_id for c in similar_cases(kb.engine, THAI_ROUTER, k=10)]
    assert after.index(better.doc_id) < after.index(weak.doc_id)
    unmark_helped(kb.engine, weak.doc_id, "browser:one")

    pairs = [(a, b) for a, b in itertools.pairwise(tail) if 0 < a.relevance - b.relevance < helped_lift(20) * 0.9]
    assert pairs, "the corpus has near-equal cases"
    above, second = pairs[0]
    for n in range(20):
        mark_helped(kb.engine, second.doc_id, f"browser:{n}")
    lifted = similar_cases(kb.engine, THAI_ROUTER, k=10)
    ids = [c.doc_id for c in lifted]
    assert ids.index(second.doc_id) < ids.index(above.doc_id)
    assert next(c for c in lifted if c.doc_id == second.doc_id).helped == 20


# -- the case list and one case ---------------------------------------------------------------------


def test_case_list_is_newest_first_and_filtered(kb):
    items, total = list_cases(kb.engine, limit=200)
    assert total == 173 and len(items) == 173
    dates = [c.date for c in items]
    assert dates == sorted(dates, reverse=True)
    resolved, count = list_cases(kb.engine, CaseFilters(product="FiberNet 500", status="Resolved"), limit=200)
    assert count == len(resolved) > 0 and {(c.product, c.status) for c in resolved} == {("FiberNet 500", "resolved")}
    window, _ = list_cases(kb.engine, CaseFilters(channel="line", date_from=dt.date(2025, 1, 1)), limit=200)
    assert window and all(c.channel == "line" and c.date >= dt.date(2025, 1, 1) for c in window)
    page2, _ = list_cases(kb.engine, limit=10, offset=10)
    assert [c.doc_id for c in page2] == [c.doc_id for c in items[10:20]]


def test_a_case_has_its_customer_and_a_guidance_document_is_no_case(kb):
    case = get_case(kb.engine, doc_id_of(kb, "N-2024-0001"))
    assert case.customer.name == "Jordan Whitlock" and case.customer.email == "jordan_whitlock@example.com"
    assert case.customer.phone == "(555) 012-0224"
    assert case.status == "resolved" and case.resolved and case.tags == ["slow-speed"]
    assert get_case(kb.engine, guidance_id(kb)) is None and get_case(kb.engine, 10**9) is None


# -- import with a column mapping -------------------------------------------------------------------


def test_renamed_columns_are_guessed_and_imported_with_sources_like_kb_ingest(make_kb):
    kb = make_kb()
    data = notes_csv()
    table = read_table("crm-export.csv", data)
    mapping = guess_mapping(table.columns)
    assert mapping == {"id": "Ticket ID", "date": "Opened on", "customer_name": "Customer", "customer_email": "E-mail",
                       "customer_phone": "Mobile", "channel": "Via", "product": "Service",
                       "complaint": "Description", "resolution": "Solution", "status": "State", "tags": "Labels"}
    target = stored_path(kb.settings.data_dir, "crm-export.csv")
    report = import_notes(kb.engine, check_import(table, mapping, str(target)), data)
    assert report.ok and (report.rows, report.valid, report.added) == (3, 3, 3)
    assert target.read_bytes() == data
    items, total = list_cases(kb.engine)
    assert total == 3
    case = get_case(kb.engine, next(c.doc_id for c in items if c.note_id == "T-3"))
    assert (case.product, case.status, case.date.isoformat(), case.customer.name) == (
        "TVPlus 4K Box", "resolved", "2024-05-04", "王芳")
    assert case.source == f"{target}#T-3" and case.tags == ["device-fault", "tv"]
    # The same file again: nothing added twice; a changed row is updated.
    again = import_notes(kb.engine, check_import(read_table("crm-export.csv", data), mapping, str(target)), data)
    assert (again.added, again.updated, again.skipped) == (0, 0, 3) and document_count(kb) == 3
    changed = notes_csv([ROWS[0].replace(",resolved,", ",closed,"), *ROWS[1:]])
    third = import_notes(kb.engine, check_import(read_table("crm-export.csv", changed), mapping, str(target)), changed)
    assert (third.added, third.updated, third.skipped) == (0, 1, 2) and document_count(kb) == 3


def test_jsonl_with_its_own_keys_is_imported_by_line(make_kb):
    kb = make_kb()
    lines = [{"ticket": 7, "text": "OTP never arrives on my new phone", "solution": "Sender unblocked", "state": "done"},
             {"ticket": 8, "text": "วอลเล็ตเติมเงินไม่เข้า", "labels": ["app", "refund"]}]
    data = "\n".join(json.dumps(x, ensure_ascii=False) for x in lines).encode()
    table = read_table("export.jsonl", data)
    assert table.columns == ["ticket", "text", "solution", "state", "labels"]
    mapping = guess_mapping(table.columns)
    assert mapping == {"id": "ticket", "complaint": "text", "resolution": "solution", "status": "state",
                       "tags": "labels"}
    report = import_notes(kb.engine, check_import(table, mapping, str(stored_path(kb.settings.data_dir, "export.jsonl"))),
                          data)
    assert report.ok and report.added == 2
    case = get_case(kb.engine, next(c.doc_id for c in list_cases(kb.engine)[0] if c.note_id == "7"))
    assert case.resolved and case.resolution == "Sender unblocked"


def test_a_file_without_a_complaint_column_is_refused_and_nothing_is_written(make_kb):
    kb = make_kb()
    good = notes_csv()
    import_notes(kb.engine, check_import(read_table("a.csv", good), guess_mapping(read_table("a.csv", good).columns),
                                  str(stored_path(kb.settings.data_dir, "a.csv"))), good)
    before = document_count(kb)
    header = HEADER.replace("Description", "Remarks-ignored").replace("Solution", "Fix")
    data = notes_csv([r.replace("T-", "U-") for r in ROWS], header)
    table = read_table("b.csv", data)
    mapping = guess_mapping(table.columns)
    assert "complaint" not in mapping
    report = import_notes(kb.engine, check_import(table, mapping, str(stored_path(kb.settings.data_dir, "b.csv"))), data)
    assert not report.ok and report.imported == 0
    assert [(p.row, p.field) for p in report.problems] == [(None, "complaint")]
    assert "complaint" in report.problems[0].message and "required" in report.problems[0].message
    assert document_count(kb) == before
    assert not stored_path(kb.settings.data_dir, "b.csv").exists()


def test_one_bad_row_is_named_by_row_and_field_and_nothing_is_written(make_kb):
    kb = make_kb()
    rows = [*ROWS, "T-4,31/02/2024,,,,,,The box is dead,,open,", ",2024-06-01,,,,,,No id on this one,,open,"]
    data = notes_csv(rows)
    table = read_table("bad.csv", data)
    report = import_notes(kb.engine, check_import(table, guess_mapping(table.columns),
                                           str(stored_path(kb.settings.data_dir, "bad.csv"))), data)
    assert not report.ok and report.rows == 5 and report.imported == 0
    found = [(p.row, p.field, p.column) for p in report.problems]
    assert found == [(5, "date", "Opened on"), (6, "id", "Ticket ID")]  # spreadsheet rows: the header is row 1
    assert "31/02/2024" in report.problems[0].message
    assert document_count(kb) == 0


def test_when_the_database_refuses_one_note_none_of_them_stays(make_kb):
    kb = make_kb()
    with kb.store.engine.begin() as conn:
        if kb.store.url.startswith("sqlite"):
            conn.execute(text("CREATE TRIGGER refuse BEFORE INSERT ON notes WHEN NEW.note_id = 'T-2' "
                              "BEGIN SELECT RAISE(ABORT, 'T-2 refused'); END"))
        else:
            conn.execute(text("CREATE FUNCTION refuse_note() RETURNS trigger AS $$ BEGIN IF NEW.note_id = 'T-2' "
                              "THEN RAISE EXCEPTION 'T-2 refused'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql"))
            conn.execute(text("CREATE TRIGGER refuse BEFORE INSERT ON notes FOR EACH ROW EXECUTE FUNCTION refuse_note()"))
    data = notes_csv()
    table = read_table("x.csv", data)
    target = stored_path(kb.settings.data_dir, "x.csv")
    report = import_notes(kb.engine, check_import(table, guess_mapping(table.columns), str(target)), data)
    assert not report.ok and "refused" in report.problems[0].message and "nothing was imported" in report.problems[0].message
    assert document_count(kb) == 0 and not target.exists()
    assert not list(target.parent.glob("*.part"))


def test_unreadable_files_say_why():
    from kb.documents import ReadError

    with pytest.raises(ReadError, match=r"\.csv or \.jsonl"):
        read_table("notes.xlsx", b"PK\x03\x04")
    with pytest.raises(ReadError, match="empty"):
        read_table("notes.csv", b"  \n")
    with pytest.raises(ReadError, match="twice"):
        read_table("notes.csv", b"id,ID,complaint\n1,2,x\n")
    table = read_table("n.jsonl", b'{"id": 1, "complaint": "x"}\nnot json\n')
    assert [(p.row, p.field) for p in table.problems] == [(2, None)]


# -- the JSON API -----------------------------------------------------------------------------------


def test_api_lists_cases_with_filters(client):
    body = check(client.get("/api/v1/cases", query_string={"product": "MobiCare SIM", "limit": 5}), "/api/v1/cases")
    assert body["total"] == 49 and len(body["cases"]) == 5 and {c["product"] for c in body["cases"]} == {"MobiCare SIM"}
    body = check(client.get("/api/v1/cases?from=2025-10-01&to=2025-10-31&limit=200"), "/api/v1/cases")
    assert body["cases"] and all(c["date"].startswith("2025-10") for c in body["cases"])
    for query, name in [({"from": "yesterday"}, "from"), ({"from": "2025-02-01", "to": "2025-01-01"}, "from"),
                        ({"limit": "0"}, "limit")]:
        response = client.get("/api/v1/cases", query_string=query)
        assert response.status_code == 400
        assert name in check(response, "/api/v1/cases")["error"]["message"]


def test_api_gives_one_case_or_not_found(client, kb):
    doc_id = doc_id_of(kb, "N-2025-0003")
    body = check(client.get(f"/api/v1/cases/{doc_id}"), "/api/v1/cases/{doc_id}")
    assert body["note_id"] == "N-2025-0003" and body["customer"]["name"] == "Oliver Bennett" and body["resolved"]
    for missing in (10**9, guidance_id(kb)):
        response = client.get(f"/api/v1/cases/{missing}")
        assert response.status_code == 404
        assert check(response, "/api/v1/cases/{doc_id}")["error"]["code"] == "not_found"


def test_api_similar_cases_cross_languages(client):
    response = client.post("/api/v1/cases/similar", json={"text": THAI_ROUTER, "k": 5})
    body = check(response, "/api/v1/cases/similar", "post")
    assert len(body["results"]) == 5
    assert any(r["lang"] == "en" and r["resolved"] and r["note_id"] in ROUTER_DROPS for r in body["results"])
    assert {"doc_id", "complaint", "resolution", "status", "product", "score", "helped"} <= set(body["results"][0])
    filtered = check(client.post("/api/v1/cases/similar", json={
        "text": THAI_ROUTER, "product": "FiberNet 1000", "from": "2025-01-01", "to": None}),
        "/api/v1/cases/similar", "post")
    assert filtered["results"] and {r["product"] for r in filtered["results"]} == {"FiberNet 1000"}
    still_open = check(client.post("/api/v1/cases/similar", json={"text": THAI_ROUTER, "state": "open"}),
                       "/api/v1/cases/similar", "post")
    assert still_open["results"] and not any(r["resolved"] for r in still_open["results"])
    assert still_open["filters"] == {"state": "open"}
    listed = check(client.get("/api/v1/cases?state=resolved&limit=50"), "/api/v1/cases")
    assert listed["cases"] and all(c["resolved"] for c in listed["cases"])


@pytest.mark.parametrize(("payload", "code", "named"), [
    ({"text": ""}, "empty_query", "empty"),
    ({"text": "   "}, "empty_query", "empty"),
    ({"k": 3}, "bad_parameter", "text"),
    ({"text": 5}, "bad_parameter", "text"),
    ({"text": "router", "k": 0}, "bad_parameter", "k"),
    ({"text": "router", "k": 51}, "bad_parameter", "k"),
    ({"text": "router", "k": "5"}, "bad_parameter", "k"),
    ({"text": "router", "k": True}, "bad_parameter", "k"),
    ({"text": "router", "from": "31/02/2024"}, "bad_parameter", "from"),
    ({"text": "router", "product": ["a"]}, "bad_parameter", "product"),
    ({"text": "router", "state": "maybe"}, "bad_parameter", "state"),
    ([1, 2], "bad_json", "JSON"),
])
def test_api_similar_cases_errors_name_the_field(client, payload, code, named):
    response = client.post("/api/v1/cases/similar", json=payload)
    assert response.status_code == 400
    body = check(response, "/api/v1/cases/similar", "post")
    assert body["error"]["code"] == code and named in body["error"]["message"]


def test_api_this_helped_is_idempotent_per_user_and_can_be_removed(client, cases_app, kb):
    doc_id = doc_id_of(kb, "N-2024-0036")
    path = "/api/v1/cases/{doc_id}/helped"
    other_agent = signed_in(cases_app, "agent", "second-agent")
    first = check(client.post(f"/api/v1/cases/{doc_id}/helped"), path, "post")
    again = check(client.post(f"/api/v1/cases/{doc_id}/helped"), path, "post")
    other = check(other_agent.post(f"/api/v1/cases/{doc_id}/helped"), path, "post")
    assert (first["helped"], first["counted"], again["helped"], again["counted"], other["helped"]) == (1, True, 1, False, 2)
    removed = check(client.delete(f"/api/v1/cases/{doc_id}/helped"), path, "delete")
    assert (removed["helped"], removed["marked"]) == (1, False)
    similar = client.post("/api/v1/cases/similar", json={"text": "charged twice for my October bill"}).get_json()
    assert next(r["helped"] for r in similar["results"] if r["doc_id"] == doc_id) == 1
    for method in ("post", "delete"):
        response = getattr(client, method)(f"/api/v1/cases/{10**9}/helped")
        assert response.status_code == 404 and check(response, path, method)["error"]["code"] == "not_found"


def test_api_import_checks_then_imports_all_or_nothing(empty):
    client, kb = empty
    path = "/api/v1/cases/import"

    def post(data: bytes, name: str = "export.csv", **form):
        return client.post(path, data={"file": (io.BytesIO(data), name), **form}, content_type="multipart/form-data")

    dry = check(post(notes_csv(), dry_run="1"), path, "post")
    assert (dry["rows"], dry["valid"], dry["imported"], dry["problems"]) == (3, 3, 0, [])
    assert dry["mapping"]["complaint"] == "Description" and document_count(kb) == 0
    response = post(notes_csv())
    assert response.status_code == 201
    assert check(response, path, "post")["added"] == 3 and document_count(kb) == 3
    again = post(notes_csv())
    assert again.status_code == 200 and check(again, path, "post")["skipped"] == 3 and document_count(kb) == 3

    missing = post(notes_csv(header=HEADER.replace("Description", "Zzz")), "other.csv")
    assert missing.status_code == 422
    assert [(p["row"], p["field"]) for p in check(missing, path, "post")["problems"]] == [(None, "complaint")]
    bad_row = post(notes_csv([ROWS[0], ROWS[1].replace("T-2,2024-05-03", "T-2,31/02/2024")]), "other.csv")
    assert bad_row.status_code == 422
    assert [(p["row"], p["field"]) for p in check(bad_row, path, "post")["problems"]] == [(3, "date")]
    unmapped = post(notes_csv(header=HEADER.replace("Description", "Zzz")), "other.csv",
                    mapping=json.dumps({"complaint": "Zzz", "resolution": None}))
    assert unmapped.status_code == 201
    body = check(unmapped, path, "post")
    assert body["added"] == 3 and "resolution" not in body["mapping"] and document_count(kb) == 6
    wrong_type = post(b"just text", "notes.txt")
    assert wrong_type.status_code == 422 and check(wrong_type, path, "post")["problems"][0]["row"] is None
    assert document_count(kb) == 6

    for form, named in [({"mapping": "{not json"}, "mapping"), ({"mapping": json.dumps({"colour": "x"})}, "colour"),
                        ({"mapping": json.dumps(["id"])}, "mapping")]:
        response = post(notes_csv(), **form)
        assert response.status_code == 400 and named in check(response, path, "post")["error"]["message"]
    no_file = client.post(path, data={}, content_type="multipart/form-data")
    assert no_file.status_code == 400 and check(no_file, path, "post")["error"]["code"] == "no_file"


# -- pages --------------------------------------------------------------------------------------------


def labelled(html: str) -> bool:
    """Every visible input, select and textarea has a <label for> naming its id."""
    fields = re.findall(r"<(?:input|select|textarea)\b(?![^>]*type=\"hidden\")[^>]*\bid=\"([^\"]+)\"", html)
    unlabelled = [f for f in fields if f'for="{f}"' not in html]
    return bool(fields) and not unlabelled


def test_case_pages(client, kb):
    html = client.get("/cases?product=TVPlus+4K+Box&ui=en").get_data(as_text=True)
    assert "27 cases" in html and labelled(html)
    doc_id = doc_id_of(kb, "N-2024-0002")
    page = client.get(f"/cases/{doc_id}?ui=en").get_data(as_text=True)
    assert "prasert.m@example.co.th" in page and 'lang="th"' in page and "This helped" in page
    assert client.get(f"/cases/{guidance_id(kb)}").status_code == 404
    assert client.get("/cases/999999999").status_code == 404
    assert client.get("/cases?from=someday").status_code == 400
    document = client.get(f"/documents/{doc_id}?ui=en").get_data(as_text=True)
    assert f'href="/cases/{doc_id}"' in document and "Open as a case" in document
    assert "Open as a case" not in client.get(f"/documents/{guidance_id(kb)}?ui=en").get_data(as_text=True)


def test_similar_page_without_javascript(client, kb):
    html = client.get("/cases/similar?ui=en").get_data(as_text=True)
    assert labelled(html) and "<textarea" in html
    response = client.post("/cases/similar?ui=en", data={"q": THAI_ROUTER, "product": "FiberNet 500"})
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert re.search(r'class="resolution-text" lang="en"', html), "an English resolution, marked as English"
    english = doc_id_of(kb, "N-2025-0041")
    assert f'id="case-{english}"' in html
    # "This helped" posts and comes back to the same results (307 keeps the POST and its complaint).
    back = client.post(f"/cases/{english}/helped", data={"back": "similar", "q": THAI_ROUTER, "product": "FiberNet 500"})
    assert back.status_code == 307 and back.headers["Location"].startswith("/cases/similar")
    again = client.post("/cases/similar", data={"q": THAI_ROUTER, "product": "FiberNet 500", "back": "similar"})
    block = again.get_data(as_text=True).split(f'id="case-{english}"')[1].split("</li>")[0]
    assert 'aria-pressed="true"' in block and '<span class="n">1</span>' in block
    assert client.post("/cases/similar", data={"q": " "}).status_code == 400
    to_case = client.post(f"/cases/{english}/helped", data={"undo": "1", "next": "//evil.example/"})
    assert to_case.status_code == 303 and to_case.headers["Location"].endswith(f"/cases/{english}")
    assert get_case(kb.engine, english).helped == 0


def test_import_pages_map_check_and_import(empty):
    client, kb = empty
    upload = client.post("/cases/import", data={"file": (io.BytesIO(notes_csv()), "crm export.csv")},
                         content_type="multipart/form-data")
    assert upload.status_code == 303
    mapping_url = upload.headers["Location"]
    page = client.get(mapping_url + "?ui=en").get_data(as_text=True)
    assert labelled(page) and '<option value="Description" selected>' in page
    bad = client.get(mapping_url, query_string={"check": "1", "map_id": "Ticket ID", "map_complaint": "Solution",
                                                "map_date": "Customer"})
    assert bad.status_code == 422 and "nothing has been imported" in bad.get_data(as_text=True)
    checked = client.get(mapping_url, query_string={"check": "1", "map_id": "Ticket ID", "map_complaint": "Description",
                                                    "map_status": "State", "ui": "en"})
    assert checked.status_code == 200 and "3 notes ready to import" in checked.get_data(as_text=True)
    assert document_count(kb) == 0
    done = client.post(mapping_url, data={"map_id": "Ticket ID", "map_complaint": "Description", "map_status": "State"})
    assert done.status_code == 200 and document_count(kb) == 3
    assert client.get(mapping_url).status_code == 404, "the pending upload is gone once imported"
    assert client.get("/cases/import/not-a-token").status_code == 404
    wrong = client.post("/cases/import", data={"file": (io.BytesIO(b"x"), "notes.pdf")}, content_type="multipart/form-data")
    assert wrong.status_code == 400 and ".csv or .jsonl" in wrong.get_data(as_text=True)
    assert not any(Path(kb.settings.data_dir, "imports", "pending").glob("*.pdf"))


@pytest.mark.parametrize(("columns", "expected"), [
    (["Ticket", "Customer complaint", "Customer", "Fix"],
     {"id": "Ticket", "complaint": "Customer complaint", "customer_name": "Customer", "resolution": "Fix"}),
    (["เลขที่", "วันที่", "เรื่องที่ลูกค้าร้องเรียน", "ผลการแก้ไข"],
     {"id": "เลขที่", "date": "วันที่", "complaint": "เรื่องที่ลูกค้าร้องเรียน", "resolution": "ผลการแก้ไข"}),
    (["编号", "日期", "投诉内容", "处理结果", "客户电话"],
     {"id": "编号", "date": "日期", "complaint": "投诉内容", "resolution": "处理结果", "customer_phone": "客户电话"}),
])
def test_column_names_are_guessed_in_three_languages_even_inside_longer_names(columns, expected):
    assert guess_mapping(columns) == expected


def test_an_import_can_take_the_valid_rows_and_report_the_rest(empty):
    client, kb = empty
    path = "/api/v1/cases/import"
    rows = [*ROWS, "T-4,31/02/2024,,,,,,The box is dead,,open,", ",2024-06-01,,,,,,No id on this one,,open,"]

    def post(**form):
        return client.post(path, data={"file": (io.BytesIO(notes_csv(rows)), "mixed.csv"), **form},
                           content_type="multipart/form-data")

    strict = post()
    assert strict.status_code == 422 and document_count(kb) == 0
    partial = post(valid_only="1")
    body = check(partial, path, "post")
    assert partial.status_code == 201 and body["added"] == 3 and body["valid_only"]
    assert sorted(p["row"] for p in body["problems"]) == [5, 6]
    assert document_count(kb) == 3
    fixed = rows[:3] + ["T-4,2024-02-28,,,,,,The box is dead,,open,"]
    again = client.post(path, data={"file": (io.BytesIO(notes_csv(fixed)), "mixed.csv")},
                        content_type="multipart/form-data")
    assert check(again, path, "post")["added"] == 1 and check(again, path, "post")["skipped"] == 3


def test_the_import_page_offers_to_import_the_valid_rows_and_lists_the_rest(empty):
    client, kb = empty
    rows = [*ROWS, "T-4,31/02/2024,,,,,,The box is dead,,open,"]
    upload = client.post("/cases/import", data={"file": (io.BytesIO(notes_csv(rows)), "mixed.csv")},
                         content_type="multipart/form-data")
    mapping_url = upload.headers["Location"]
    mapping = {"map_id": "Ticket ID", "map_date": "Opened on", "map_complaint": "Description"}
    checked = client.get(mapping_url, query_string={"check": "1", "ui": "en", **mapping})
    page = checked.get_data(as_text=True)
    assert checked.status_code == 422 and "Import the 3 valid notes and report the rest" in page
    assert document_count(kb) == 0
    done = client.post(mapping_url + "?ui=en", data={**mapping, "valid_only": "1"})
    page = done.get_data(as_text=True)
    assert done.status_code == 200 and "3 notes imported" in page and "1 row not imported" in page
    assert "31/02/2024" in page and document_count(kb) == 3
