"""The attacker's view: a partner tries every route for notes and internal documents, forms without CSRF
tokens, SQL metacharacters, sign-in guessing, revoked tokens. Real portal, real accounts, real corpus.
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil

import pytest
from sqlalchemy import func, select

from kb.services import accounts
from kb.storage.models import Document, Note
from tests.conftest import CORPUS
from tests.portal_client import csrf_token_of, ensure_user, sign_in, signed_in, token_for
from tests.webapp.test_api import SPEC, check, make_docx
from webapp import create_app
from webapp.auth import THROTTLE_FAILURES

QUERIES = [
    "router disconnects several times a day", "เราเตอร์หลุดบ่อย", "路由器经常断线", "charged twice", "OTP",
    "customer complaint history", "ข้อมูลลูกค้า", "客户投诉", "data quality", "privacy delete my data",
    "+66 91 337 6685", "prasert.m@example.co.th", "Jordan Whitlock", "SIM", "refund",
]


@pytest.fixture(scope="module")
def data_dir(corpus_data_dir, tmp_path_factory):
    """The bundled corpus's knowledge base, copied (these tests change it); conftest's portal_kb and app open it."""
    target = tmp_path_factory.mktemp("security") / "data"
    shutil.copytree(corpus_data_dir, target, ignore=shutil.ignore_patterns("*.lock"))
    return target


@pytest.fixture(scope="module")
def partner(app):
    return signed_in(app, "partner")


def _notes_personal_data() -> set[str]:
    """Every customer's name, e-mail and phone number in the bundled notes."""
    rows = list(csv.DictReader((CORPUS / "notes" / "notes-2024.csv").open(encoding="utf-8")))
    rows += [json.loads(line) for line in (CORPUS / "notes" / "notes-2025.jsonl").open(encoding="utf-8")]
    values = set()
    for row in rows:
        values |= {row["customer_name"], row["customer_email"], row["customer_phone"]} - {""}
    return values


def _bare(page, doc_id: int) -> str:
    """A page without what differs between any two requests (its URL, the CSRF tokens)."""
    text = page.get_data(as_text=True).replace(f"/documents/{doc_id}", "/documents/ID")
    return re.sub(r'(name="csrf_token" value|name="csrf-token" content)="[^"]+"', r"\1", text)


def _ids(kb, partner_visible: bool | None = None, kind: str | None = None) -> list[int]:
    with kb.store.session() as s:
        stmt = select(Document.id)
        if kind:
            stmt = stmt.where(Document.kind == kind)
        if partner_visible is not None:
            stmt = stmt.where((Document.visibility == "partner") == partner_visible)
        return list(s.scalars(stmt))


