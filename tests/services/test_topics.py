"""Topics: from front matter and folders, edited in the portal and kept across re-ingests, browsed per language."""

from __future__ import annotations

from pathlib import PurePath

import pytest

from indexer.pipeline import ingest_paths
from kb.index.chunk_table import SearchFilters
from kb.services.topics import (
    TopicError,
    list_topics,
    normalize_topic,
    set_document_topics,
    topic_documents,
    topics_from_folders,
)
from tests.portal_client import signed_in
from tests.webapp.test_api import check
from webapp import create_app


def test_topic_names_have_one_spelling():
    assert normalize_topic("  Data Quality ") == "data-quality"
    assert normalize_topic("call_center") == "call-center"
    assert normalize_topic("คุณภาพข้อมูล") == "คุณภาพข้อมูล"
    for bad in ("", "   ", "a,b", "<script>", "x" * 65):
        with pytest.raises(TopicError):
            normalize_topic(bad)


def test_folders_between_the_ingested_folder_and_a_file_are_its_topics():
    assert topics_from_folders(PurePath("policies/Data Quality")) == ["policies", "data-quality"]
    assert topics_from_folders(PurePath("guidance/en")) == []
    assert topics_from_folders(PurePath(".")) == []


GUIDE = "Clean customer records every month: remove duplicates and check that addresses are complete."


@pytest.fixture
def topic_kb(make_kb, tmp_path):
    kb = make_kb()
    folder = tmp_path / "knowledge"
    (folder / "data-quality" / "en").mkdir(parents=True)
    (folder / "data-quality" / "en" / "records.txt").write_text("Keeping records clean\n\n" + GUIDE)
    (folder / "tagged.md").write_text("---\ntitle: Tagged\ntags: [call-center]\n---\nAnswer calls within a minute.\n")
    report = ingest_paths(kb.engine, [folder], progress=False)
    assert report.failed == [] and report.added == 2
    return kb, folder


def _doc_id(kb, title: str) -> int:
    return next(r.doc_id for r in kb.search(title, k=5).results if r.title == title)


def test_topics_come_from_folders_unless_the_file_names_its_own(topic_kb):
    kb, _ = topic_kb
    topics = {t.tag: t.to_dict() for t in list_topics(kb.engine)}
    assert topics == {"data-quality": {"tag": "data-quality", "documents": 1, "languages": {"en": 1}},
                      "call-center": {"tag": "call-center", "documents": 1, "languages": {"en": 1}}}


def test_edited_topics_filter_search_and_survive_a_changed_file(topic_kb):
    kb, folder = topic_kb
    doc_id = _doc_id(kb, "Keeping records clean")
    assert set_document_topics(kb.engine, doc_id, ["Training", "data-quality"]) == ["training", "data-quality"]
    hits = kb.search("duplicates addresses", filters=SearchFilters(tags=["training"])).results
    assert [h.doc_id for h in hits] == [doc_id]

    # Remove the folder's topic, then change the file: the file's topic stays removed, the added one stays.
    set_document_topics(kb.engine, doc_id, ["training"])
    (folder / "data-quality" / "en" / "records.txt").write_text("Keeping records clean\n\n" + GUIDE + " Weekly.")
    report = ingest_paths(kb.engine, [folder], progress=False)
    assert report.updated == 1
    assert kb.get_document(doc_id).tag_names == ["training"]
    assert kb.search("duplicates addresses", filters=SearchFilters(tags=["data-quality"])).results == []
    assert set_document_topics(kb.engine, 10**9, ["x"]) is None


def test_the_corpus_topics_exist_in_every_language(corpus_kb):
    topics = {t.tag: t for t in list_topics(corpus_kb.engine)}
    assert set(topics["data-quality"].languages) == {"en", "th", "zh"}
    by_lang = topic_documents(corpus_kb.engine, "data-quality")
    assert set(by_lang) == {"en", "th", "zh"}
    assert all(d.kind == "guidance" and "data-quality" in d.tags for docs in by_lang.values() for d in docs)
    assert set(topic_documents(corpus_kb.engine, "data-quality", lang="th")) == {"th"}
    assert topic_documents(corpus_kb.engine, "no-such-topic") == {}


@pytest.fixture
def topic_client(topic_kb):
    kb, _ = topic_kb
    return kb, signed_in(create_app({"KB_INSTANCE": kb, "TESTING": True, "KB_WARM_UP": False}))


def test_topics_api(topic_client):
    kb, client = topic_client
    body = check(client.get("/api/v1/topics"), "/api/v1/topics")
    assert {t["tag"] for t in body["topics"]} == {"data-quality", "call-center"}
    body = check(client.get("/api/v1/topics/data-quality"), "/api/v1/topics/{tag}")
    assert [d["title"] for d in body["documents"]["en"]] == ["Keeping records clean"]
    check(client.get("/api/v1/topics/no-such-topic"), "/api/v1/topics/{tag}")
    response = client.get("/api/v1/topics/data-quality?lang=xx")
    assert check(response, "/api/v1/topics/{tag}")["error"]["message"].startswith("lang:")

    doc_id = _doc_id(kb, "Keeping records clean")
    path = "/api/v1/documents/{doc_id}/topics"
    body = check(client.put(f"/api/v1/documents/{doc_id}/topics", json={"topics": ["Workshops Training"]}), path, "put")
    assert body == {"doc_id": doc_id, "topics": ["workshops-training"]}
    for bad in ({"topics": "x"}, {"topics": ["a;b"]}, [], {"topics": [1]}):
        response = client.put(f"/api/v1/documents/{doc_id}/topics", json=bad)
        assert response.status_code == 400
        check(response, path, "put")
    assert kb.get_document(doc_id).tag_names == ["workshops-training"]  # nothing written by the bad requests
    assert check(client.put("/api/v1/documents/999999/topics", json={"topics": []}), path, "put")["error"]["code"] == "not_found"


def test_topic_pages_and_the_edit_form(topic_client):
    kb, client = topic_client
    page = client.get("/topics?ui=en").get_data(as_text=True)
    assert "data quality" in page.lower() and "/topics/call-center" in page
    page = client.get("/topics/data-quality?ui=en").get_data(as_text=True)
    assert "Keeping records clean" in page
    assert client.get("/topics/nothing-here").status_code == 404

    doc_id = _doc_id(kb, "Keeping records clean")
    response = client.post(f"/documents/{doc_id}/topics", data={"topics": "Role play, data-quality"})
    assert response.status_code == 303
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "role play" in page.lower() and "Topics saved" in page
    response = client.post(f"/documents/{doc_id}/topics", data={"topics": "<b>bad</b>"})
    assert response.status_code == 400
    assert "&lt;b&gt;bad&lt;/b&gt;" in response.get_data(as_text=True)
    assert kb.get_document(doc_id).tag_names == ["data-quality", "role-play"]
    assert client.post("/documents/999999/topics", data={"topics": "x"}).status_code == 404
