"""The JSON API: every endpoint, its errors, and every response checked against the OpenAPI document."""

from __future__ import annotations

import io
import re

import docx
import pytest
from jsonschema.exceptions import ValidationError
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate as validate_spec

from kb.config import Settings
from kb.knowledge_base import KnowledgeBase
from tests.cli.test_cli import SEARCH_FIELDS
from tests.portal_client import signed_in
from webapp import create_app
from webapp.apispec import openapi_document

SPEC: dict = {}  # the document of the app under test, filled by the `client` fixture


def check(response, path: str, method: str = "get"):
    """Validate a response against the schema the OpenAPI document gives for its path, method and status."""
    if not SPEC:
        SPEC.update(openapi_document())  # made when the first app was created (webapp.apispec.describe)
    described = SPEC["paths"][path][method]["responses"]
    status = str(response.status_code)
    assert status in described, f"{method.upper()} {path} answered {status}, which the document does not describe"
    content = described[status].get("content", {}).get("application/json")
    assert content is not None, f"{path} {status} has no JSON schema"
    body = response.get_json()
    schema = {**content["schema"], "components": SPEC["components"]}
    try:
        OAS31Validator(schema).validate(body)
    except ValidationError as exc:
        raise AssertionError(f"{method.upper()} {path} {status} does not match the document: {exc.message}") from None
    return body


@pytest.fixture(scope="module")
def client(corpus_kb):
    app = create_app({"KB_INSTANCE": corpus_kb, "TESTING": True, "KB_WARM_UP": False})
    SPEC.update(openapi_document())
    return signed_in(app)


@pytest.fixture
def fresh_client(tmp_path, models_dir, embedder):
    """A portal on an empty knowledge base of its own (for uploads and deletes)."""
    kb = KnowledgeBase.open(Settings(data_dir=tmp_path / "data", models_dir=models_dir), embedder=embedder)
    app = create_app({"KB_INSTANCE": kb, "TESTING": True, "KB_WARM_UP": False, "MAX_CONTENT_LENGTH": 2_000_000})
    yield signed_in(app)
    kb.close()


def make_docx(*paragraphs: str) -> bytes:
    document = docx.Document()
    for text in paragraphs:
        document.add_paragraph(text)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def test_openapi_document_is_valid_and_describes_every_route(client):
    validate_spec(SPEC)
    served = client.get("/api/v1/openapi.json").get_json()
    assert served == SPEC
    rules = {re.sub(r"<(?:int:)?(\w+)>", r"{\1}", r.rule) for r in client.application.url_map.iter_rules()
             if r.rule.startswith("/api/") or r.rule in ("/healthz", "/readyz")}
    assert rules == set(SPEC["paths"])


def test_search_gives_the_cli_fields_and_matches_the_document(client):
    body = check(client.get("/api/v1/search", query_string={"q": "ลูกค้ารอสายนาน", "k": 3}), "/api/v1/search")
    assert len(body["results"]) == 3
    for hit in body["results"]:
        assert SEARCH_FIELDS <= set(hit)
    assert body["query"]["mode"] == "hybrid" and body["query"]["terms"]


@pytest.mark.parametrize("mode", ["hybrid", "dense", "keyword"])
def test_search_filters_and_modes(client, mode):
    body = check(client.get("/api/v1/search", query_string={
        "q": "internet slow", "k": 5, "lang": "en", "kind": "note", "mode": mode, "facets": "1"}), "/api/v1/search")
    assert body["results"] and body["query"]["mode"] == mode
    assert {h["lang"] for h in body["results"]} == {"en"} and {h["kind"] for h in body["results"]} == {"note"}
    assert set(body["facets"]["kind"]) == {"note"}


def test_search_pages_follow_each_other(client):
    first = check(client.get("/api/v1/search?q=data+quality&k=4"), "/api/v1/search")
    second = check(client.get("/api/v1/search?q=data+quality&k=4&offset=4"), "/api/v1/search")
    assert first["has_more"]
    assert not {h["doc_id"] for h in first["results"]} & {h["doc_id"] for h in second["results"]}


