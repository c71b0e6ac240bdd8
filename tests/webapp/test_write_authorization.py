"""Who may change what through the portal, and how sessions and sign-ins hold up against abuse.

Uploads never replace a document their uploader may not change, visibility is only given by someone who
could read it, CSRF holds whenever the session cookie signs a request in, "sign out" ends the session on
the server, and sign-in throttling cannot lock a whole office out. Real portal, real accounts, an empty
knowledge base of its own.
"""

from __future__ import annotations

import io

import pytest
from sqlalchemy import select

from kb.config import Settings
from kb.documents import DocumentInput
from kb.knowledge_base import KnowledgeBase
from kb.services import audit
from kb.storage.models import Document
from tests.portal_client import csrf_token_of, ensure_user, signed_in, token_for
from tests.services.test_cases import notes_csv
from tests.webapp.test_api import check
from webapp import create_app
from webapp.auth import THROTTLE_FAILURES, THROTTLE_FAILURES_PER_ADDRESS


def markdown(text: str, visibility: str | None = None) -> bytes:
    front = f"---\nvisibility: {visibility}\n---\n" if visibility else ""
    return f"{front}# Notice\n\n{text}\n".encode()


def upload(client, name: str, data: bytes):
    return client.post("/api/v1/documents", data={"files": (io.BytesIO(data), name)},
                       content_type="multipart/form-data")


def stored(kb, doc_id: int) -> Document:
    with kb.store.session() as s:
        return s.get(Document, doc_id)


def documents_named(kb, file_name: str) -> list[Document]:
    with kb.store.session() as s:
        return list(s.scalars(select(Document).where(Document.source_file.endswith("/" + file_name))))


def test_an_agent_cannot_replace_or_reveal_an_admins_document(app, portal_kb):
    admin, agent = signed_in(app, "admin"), signed_in(app, "agent")
    secret = "Board only: the merger with FiberNet closes in March."
    made = check(upload(admin, "policy.md", markdown(secret, "admin")), "/api/v1/documents", "post")
    admin_doc = made["results"][0]["doc_ids"][0]
    for name in ("policy.md", "../../policy.md", "/tmp/policy.md", "uploads/test-admin/policy.md"):
        response = upload(agent, name, markdown(f"Agent's text sent as {name}", "partner"))
        assert response.status_code in (200, 201), name
        result = check(response, "/api/v1/documents", "post")["results"][0]
        assert result["status"] in ("added", "updated", "skipped") and admin_doc not in result["doc_ids"], name
    kept = stored(portal_kb, admin_doc)
    assert kept.text.endswith(secret) and kept.visibility == "admin" and kept.owner == "test-admin"
    partner = signed_in(app, "partner")
    assert partner.get(f"/api/v1/documents/{admin_doc}").status_code == 404
    hits = partner.get("/api/v1/search", query_string={"q": "merger with FiberNet closes"}).get_json()["results"]
    assert admin_doc not in {h["doc_id"] for h in hits}


def test_identical_names_from_different_uploaders_or_folders_are_different_documents(app, portal_kb):
    wei, somchai = signed_in(app, "agent", "wei"), signed_in(app, "agent", "somchai")
    sent = [(wei, "faq.md"), (somchai, "faq.md"), (wei, "branch-a/faq.md"), (wei, "branch-b/faq.md")]
    doc_ids = []
    for client, name in sent:
        result = upload(client, name, markdown(f"Router FAQ from {client.username} as {name}")).get_json()["results"][0]
        assert result["status"] == "added", (client.username, name, result)
        doc_ids += result["doc_ids"]
    assert len(set(doc_ids)) == len(sent)
    owners = sorted(d.owner for d in documents_named(portal_kb, "faq.md"))
    assert owners == ["somchai", "wei", "wei", "wei"]
    uploads = portal_kb.settings.data_dir / "uploads"
    assert (uploads / "wei" / "branch-a" / "faq.md").is_file() and (uploads / "somchai" / "faq.md").is_file()


