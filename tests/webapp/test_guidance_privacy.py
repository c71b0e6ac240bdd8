"""Personal data in guidance, not only in notes: found at ingest, kept out of the indexes, masked for partners.

A guide written from a real case often keeps the customer's phone, e-mail or
ID. A partner-visible guide like that must not show them to a partner in
search results, answers or the document page; an agent still sees them.
"""

from __future__ import annotations

import io
import json

import pytest

from kb.config import Settings
from kb.knowledge_base import KnowledgeBase
from tests.portal_client import signed_in
from webapp import create_app

PHONE, EMAIL, RESIDENT_ID = "081-234-5678", "somchai.k@example.co.th", "11010519491231002X"
GUIDE = f"""---
title: Calling back after a failed installation
visibility: partner
---
# Calling back after a failed installation

When an installation fails, the technician calls the customer back within two hours to book a new visit.
Example from last month: we called Khun Somchai at {PHONE} and wrote to {EMAIL} the same day.
客户身份证号 {RESIDENT_ID} 已核实后才可改约上门时间。
"""


@pytest.fixture(scope="module")
def app(tmp_path_factory, models_dir, embedder):
    data_dir = tmp_path_factory.mktemp("guidance-privacy") / "data"
    kb = KnowledgeBase.open(Settings(data_dir=data_dir, models_dir=models_dir), embedder=embedder)
    app = create_app({"KB_INSTANCE": kb, "TESTING": True, "KB_WARM_UP": False})
    admin = signed_in(app, "admin")
    added = admin.post("/api/v1/documents", data={"files": (io.BytesIO(GUIDE.encode()), "call-back.md")},
                       content_type="multipart/form-data")
    assert added.status_code == 201, added.get_json()
    yield app
    kb.close()


def _everything_seen(client) -> tuple[str, dict]:
    search = client.get("/api/v1/search", query_string={"q": "call back after a failed installation"}).get_json()
    assert search["results"], "the guide is found"
    doc_id = search["results"][0]["doc_id"]
    document = client.get(f"/api/v1/documents/{doc_id}").get_json()
    answer = client.post("/api/v1/ask", json={"question": "Who did we call back about the failed installation?"})
    page = client.get(f"/documents/{doc_id}").get_data(as_text=True)
    return json.dumps([search, document, answer.get_json()], ensure_ascii=False) + page, document


def test_a_partner_never_sees_personal_data_written_in_guidance(app):
    seen, document = _everything_seen(signed_in(app, "partner"))
    for value in (PHONE, EMAIL, RESIDENT_ID):
        assert value not in seen
    assert "[phone]" in document["text"] and "[email]" in document["text"]
    assert "technician calls the customer back within two hours" in document["text"]  # the guidance itself stays


def test_an_agent_sees_the_guide_as_written(app):
    seen, document = _everything_seen(signed_in(app, "agent"))
    for value in (PHONE, EMAIL, RESIDENT_ID):
        assert value in document["text"] and value in seen


def test_personal_data_in_guidance_cannot_be_searched_for(app):
    agent = signed_in(app, "agent")
    for value in (PHONE, RESIDENT_ID):
        hits = agent.get("/api/v1/search", query_string={"q": value, "mode": "keyword"}).get_json()["results"]
        assert hits == [], value