@pytest.mark.parametrize(("query", "code", "named"), [
    ({"q": ""}, "empty_query", "empty"),
    ({"q": "   "}, "empty_query", "empty"),
    ({"q": "x", "k": "0"}, "bad_parameter", "k"),
    ({"q": "x", "k": "many"}, "bad_parameter", "k"),
    ({"q": "x", "lang": "fr"}, "bad_parameter", "lang"),
    ({"q": "x", "kind": "memo"}, "bad_parameter", "kind"),
    ({"q": "x", "mode": "fuzzy"}, "bad_parameter", "mode"),
    ({"q": "x", "from": "yesterday"}, "bad_parameter", "from"),
    ({"q": "x", "from": "2025-02-01", "to": "2025-01-01"}, "bad_parameter", "from"),
])
def test_search_errors_name_the_parameter(client, query, code, named):
    response = client.get("/api/v1/search", query_string=query)
    assert response.status_code == 400
    body = check(response, "/api/v1/search")
    assert body["error"]["code"] == code and named in body["error"]["message"]


def test_sql_metacharacters_in_parameters_are_plain_text(client):
    for value in ["'; DROP TABLE documents; --", '" OR 1=1 --', "%_\\"]:
        response = client.get("/api/v1/search", query_string={"q": value, "product": value, "tag": value})
        check(response, "/api/v1/search")
    assert client.get("/api/v1/documents?limit=1").get_json()["total"] > 0


def test_ask_cites_passages(client):
    body = check(client.post("/api/v1/ask", json={"question": "ใครควรเป็นผู้นำการเปลี่ยนแปลงในโครงการ CRM?"}),
                 "/api/v1/ask", "post")
    assert body["citations"]
    citation = body["citations"][0]
    document = client.get(f"/api/v1/documents/{citation['doc_id']}").get_json()
    assert document["text"][citation["start"]:citation["end"]] == citation["text"]


@pytest.mark.parametrize("payload", [None, [], {"q": "x"}, {"question": 3}, {"question": "  "}])
def test_ask_errors(client, payload):
    response = client.post("/api/v1/ask", json=payload) if payload is not None else client.post(
        "/api/v1/ask", data="not json", content_type="application/json")
    assert response.status_code == 400
    assert check(response, "/api/v1/ask", "post")["error"]["code"] in {"bad_json", "bad_parameter", "empty_query"}


def test_documents_list_fetch_and_errors(client, corpus_kb):
    body = check(client.get("/api/v1/documents?limit=5&kind=guidance"), "/api/v1/documents")
    assert len(body["documents"]) == 5 and body["total"] == corpus_kb.stats().kinds["guidance"]
    doc_id = body["documents"][0]["id"]
    document = check(client.get(f"/api/v1/documents/{doc_id}"), "/api/v1/documents/{doc_id}")
    assert document["passages"] and document["text"]
    assert all(r["passage_lang"] not in document["languages"] for r in document["related"])
    missing = client.get("/api/v1/documents/999999")
    assert missing.status_code == 404 and check(missing, "/api/v1/documents/{doc_id}")["error"]["code"] == "not_found"
    for bad in ["limit=0", "limit=1000", "offset=-1", "kind=memo", "lang=de"]:
        response = client.get(f"/api/v1/documents?{bad}")
        assert response.status_code == 400, bad
        check(response, "/api/v1/documents")


def test_uploaded_docx_is_found_by_a_phrase_inside_it_and_deleted_from_both_indexes(fresh_client):
    data = make_docx("Escalation playbook", "When a FiberNet outage lasts over four hours, the duty manager "
                     "calls every affected business customer personally.")
    response = fresh_client.post("/api/v1/documents", data={"files": (io.BytesIO(data), "playbook.docx")},
                                 content_type="multipart/form-data")
    assert response.status_code == 201
    result = check(response, "/api/v1/documents", "post")["results"][0]
    assert result["status"] == "added" and result["name"] == "playbook.docx"
    doc_id = result["doc_ids"][0]
    for mode in ("hybrid", "keyword", "dense"):
        hits = fresh_client.get("/api/v1/search", query_string={
            "q": "duty manager calls every affected business customer", "mode": mode}).get_json()["results"]
        assert hits and hits[0]["doc_id"] == doc_id, mode
    again = fresh_client.post("/api/v1/documents", data={"files": (io.BytesIO(data), "playbook.docx")},
                              content_type="multipart/form-data")
    assert again.status_code == 200 and again.get_json()["results"][0]["status"] == "skipped"
    deleted = check(fresh_client.delete(f"/api/v1/documents/{doc_id}"), "/api/v1/documents/{doc_id}", "delete")
    assert deleted["deleted"]
    for mode in ("keyword", "dense"):
        hits = fresh_client.get("/api/v1/search", query_string={"q": "duty manager", "mode": mode}).get_json()
        assert doc_id not in {h["doc_id"] for h in hits["results"]}
    assert fresh_client.get(f"/api/v1/documents/{doc_id}").status_code == 404
    assert fresh_client.delete(f"/api/v1/documents/{doc_id}").status_code == 404