def test_visibility_is_only_what_the_uploader_may_grant(app, portal_kb):
    employee, agent, admin = signed_in(app, "employee"), signed_in(app, "agent"), signed_in(app, "admin")
    for visibility in ("admin", "agent,admin", "trainer"):
        response = upload(employee, f"raise-{visibility}.md", markdown("Pay scales for next year.", visibility))
        result = check(response, "/api/v1/documents", "post")["results"][0]
        assert response.status_code == 403 and result["status"] == "failed", visibility
        assert f"raise-{visibility}.md" in result["error"] and "visibility" in result["error"]
    assert not documents_named(portal_kb, "raise-admin.md")
    assert not (portal_kb.settings.data_dir / "uploads" / "test-employee" / "raise-admin.md").exists()
    page = employee.post("/add", data={"files": (io.BytesIO(markdown("Pay scales.", "admin")), "pay.md")},
                         content_type="multipart/form-data")
    assert "pay.md" in page.get_data(as_text=True) and not documents_named(portal_kb, "pay.md")
    assert upload(employee, "shared.md", markdown("Partner escalation desk.", "partner")).status_code == 201
    assert upload(agent, "agents.md", markdown("Refund limits for agents.", "agent, admin")).status_code == 201
    assert upload(admin, "trainers.md", markdown("Workshop plan.", "trainer")).status_code == 201
    # One refused file does not stop the others in the same request.
    mixed = employee.post("/api/v1/documents", content_type="multipart/form-data", data={"files": [
        (io.BytesIO(markdown("Hidden.", "admin")), "hidden.md"), (io.BytesIO(markdown("Open.")), "open.md")]})
    statuses = [r["status"] for r in check(mixed, "/api/v1/documents", "post")["results"]]
    assert mixed.status_code == 201 and statuses == ["failed", "added"]


def test_only_the_owner_or_an_admin_replaces_reclassifies_or_deletes(app, portal_kb):
    store = portal_kb.store
    owner, colleague = signed_in(app, "agent", "doc-owner"), signed_in(app, "agent", "colleague")
    doc_id = upload(owner, "limits.md", markdown("Refunds up to 500 baht.", "agent")).get_json()["results"][0]["doc_ids"][0]
    refused = colleague.delete(f"/api/v1/documents/{doc_id}")
    assert refused.status_code == 403 and check(refused, "/api/v1/documents/{doc_id}", "delete")
    # The owner may re-classify and replace it; it stays the same document.
    again = upload(owner, "limits.md", markdown("Refunds up to 800 baht.", "internal")).get_json()["results"][0]
    assert again["status"] == "updated" and again["doc_ids"] == [doc_id]
    assert stored(portal_kb, doc_id).visibility == "internal" and "800" in stored(portal_kb, doc_id).text
    upload(owner, "limits.md", markdown("Refunds up to 800 baht.", "agent"))
    # An owner who may no longer see it (moved to another role) may not replace it either.
    ensure_user(store, "doc-owner", "employee")
    moved = signed_in(app, "employee", "doc-owner")
    response = upload(moved, "limits.md", markdown("Refunds up to a million baht."))
    result = check(response, "/api/v1/documents", "post")["results"][0]
    assert response.status_code == 403 and "limits.md" in result["error"] and "replace" in result["error"]
    assert "800" in stored(portal_kb, doc_id).text
    ensure_user(store, "doc-owner", "agent")
    assert signed_in(app, "agent", "doc-owner").delete(f"/api/v1/documents/{doc_id}").status_code == 200
    other = upload(colleague, "other.md", markdown("Colleague's notes.")).get_json()["results"][0]["doc_ids"][0]
    assert signed_in(app, "admin").delete(f"/api/v1/documents/{other}").status_code == 200
    # Documents the operator ingested are the admins' to delete.
    portal_kb.add_documents([_operator_doc()])
    operator_doc = documents_named(portal_kb, "handbook.md")[0].id
    assert signed_in(app, "employee").delete(f"/api/v1/documents/{operator_doc}").status_code == 403


def _operator_doc() -> DocumentInput:
    return DocumentInput(source="/corpus/handbook.md", source_file="/corpus/handbook.md", title="Handbook",
                         text="The staff handbook, ingested by the operator.", language="en")