def test_a_partner_reaches_nothing_internal_and_no_customer_data(app, partner, portal_kb):
    hidden = _ids(portal_kb, partner_visible=False)
    shared = set(_ids(portal_kb, partner_visible=True))
    assert len(hidden) > 150 and len(shared) == 19
    missing = 10**9
    bodies: list[str] = []

    def get(url: str, **kwargs):
        response = partner.get(url, **kwargs)
        bodies.append(response.get_data(as_text=True))
        return response

    not_found_page = get(f"/documents/{missing}")
    for doc_id in hidden:  # a forbidden id answers exactly as a missing one
        page = get(f"/documents/{doc_id}")
        assert page.status_code == 404 and _bare(page, doc_id) == _bare(not_found_page, missing)
        api = get(f"/api/v1/documents/{doc_id}")
        assert api.status_code == 404
        assert api.get_json()["error"]["code"] == "not_found"
    for doc_id in sorted(shared):
        body = check(get(f"/api/v1/documents/{doc_id}"), "/api/v1/documents/{doc_id}")
        assert all(r["id"] in shared for r in body["related"])

    for query in QUERIES:
        for url in ("/api/v1/search", "/search"):
            params = {"q": query, "k": 50, "facets": "1"}
            response = get(url, query_string=params)
            assert response.status_code == 200
        body = partner.get("/api/v1/search", query_string={"q": query, "k": 50, "facets": "1"}).get_json()
        assert {r["doc_id"] for r in body["results"]} <= shared, query
        assert set(body["facets"]["kind"]) <= {"guidance"} and sum(body["facets"]["kind"].values()) <= len(shared)
        assert check(partner.get("/api/v1/search", query_string={"q": query, "kind": "note"}), "/api/v1/search")["results"] == []
        answer = partner.post("/api/v1/ask", json={"question": query})
        bodies.append(answer.get_data(as_text=True))
        assert {c["doc_id"] for c in answer.get_json()["citations"]} <= shared
        get("/ask", query_string={"q": query})

    listing = check(get("/api/v1/documents?limit=200"), "/api/v1/documents")
    assert listing["total"] == len(shared) and {d["id"] for d in listing["documents"]} <= shared
    assert {d["id"] for d in check(get("/api/v1/documents?kind=note"), "/api/v1/documents")["documents"]} == set()
    home = get("/").get_data(as_text=True)
    assert "Customer note" not in home
    topics = check(get("/api/v1/topics"), "/api/v1/topics")
    assert sum(t["documents"] for t in topics["topics"]) <= sum(1 for _ in shared) * 5
    for topic in topics["topics"]:
        body = check(get(f"/api/v1/topics/{topic['tag']}"), "/api/v1/topics/{tag}")
        assert {d["id"] for docs in body["documents"].values() for d in docs} <= shared
        get(f"/topics/{topic['tag']}")
    get("/topics")

    note_id = _ids(portal_kb, kind="note")[0]
    for url in ("/cases", f"/cases/{note_id}", f"/cases/{missing}", "/cases/similar?q=router", "/cases/import"):
        assert get(url).status_code == 403, url
    for url in ("/api/v1/cases", f"/api/v1/cases/{note_id}"):
        assert get(url).status_code == 403
    for url, payload in (("/api/v1/cases/similar", {"text": "router keeps dropping"}), (f"/api/v1/cases/{note_id}/helped", None)):
        response = partner.post(url, json=payload)
        bodies.append(response.get_data(as_text=True))
        assert response.status_code == 403
        check(response, url.replace(str(note_id), "{doc_id}"), "post")
    assert partner.post("/api/v1/collections", json={"name": "x"}).status_code == 403
    assert get("/collections").status_code == 403
    assert get("/admin/audit").status_code == 403 and get("/api/v1/audit").status_code == 403
    assert partner.post("/api/v1/documents", json={"text": "partner text"}).status_code == 403
    assert partner.delete(f"/api/v1/documents/{min(shared)}").status_code == 403
    assert partner.put(f"/api/v1/documents/{min(shared)}/topics", json={"topics": ["x"]}).status_code == 403

    everything = "\n".join(bodies)
    typed = set(QUERIES)  # what the partner typed comes back in the search box: that is no leak
    leaked = sorted(v for v in _notes_personal_data() - typed if v in everything)
    # Plenty was read (queries about nothing the partner may see get an empty page, so less than every result).
    assert len(everything) > 800_000
    assert leaked == [], f"customer data in partner responses: {leaked[:5]}"


def test_a_share_link_shows_a_partner_only_what_partners_may_see(app, partner, portal_kb):
    trainer = signed_in(app, "trainer")
    internal = _ids(portal_kb, partner_visible=False, kind="guidance")[0]
    shared = sorted(_ids(portal_kb, partner_visible=True))[0]
    note = _ids(portal_kb, kind="note")[0]
    collection = trainer.post("/api/v1/collections", json={"name": "Partner workshop"}).get_json()
    for doc_id in (internal, shared, note):
        assert trainer.post(f"/api/v1/collections/{collection['id']}/items", json={"doc_id": doc_id}).status_code == 201
    link = trainer.post(f"/api/v1/collections/{collection['id']}/share").get_json()["share_url"]
    path = "/" + link.split("/", 3)[3]
    page = partner.get(path).get_data(as_text=True)
    markdown = partner.get(f"{path}/export?format=md").get_data(as_text=True)
    with portal_kb.store.session() as s:
        titles = dict(s.execute(select(Document.id, Document.title).where(Document.id.in_([internal, shared, note]))).all())
    assert titles[shared] in markdown and titles[internal] not in markdown and titles[note] not in markdown
    assert titles[internal] not in page
    # Somebody else's collection is not there at all, for its id or its items.
    other = signed_in(app, "employee")
    assert other.get(f"/api/v1/collections/{collection['id']}").status_code == 404
    assert other.get(f"/collections/{collection['id']}").status_code == 404
    assert other.post(f"/api/v1/collections/{collection['id']}/items", json={"doc_id": shared}).status_code == 404