def test_each_uploaded_file_gets_its_own_result(fresh_client):
    files = [
        (io.BytesIO(b"# Call-back rule\n\nCall the customer back within one hour."), "rule.md"),
        (io.BytesIO(b"%PDF-1.4 this is not really a pdf"), "broken.pdf"),
        (io.BytesIO(b"MZ\x90\x00"), "tool.exe"),
        (io.BytesIO(b""), "empty.txt"),
    ]
    response = fresh_client.post("/api/v1/documents", data={"files": files}, content_type="multipart/form-data")
    assert response.status_code == 201
    results = {r["name"]: r for r in check(response, "/api/v1/documents", "post")["results"]}
    assert results["rule.md"]["status"] == "added"
    for name in ("broken.pdf", "tool.exe", "empty.txt"):
        assert results[name]["status"] == "failed" and name in results[name]["error"], results[name]
        assert "/" not in results[name]["error"].split(name)[0], "the server's paths stay private"


def test_upload_errors(fresh_client):
    none = fresh_client.post("/api/v1/documents", data={}, content_type="multipart/form-data")
    assert none.status_code == 400 and check(none, "/api/v1/documents", "post")["error"]["code"] == "no_files"
    bad = fresh_client.post("/api/v1/documents", json={"title": "no text"})
    assert bad.status_code == 400
    only_bad = fresh_client.post("/api/v1/documents", data={"files": (io.BytesIO(b"\x00\x01"), "x.exe")},
                                 content_type="multipart/form-data")
    assert only_bad.status_code == 422 and check(only_bad, "/api/v1/documents", "post")
    huge = fresh_client.post("/api/v1/documents", data={"files": (io.BytesIO(b"a" * 3_000_000), "big.txt")},
                             content_type="multipart/form-data")
    assert huge.status_code == 413 and check(huge, "/api/v1/documents", "post")["error"]["code"] == "too_large"


def test_pasted_text_is_added_with_its_language_and_topics(fresh_client):
    response = fresh_client.post("/api/v1/documents", json={
        "title": "การโทรกลับ", "text": "ต้องโทรกลับหาลูกค้าภายในหนึ่งชั่วโมงหลังได้รับเรื่องร้องเรียน",
        "lang": "th", "tags": ["complaint-handling"]})
    assert response.status_code == 201
    doc_id = check(response, "/api/v1/documents", "post")["results"][0]["doc_ids"][0]
    document = fresh_client.get(f"/api/v1/documents/{doc_id}").get_json()
    assert document["lang"] == "th" and document["tags"] == ["complaint-handling"]
    assert document["title"] == "การโทรกลับ"


def test_health_and_readiness(client, fresh_client):
    check(client.get("/healthz"), "/healthz")
    ready = check(client.get("/readyz"), "/readyz")
    assert ready["status"] == "ready" and ready["chunks"] == ready["vectors"] == ready["keyword_chunks"] > 0
    assert check(fresh_client.get("/readyz"), "/readyz")["chunks"] == 0


def test_unknown_routes_and_methods_answer_json_errors(client):
    missing = client.get("/api/v1/nothing-here")
    assert missing.status_code == 404 and missing.get_json()["error"]["code"] == "not_found"
    wrong = client.put("/api/v1/search")
    assert wrong.status_code == 405 and wrong.get_json()["error"]["code"] == "method_not_allowed"