def test_two_peoples_note_imports_of_the_same_file_name_never_touch_each_other(app, portal_kb):
    path = "/api/v1/cases/import"
    first, second = signed_in(app, "agent", "importer-one"), signed_in(app, "agent", "importer-two")
    for client in (first, second):
        response = client.post(path, data={"file": (io.BytesIO(notes_csv()), "export.csv")},
                               content_type="multipart/form-data")
        assert response.status_code == 201 and check(response, path, "post")["added"] == 3, client.username
    owners = sorted(d.owner for d in documents_named(portal_kb, "export.csv"))
    assert owners == ["importer-one"] * 3 + ["importer-two"] * 3


def test_a_session_cookie_needs_its_csrf_token_whatever_authorization_says(app, portal_kb):
    browser = signed_in(app, "employee", "csrf-employee")
    bare = browser.client  # the cookie, without the CSRF token a page would add
    before = len(documents_named(portal_kb, "csrf.md"))
    token = token_for(portal_kb.store, "csrf-employee", "employee")
    for authorization in ("Bearer bogus", f"Bearer {token}", "Basic Ym9ndXM6Ym9ndXM="):
        for send in (lambda h: bare.post("/api/v1/documents", json={"text": "Sneaky", "title": "csrf"}, headers=h),
                     lambda h: bare.post("/api/v1/documents", headers=h, content_type="multipart/form-data",
                                         data={"files": (io.BytesIO(markdown("Sneaky")), "csrf.md")})):
            response = send({"Authorization": authorization})
            assert response.status_code == 400, authorization
            assert response.get_json()["error"]["code"] == "csrf_failed"
    assert len(documents_named(portal_kb, "csrf.md")) == before
    # A program with its token and no cookie needs none; a bogus token without a cookie is told to sign in.
    program = app.test_client()
    response = upload(_with_header(program, f"Bearer {token}"), "program.md", markdown("From a script."))
    assert response.status_code == 201
    assert app.test_client().post("/api/v1/documents", json={"text": "x"},
                                  headers={"Authorization": "Bearer bogus"}).status_code == 401


class _with_header:
    """A test client that sends one Authorization header with every request."""

    def __init__(self, client, authorization: str) -> None:
        self.client, self.authorization = client, authorization

    def post(self, *args, **kwargs):
        return self.client.post(*args, headers={"Authorization": self.authorization}, **kwargs)


def test_signing_out_ends_the_session_on_the_server(app, portal_kb):
    laptop, phone = signed_in(app, "trainer", "signs-out"), signed_in(app, "trainer", "signs-out")
    copied = laptop.client.get_cookie("session").value
    thief = app.test_client()
    thief.set_cookie("session", copied)
    assert thief.get("/account").status_code == 200
    assert laptop.post("/logout").status_code == 303
    assert thief.get("/account").status_code == 302 and "/login" in thief.get("/account").headers["Location"]
    assert thief.get("/api/v1/documents").status_code == 401
    assert phone.get("/account").status_code == 200  # the user's other sessions go on
    assert signed_in(app, "trainer", "signs-out").get("/account").status_code == 200


def _attempt(client, username: str, password: str, address: str, forwarded: str | None = None) -> int:
    environ = {"REMOTE_ADDR": address}
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    token = csrf_token_of(client.get("/login", environ_base=environ, headers=headers).get_data(as_text=True))
    return client.post("/login", data={"username": username, "password": password, "csrf_token": token},
                       environ_base=environ, headers=headers).status_code


def test_a_locked_account_does_not_lock_its_colleagues_out(app, portal_kb):
    store = portal_kb.store
    ensure_user(store, "targeted", "employee")
    colleague = ensure_user(store, "next-desk", "employee")
    for _ in range(THROTTLE_FAILURES):
        assert _attempt(app.test_client(), "targeted", "wrong", "198.51.100.20") == 401
    assert _attempt(app.test_client(), "targeted", "targeted-test-password", "198.51.100.21") == 429
    assert _attempt(app.test_client(), "next-desk", colleague, "198.51.100.20") == 303