def test_customer_data_is_masked_for_employees_and_shown_to_agents(app, portal_kb):
    employee, agent = signed_in(app, "employee"), signed_in(app, "agent")
    with portal_kb.store.session() as s:
        doc_id, phone = s.execute(select(Note.document_id, Note.customer_phone)
                                  .where(Note.note_id == "N-2024-0026")).one()
    for client, visible in ((employee, False), (agent, True)):
        case = client.get(f"/api/v1/cases/{doc_id}").get_json()
        doc = client.get(f"/api/v1/documents/{doc_id}").get_json()
        similar = client.post("/api/v1/cases/similar", json={"text": "waited on hold half an hour, call me back"}).get_json()
        texts = json.dumps([case, doc, similar], ensure_ascii=False)
        page = client.get(f"/cases/{doc_id}").get_data(as_text=True)
        assert (phone in texts) is visible and (phone in page) is visible
        if not visible:
            assert case["customer"]["phone"] == "[phone]" and "[phone]" in doc["text"]


def test_forms_and_cookie_calls_without_a_csrf_token_are_refused(app, portal_kb):
    client = signed_in(app, "admin", "csrf-admin").client  # the bare client: no token added
    before = _count(portal_kb)
    response = client.post("/add", data={"text": "Sneaky text from another site", "title": "x"})
    assert response.status_code == 400 and "expired" in response.get_data(as_text=True)
    api = client.post("/api/v1/documents", json={"text": "Sneaky text"})
    assert api.status_code == 400 and api.get_json()["error"]["code"] == "csrf_failed"
    bad = client.post("/add", data={"text": "x", "csrf_token": "forged"})
    assert bad.status_code == 400
    assert _count(portal_kb) == before
    # A token-authenticated program needs no CSRF token: it sends no cookie another site could ride on.
    token = token_for(portal_kb.store, "api-bot", "employee")
    fresh = app.test_client()
    assert fresh.get("/api/v1/search?q=CRM", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def _count(kb) -> int:
    with kb.store.session() as s:
        return s.scalar(select(func.count(Document.id)))


SQL = ["' OR '1'='1", "1; DROP TABLE documents; --", "\" OR 1=1 --", "%' UNION SELECT * FROM users --", "\\'; --"]


def test_sql_metacharacters_in_every_parameter_are_harmless(app, portal_kb):
    admin = signed_in(app, "admin")
    before = _count(portal_kb)
    users_before = len(accounts.list_users(portal_kb.store))
    for value in SQL:
        for url, params in [
            ("/api/v1/search", {"q": value}), ("/api/v1/search", {"q": "CRM", "product": value, "status": value,
                                                                  "channel": value, "tag": value, "source": value}),
            ("/search", {"q": value, "tag": value}), ("/api/v1/documents", {"kind": value}),
            ("/api/v1/topics/" + value, {}), ("/topics/" + value, {}), ("/api/v1/cases", {"product": value, "status": value}),
            ("/cases", {"channel": value}), ("/api/v1/audit", {"actor": value, "action": value}),
            ("/admin/audit", {"actor": value}), ("/ask", {"q": value}), ("/login", {"next": value}),
        ]:
            response = admin.get(url, query_string=params)
            assert response.status_code < 500, (url, params, response.status_code)
        for url, payload in [("/api/v1/ask", {"question": value}), ("/api/v1/cases/similar", {"text": value, "product": value}),
                             ("/api/v1/collections", {"name": value})]:
            assert admin.post(url, json=payload).status_code < 500
        page = app.test_client().get("/login")
        token = csrf_token_of(page.get_data(as_text=True))
        assert app.test_client().post("/login", data={"username": value, "password": value, "csrf_token": token}).status_code < 500
    assert _count(portal_kb) == before and len(accounts.list_users(portal_kb.store)) == users_before


def test_the_audit_log_holds_the_agents_searches_and_views(app, portal_kb):
    agent = signed_in(app, "agent", "audited-agent")
    agent.get("/search", query_string={"q": "double charge refund", "kind": "note"})
    agent.post("/api/v1/cases/similar", json={"text": "ลูกค้าโดนหักเงินซ้ำสองครั้ง"})
    note = _ids(portal_kb, kind="note")[0]
    agent.get(f"/cases/{note}")
    agent.get("/search", query_string={"q": "data quality", "kind": "guidance"})  # no notes: nobody's business
    admin = signed_in(app, "admin")
    body = check(admin.get("/api/v1/audit", query_string={"actor": "user:audited-agent"}), "/api/v1/audit")
    actions = [(e["action"], e["target"]) for e in reversed(body["entries"])]
    assert [a for a, _ in actions] == ["login", "search", "similar", "view"]
    assert actions[1][1] == "double charge refund" and actions[3][1] == f"case {note}"
    exported = admin.get("/admin/audit/export?format=csv").get_data(as_text=True)
    assert "user:audited-agent" in exported and "ลูกค้าโดนหักเงินซ้ำสองครั้ง" in exported
    # Nobody can change it through the portal: there is no route that would.
    assert not [r for r in app.url_map.iter_rules() if "audit" in r.rule and r.methods & {"POST", "PUT", "PATCH", "DELETE"}]


def test_sign_in_is_throttled_and_sessions_end_everywhere(app, portal_kb):
    store = portal_kb.store
    password = ensure_user(store, "throttled", "employee")
    client = app.test_client()
    for _ in range(THROTTLE_FAILURES):
        token = csrf_token_of(client.get("/login").get_data(as_text=True))
        assert client.post("/login", data={"username": "throttled", "password": "wrong", "csrf_token": token}).status_code == 401
    token = csrf_token_of(client.get("/login").get_data(as_text=True))
    refused = client.post("/login", data={"username": "throttled", "password": password, "csrf_token": token})
    assert refused.status_code == 429, "the right password is refused while throttled"

    ensure_user(store, "roaming", "trainer")
    laptop, phone = signed_in(app, "trainer", "roaming"), signed_in(app, "trainer", "roaming")
    assert phone.get("/account").status_code == 200
    laptop.post("/account/sign-out-everywhere")
    assert phone.get("/account").status_code == 302 and "/login" in phone.get("/account").headers["Location"]
    assert app.test_client().get("/search?q=x").status_code == 302
    assert app.test_client().get("/api/v1/search?q=x").status_code == 401


def test_revoked_tokens_and_disabled_users_are_refused(app, portal_kb):
    store = portal_kb.store
    token = token_for(store, "scripted", "employee")
    headers = {"Authorization": f"Bearer {token}"}
    client = app.test_client()
    assert client.get("/api/v1/search?q=CRM", headers=headers).status_code == 200
    accounts.set_disabled(store, "scripted")
    assert client.get("/api/v1/search?q=CRM", headers=headers).status_code == 401
    accounts.set_disabled(store, "scripted", False)
    account = next(a for a in accounts.list_users(store) if a.username == "scripted")
    for info in accounts.list_tokens(store, account.id):
        accounts.revoke_token(store, account.id, info.id)
    response = client.get("/api/v1/search?q=CRM", headers=headers)
    assert response.status_code == 401
    check(response, "/api/v1/search")


def test_every_page_carries_the_security_headers_and_safe_cookies(app):
    client = app.test_client()
    response = client.get("/login")
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert response.headers["X-Frame-Options"] == "DENY" and response.headers["X-Content-Type-Options"] == "nosniff"
    admin = signed_in(app, "admin", "cookie-check")
    page = admin.client.get("/login")
    password = ensure_user(app.extensions["kb"].store, "cookie-check", "admin")
    fresh = app.test_client()
    token = csrf_token_of(fresh.get("/login").get_data(as_text=True))
    signed = fresh.post("/login", data={"username": "cookie-check", "password": password, "csrf_token": token})
    cookie = signed.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert page.status_code == 200
    # A login link cannot send anyone to another site afterwards.
    fresh = app.test_client()
    token = csrf_token_of(fresh.get("/login").get_data(as_text=True))
    away = fresh.post("/login?next=https://evil.example/", data={"username": "cookie-check", "password": password,
                                                                  "csrf_token": token})
    assert away.status_code == 303 and "evil.example" not in away.headers["Location"]


def test_uploads_are_checked_by_content_and_stored_under_safe_names(app, portal_kb):
    admin = signed_in(app, "admin")
    fake_pdf = admin.post("/api/v1/documents", data={"files": (io.BytesIO(b"<html>not a pdf</html>"), "report.pdf")},
                          content_type="multipart/form-data")
    assert fake_pdf.status_code == 422 and "report.pdf" in fake_pdf.get_json()["results"][0]["error"]
    sneaky = admin.post("/api/v1/documents", data={"files": (io.BytesIO(make_docx("Escalation matrix for partners.")),
                                                              "../../../etc/escalation.docx")},
                        content_type="multipart/form-data")
    assert sneaky.status_code == 201
    stored = portal_kb.settings.data_dir / "uploads" / "test-admin"  # the uploader's own folder
    assert (stored / "etc" / "escalation.docx").exists() and not (portal_kb.settings.data_dir.parent / "etc").exists()
    limited = create_app({"KB_INSTANCE": portal_kb, "TESTING": True, "KB_WARM_UP": False, "MAX_CONTENT_LENGTH": 10_000})
    big = signed_in(limited, "admin").post("/api/v1/documents", data={"files": (io.BytesIO(b"x" * 20_000), "big.txt")},
                                           content_type="multipart/form-data")
    assert big.status_code == 413
    assert re.search(r"larger than the limit", big.get_json()["error"]["message"])
    assert SPEC["paths"]["/api/v1/documents"]["post"]["responses"]["413"]
    _ = sign_in  # the real sign-in form is what every client above went through


def test_tokens_are_made_on_the_account_page_shown_once_and_revoked_there(app, portal_kb):
    trainer = signed_in(app, "trainer", "token-maker")
    made = trainer.post("/account/tokens", data={"name": "handout script"})
    html = made.get_data(as_text=True)
    token = re.search(r'id="new-token-value"[^>]*value="(kbt_[^"]+)"', html).group(1)
    assert made.status_code == 201 and token not in trainer.get("/account").get_data(as_text=True)
    program = app.test_client()
    assert program.get("/api/v1/collections", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    token_id = re.search(r'/account/tokens/(\d+)/revoke', html).group(1)
    assert trainer.post(f"/account/tokens/{token_id}/revoke").status_code == 303
    assert program.get("/api/v1/collections", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    other = signed_in(app, "employee", "someone-else")
    assert other.post(f"/account/tokens/{token_id}/revoke").status_code == 404
    assert trainer.post("/account/tokens", data={"name": "  "}).status_code == 400


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example", "/\t/evil.example", "/\\evil.example",
                                    "/\n/evil.example", "/%0d%0aSet-Cookie:x=1", "javascript:alert(1)", " /x"])
def test_no_form_sends_the_browser_off_site_or_fails_on_a_strange_next(app, portal_kb, target):
    from webapp.redirects import local_path

    assert local_path(target) is None or local_path(target).startswith("/") and "//" not in local_path(target)
    agent = signed_in(app, "agent")
    note_id = _ids(portal_kb, kind="note")[0]
    responses = [agent.post(f"/cases/{note_id}/helped", data={"next": target})]
    doc_id = _ids(portal_kb, kind="guidance")[0]
    responses.append(signed_in(app, "trainer").post("/collections/add", data={"doc_id": str(doc_id), "collection": "new",
                                                            "new_name": "Redirect check", "next": target}))
    client = app.test_client()
    password = ensure_user(portal_kb.store, "redirected", "employee")
    token = csrf_token_of(client.get("/login").get_data(as_text=True))
    responses.append(client.post("/login", query_string={"next": target},
                                 data={"username": "redirected", "password": password, "csrf_token": token}))
    for response in responses:
        assert response.status_code in (302, 303), response.status_code
        location = response.headers["Location"]
        assert location.startswith("/") and not location.startswith("//") and "evil" not in location
        assert not any(ch in location for ch in "\t\n\r\\")


def test_a_plain_local_next_is_kept():
    from webapp.redirects import local_path

    assert local_path("/search?q=router") == "/search?q=router"
    assert local_path("/collections/3?") == "/collections/3"