@pytest.fixture(scope="module")
def proxied_app(data_dir, models_dir, embedder, portal_kb):
    """The same portal behind one trusted reverse proxy (KB_TRUSTED_PROXIES=1)."""
    settings = Settings.from_env({"KB_TRUSTED_PROXIES": "1"}, data_dir=data_dir, models_dir=models_dir)
    kb = KnowledgeBase.open(settings, embedder=embedder)
    yield create_app({"KB_INSTANCE": kb, "TESTING": True, "KB_WARM_UP": False})
    kb.close()


def test_a_guesser_behind_the_office_nat_does_not_lock_the_office_out(proxied_app, portal_kb):
    store, proxy, office, home = portal_kb.store, "10.0.0.2", "203.0.113.7", "192.0.2.44"
    regular = ensure_user(store, "office-regular", "agent")
    newcomer = ensure_user(store, "office-newcomer", "agent")
    assert _attempt(proxied_app.test_client(), "office-regular", regular, proxy, office) == 303
    for i in range(THROTTLE_FAILURES_PER_ADDRESS):  # many names, each below its own limit
        assert _attempt(proxied_app.test_client(), f"guess-{i % 25}", "123456", proxy, office) == 401
    assert _attempt(proxied_app.test_client(), "office-regular", regular, proxy, office) == 303
    assert _attempt(proxied_app.test_client(), "office-newcomer", newcomer, proxy, office) == 429
    assert _attempt(proxied_app.test_client(), "guess-1", "123456", proxy, office) == 429
    # The address is the client's as the proxy saw it, not the proxy's own: elsewhere nothing is throttled.
    assert _attempt(proxied_app.test_client(), "office-newcomer", newcomer, proxy, home) == 303


def test_forwarded_addresses_are_ignored_without_trusted_proxies(app, portal_kb):
    store = portal_kb.store
    password = ensure_user(store, "no-proxy", "employee")
    assert _attempt(app.test_client(), "no-proxy", password, "198.51.100.9", "203.0.113.99") == 303
    logins, _ = audit.entries(store, actor="user:no-proxy", action="login")
    assert [e.target for e in logins] == ["address:198.51.100.9"]


def upload_with(client, name: str, data: bytes, **fields):
    return client.post("/api/v1/documents", data={"files": (io.BytesIO(data), name), **fields},
                       content_type="multipart/form-data")


def test_an_upload_sets_visibility_and_topics_within_what_the_uploader_may_give(app, portal_kb):
    employee = signed_in(app, "employee")
    shared = upload_with(employee, "partner-brief.md", markdown("Share the installation checklist with dealers."),
                         visibility="partner", topics="Dealer onboarding, 安装")
    result = check(shared, "/api/v1/documents", "post")["results"][0]
    assert shared.status_code == 201, result
    doc = portal_kb.get_document(result["doc_ids"][0])
    assert doc.visibility == "partner" and {"dealer-onboarding", "安装"} <= {t.tag for t in doc.tags}
    partner = signed_in(app, "partner")
    assert partner.get(f"/api/v1/documents/{doc.id}").status_code == 200

    agent = signed_in(app, "agent")
    refused = upload_with(agent, "board.md", markdown("Board minutes."), visibility="admin")
    assert refused.status_code == 403 and "not yours to give" in refused.get_json()["results"][0]["error"]
    assert not documents_named(portal_kb, "board.md")
    unknown = upload_with(agent, "odd.md", markdown("Odd."), visibility="wizards")
    assert unknown.status_code == 400 and "wizards" in unknown.get_json()["error"]["message"]
    narrowed = upload_with(agent, "agents-only.md", markdown("Refund codes for the desk."), visibility="Agent, Admin")
    doc_id = check(narrowed, "/api/v1/documents", "post")["results"][0]["doc_ids"][0]
    assert stored(portal_kb, doc_id).visibility == "agent,admin"
    assert employee.get(f"/api/v1/documents/{doc_id}").status_code == 404


def test_the_add_page_offers_only_the_visibility_a_user_may_give(app):
    options = signed_in(app, "agent").get("/add").get_data(as_text=True).split('id="visibility"')[1].split("</select>")[0]
    assert 'value="agent,admin"' in options and 'value="partner"' in options
    assert 'value="admin"' not in options and 'value="trainer,admin"' not in options
