"""Trainers' collections: gathering, ordering, annotating, parallel passages, handouts, sharing, the API and pages.

The bundled corpus is used through a copy of the session knowledge base (it is
never written to); changes that need a knowledge base of their own (deleting
a document) get a fresh one, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
import shutil
from urllib.parse import quote

import docx
import pytest
from sqlalchemy import func, select

from kb.config import Settings
from kb.documents import NOTE, DocumentInput, NoteFields, short_source
from kb.knowledge_base import KnowledgeBase
from kb.search.answer import answer_question
from kb.search.weights import PARALLEL_MIN_SIMILARITY
from kb.services.collections import (
    CollectionError,
    ItemView,
    NotFoundError,
    add_item,
    annotate_item,
    create_collection,
    delete_collection,
    get_collection,
    list_collections,
    move_item,
    parallel_passages,
    remove_item,
    reorder_items,
    set_sharing,
    shared_collection,
    update_collection,
)
from kb.services.handouts import HandoutLabels, build_handout, to_docx, to_markdown
from kb.storage.models import Chunk, Collection, CollectionItem, Document
from tests.portal_client import signed_in
from tests.webapp.test_api import SPEC, check
from webapp import create_app
from webapp.downloads import content_disposition

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


@pytest.fixture(scope="module")
def corpus_copy(corpus_data_dir, models_dir, embedder, tmp_path_factory):
    """The bundled corpus in a knowledge base of this module's own (collections are written to it)."""
    data_dir = tmp_path_factory.mktemp("collections") / "data"
    shutil.copytree(corpus_data_dir, data_dir, ignore=shutil.ignore_patterns("*.lock"))
    kb = KnowledgeBase.open(Settings(data_dir=data_dir, models_dir=models_dir), embedder=embedder)
    yield kb
    kb.close()


@pytest.fixture(scope="module")
def client(corpus_copy):
    app = create_app({"KB_INSTANCE": corpus_copy, "TESTING": True, "KB_WARM_UP": False})
    return signed_in(app)


def guidance_doc(kb: KnowledgeBase, path: str) -> int:
    """The id of a bundled guidance file, e.g. "en/breaking-silos-sbu.md"."""
    with kb.store.session() as s:
        return s.scalar(select(Document.id).where(Document.source_file.endswith(f"/guidance/{path}")))


def chunks_of(kb: KnowledgeBase, doc_id: int) -> list:
    with kb.store.session() as s:
        return list(s.execute(select(Chunk.id, Chunk.start, Chunk.end, Chunk.lang, Chunk.text)
                              .where(Chunk.document_id == doc_id).order_by(Chunk.ordinal)))


def written(kb: KnowledgeBase) -> tuple[int, int, str]:
    """What the collection tables hold, to show that a refused change wrote nothing."""
    with kb.store.session() as s:
        names = ",".join(s.scalars(select(Collection.name).order_by(Collection.id)))
        return (s.scalar(select(func.count(Collection.id))), s.scalar(select(func.count(CollectionItem.id))), names)


SMALL_DOCS = [
    ("silos.md", "Breaking silos\n\nShare the complaint history of every household with all business units, "
                 "so that no customer tells the same story twice."),
    ("quality.md", "Data quality\n\nCheck every new customer record for duplicates before it is saved, and "
                   "correct addresses at the first contact."),
    ("script.md", "A warning for trainers\n\nNever paste <script>alert('x')</script> into the notes field: "
                  "the CRM shows it to every agent."),
]


@pytest.fixture
def small_kb(make_kb):
    kb = make_kb()
    outcomes = kb.add_documents([
        DocumentInput(source=f"/docs/{name}", source_file=f"/docs/{name}", title="", text=text,
                      title_from_text=True, language="en")
        for name, text in SMALL_DOCS
    ])
    assert [o.status for o in outcomes] == ["added"] * 3
    kb.doc_ids = [o.doc_id for o in outcomes]
    return kb


# -- kb level -----------------------------------------------------------------------


def test_collections_are_created_listed_renamed_and_deleted(small_kb):
    first = create_collection(small_kb.engine, "  Silos   workshop ", "Day one", "th", owner="browser:abc")
    second = create_collection(small_kb.engine, "ข้อมูลคุณภาพ", lang="en")
    assert (first.name, first.description, first.lang, first.owner) == ("Silos workshop", "Day one", "th", "browser:abc")
    assert [c.id for c in list_collections(small_kb.engine)] == [second.id, first.id]
    renamed = update_collection(small_kb.engine, first.id, name="Silos, day one", lang="zh")
    assert (renamed.name, renamed.description, renamed.lang) == ("Silos, day one", "Day one", "zh")
    assert list_collections(small_kb.engine)[0].id == first.id  # the most recently changed first
    delete_collection(small_kb.engine, first.id)
    assert [c.id for c in list_collections(small_kb.engine)] == [second.id]
    with pytest.raises(NotFoundError):
        get_collection(small_kb.engine, first.id)


def test_a_search_result_is_added_with_its_passage_copied_from_the_document(corpus_copy):
    hit = corpus_copy.search("data quality management duplicates", k=1, lang="en").results[0]
    collection = create_collection(corpus_copy.engine, "Data quality")
    outcome = add_item(corpus_copy.engine, collection.id, hit.doc_id, hit.chunk_id)
    item = outcome.item
    assert outcome.created
    assert (item.doc_id, item.chunk_id, item.start, item.end) == (hit.doc_id, hit.chunk_id, hit.best.start, hit.best.end)
    assert (item.text, item.lang, item.title, item.source) == (hit.text, "en", hit.title, hit.source)
    assert get_collection(corpus_copy.engine, collection.id).items == [item]


def test_an_answer_is_added_by_its_exact_offsets(corpus_copy):
    answer = answer_question(corpus_copy.engine, "Who should lead the change when CRM is introduced?", min_confidence=0.0)
    assert answer.answer
    cited = answer.citations[0]
    collection = create_collection(corpus_copy.engine, "Leading change")
    item = add_item(corpus_copy.engine, collection.id, cited.doc_id, cited.chunk_id, cited.start, cited.end).item
    assert item.text == answer.answer and (item.start, item.end) == (cited.start, cited.end)
    assert item.chunk_id == cited.chunk_id and item.lang == cited.lang


def test_adding_the_same_passage_twice_gives_back_the_item_already_there(small_kb):
    doc_id = small_kb.doc_ids[0]
    chunk = chunks_of(small_kb, doc_id)[0]
    collection = create_collection(small_kb.engine, "Twice")
    first = add_item(small_kb.engine, collection.id, doc_id, chunk.id, annotation="first")
    again = add_item(small_kb.engine, collection.id, doc_id, chunk.id, annotation="second")
    same_span = add_item(small_kb.engine, collection.id, doc_id, start=chunk.start, end=chunk.end)
    assert first.created and not again.created and not same_span.created
    assert again.item == first.item == same_span.item
    assert len(get_collection(small_kb.engine, collection.id).items) == 1


def test_control_characters_typed_into_a_collection_are_dropped_and_its_handout_still_exports(small_kb):
    """A name, description or note pasted with control characters (a NUL, a vertical tab) keeps only what shows:
    Word cannot hold them, and exporting the handout was a 500."""
    collection = create_collection(small_kb.engine, "Silos\x00 day\x0b one", "Pasted\x01 notes\n\nline two")
    assert (collection.name, collection.description) == ("Silos day one", "Pasted notes\n\nline two")
    item = add_item(small_kb.engine, collection.id, small_kb.doc_ids[0]).item
    annotate_item(small_kb.engine, collection.id, item.id, "Ask\x1b the group\x7f")
    view = get_collection(small_kb.engine, collection.id)
    assert view.items[0].annotation == "Ask the group"
    text = docx_text(to_docx(build_handout(view)))
    assert "Silos day one" in text and "Ask the group" in text
    with pytest.raises(CollectionError):
        create_collection(small_kb.engine, "\x00\x01 ")  # nothing visible is no name


def test_items_are_moved_reordered_annotated_and_removed(small_kb):
    collection = create_collection(small_kb.engine, "Order")
    a, b, c = (add_item(small_kb.engine, collection.id, doc_id).item.id for doc_id in small_kb.doc_ids)

    def order():
        return [i.id for i in get_collection(small_kb.engine, collection.id).items]

    assert order() == [a, b, c]
    move_item(small_kb.engine, collection.id, c, -1)
    assert order() == [a, c, b]
    move_item(small_kb.engine, collection.id, a, -1)  # already first: stays
    move_item(small_kb.engine, collection.id, a, +5)
    assert order() == [c, b, a]
    reorder_items(small_kb.engine, collection.id, [b, a, c])
    assert order() == [b, a, c]
    assert [i.position for i in get_collection(small_kb.engine, collection.id).items] == [0, 1, 2]
    annotate_item(small_kb.engine, collection.id, a, "  Ask the group: who owns this record?  ")
    assert get_collection(small_kb.engine, collection.id).items[1].annotation == "Ask the group: who owns this record?"
    remove_item(small_kb.engine, collection.id, b)
    view = get_collection(small_kb.engine, collection.id)
    assert [i.id for i in view.items] == [a, c] and [i.position for i in view.items] == [0, 1]


@pytest.mark.parametrize(("order", "named"), [
    ("missing", "missing"), ("repeated", "repeated"), ("unknown", "not in this collection"),
    ("not a list", "list of item ids"), ("strings", "list of item ids"),
])
def test_a_new_order_must_name_every_item_exactly_once(small_kb, order, named):
    collection = create_collection(small_kb.engine, "Order")
    a, b, c = (add_item(small_kb.engine, collection.id, doc_id).item.id for doc_id in small_kb.doc_ids)
    given = {"missing": [a, b], "repeated": [a, b, c, a], "unknown": [a, b, c, 99_999],
             "not a list": {"items": [a, b, c]}, "strings": [str(a), str(b), str(c)]}[order]
    with pytest.raises(CollectionError, match=named) as caught:
        reorder_items(small_kb.engine, collection.id, given)
    assert caught.value.field == "items"
    assert [i.id for i in get_collection(small_kb.engine, collection.id).items] == [a, b, c]


def test_bad_values_name_their_field_and_write_nothing(small_kb):
    doc_id, other_doc = small_kb.doc_ids[:2]
    collection = create_collection(small_kb.engine, "Kept")
    before = written(small_kb)
    length = len(small_kb.get_document(doc_id).text)
    other_chunk = chunks_of(small_kb, other_doc)[0].id
    cases = [
        (lambda: create_collection(small_kb.engine, "   "), "name"),
        (lambda: create_collection(small_kb.engine, "x" * 201), "name"),
        (lambda: create_collection(small_kb.engine, "Fine", lang="fr"), "lang"),
        (lambda: update_collection(small_kb.engine, collection.id, name=""), "name"),
        (lambda: update_collection(small_kb.engine, collection.id, name="New name", lang="de"), "lang"),
        (lambda: add_item(small_kb.engine, collection.id, doc_id, other_chunk), "chunk_id"),
        (lambda: add_item(small_kb.engine, collection.id, doc_id, start=0, end=length + 1), "start"),
        (lambda: add_item(small_kb.engine, collection.id, doc_id, start=5, end=5), "start"),
        (lambda: add_item(small_kb.engine, collection.id, doc_id, start=3), "end"),
        (lambda: add_item(small_kb.engine, collection.id, doc_id, annotation="x" * 10_001), "annotation"),
    ]
    for action, field in cases:
        with pytest.raises(CollectionError) as caught:
            action()
        assert caught.value.field == field, caught.value
    for action in (lambda: add_item(small_kb.engine, collection.id, 99_999),
                   lambda: add_item(small_kb.engine, 99_999, doc_id),
                   lambda: annotate_item(small_kb.engine, collection.id, 99_999, "x"),
                   lambda: remove_item(small_kb.engine, collection.id, 99_999),
                   lambda: update_collection(small_kb.engine, 99_999, name="x"),
                   lambda: delete_collection(small_kb.engine, 99_999)):
        with pytest.raises(NotFoundError):
            action()
    assert written(small_kb) == before


def test_an_item_keeps_its_copied_text_after_its_document_is_deleted(small_kb):
    doc_id = small_kb.doc_ids[1]
    collection = create_collection(small_kb.engine, "Survives")
    item = add_item(small_kb.engine, collection.id, doc_id, annotation="Why check at first contact?").item
    assert small_kb.delete(["/docs/quality.md"]) == ["/docs/quality.md"]
    kept = get_collection(small_kb.engine, collection.id).items[0]
    assert kept.doc_id is None
    assert (kept.text, kept.title, kept.source, kept.annotation) == (item.text, item.title, item.source,
                                                                      "Why check at first contact?")
    handout = build_handout(get_collection(small_kb.engine, collection.id), document_url=lambda d: f"/documents/{d}")
    assert handout.sources[0].url is None
    markdown = to_markdown(handout, HandoutLabels(document_gone="gone"))
    assert "correct addresses at the first contact." in markdown and "(gone)" in markdown


@pytest.mark.parametrize("english", ["en/breaking-silos-sbu.md", "en/data-quality-management.md"])
def test_guidance_in_three_languages_finds_its_thai_and_chinese_versions(corpus_copy, english):
    stem = {"en/breaking-silos-sbu.md": "breaking-silos-sbu", "en/data-quality-management.md": "data-quality"}[english]
    doc_id = guidance_doc(corpus_copy, english)
    expected = {"th": guidance_doc(corpus_copy, f"th/{stem}.md"), "zh": guidance_doc(corpus_copy, f"zh/{stem}.md")}
    collection = create_collection(corpus_copy.engine, f"Parallel {stem}")
    item = add_item(corpus_copy.engine, collection.id, doc_id, chunks_of(corpus_copy, doc_id)[0].id).item
    found = parallel_passages(corpus_copy.engine, [item])[item.id]
    assert {p.lang: p.doc_id for p in found} == expected
    assert all(p.score >= PARALLEL_MIN_SIMILARITY for p in found)
    for p in found:
        chunk = next(c for c in chunks_of(corpus_copy, p.doc_id) if c.id == p.chunk_id)
        assert (p.text, p.start, p.end, p.lang) == (chunk.text, chunk.start, chunk.end, chunk.lang)


def test_an_item_whose_passage_is_gone_is_matched_by_its_text(corpus_copy):
    doc_id = guidance_doc(corpus_copy, "en/breaking-silos-sbu.md")
    chunk = chunks_of(corpus_copy, doc_id)[0]
    with corpus_copy.store.session() as s:
        title = s.scalar(select(Document.title).where(Document.id == doc_id))  # items keep a copy of it
    orphan = ItemView(-1, 0, None, None, chunk.start, chunk.end, "en", chunk.text, title, "/gone.md", "", None)
    found = parallel_passages(corpus_copy.engine, [orphan])[-1]
    assert {p.lang: p.doc_id for p in found} == {
        "th": guidance_doc(corpus_copy, "th/breaking-silos-sbu.md"),
        "zh": guidance_doc(corpus_copy, "zh/breaking-silos-sbu.md"),
    }


@pytest.mark.parametrize("only_one_language", [
    "en/call-center-wait-times.md", "zh/segments-of-one-structure.md", "zh/value-chain-push-pull.md",
])
def test_a_subject_written_in_one_language_only_has_no_parallel_passages(corpus_copy, only_one_language):
    doc_id = guidance_doc(corpus_copy, only_one_language)
    collection = create_collection(corpus_copy.engine, f"Alone {only_one_language}")
    items = [add_item(corpus_copy.engine, collection.id, doc_id, c.id).item for c in chunks_of(corpus_copy, doc_id)]
    found = parallel_passages(corpus_copy.engine, items)
    assert found == {item.id: [] for item in items}


def test_a_parallel_passage_is_added_right_after_its_item(corpus_copy):
    english = guidance_doc(corpus_copy, "en/breaking-silos-sbu.md")
    other = guidance_doc(corpus_copy, "en/data-quality-management.md")
    collection = create_collection(corpus_copy.engine, "Bilingual")
    first = add_item(corpus_copy.engine, collection.id, english, chunks_of(corpus_copy, english)[0].id).item
    last = add_item(corpus_copy.engine, collection.id, other, chunks_of(corpus_copy, other)[0].id).item
    thai = next(p for p in parallel_passages(corpus_copy.engine, [first])[first.id] if p.lang == "th")
    added = add_item(corpus_copy.engine, collection.id, thai.doc_id, thai.chunk_id, after_item_id=first.id).item
    assert [i.id for i in get_collection(corpus_copy.engine, collection.id).items] == [first.id, added.id, last.id]
    assert added.lang == "th" and added.text == thai.text


def test_sharing_gives_a_token_until_it_is_turned_off(small_kb):
    collection = create_collection(small_kb.engine, "Shared")
    token = set_sharing(small_kb.engine, collection.id, True).share_token
    assert token and len(token) >= 32
    assert set_sharing(small_kb.engine, collection.id, True).share_token == token  # turning it on again keeps the link
    assert shared_collection(small_kb.engine, token).id == collection.id
    assert set_sharing(small_kb.engine, collection.id, False).share_token is None
    with pytest.raises(NotFoundError):
        shared_collection(small_kb.engine, token)
    assert set_sharing(small_kb.engine, collection.id, True).share_token != token


# -- handouts -----------------------------------------------------------------------


@pytest.fixture
def workshop(small_kb):
    """A collection of the three small documents, two of them annotated, the second one first."""
    collection = create_collection(small_kb.engine, "Workshop: silos & quality", "For the Monday session.", "en")
    ids = [add_item(small_kb.engine, collection.id, doc_id).item.id for doc_id in small_kb.doc_ids]
    annotate_item(small_kb.engine, collection.id, ids[0], "Ask: who has told a story twice?")
    annotate_item(small_kb.engine, collection.id, ids[2], "Show what the agent sees.")
    reorder_items(small_kb.engine, collection.id, [ids[1], ids[0], ids[2]])
    return get_collection(small_kb.engine, collection.id)


def docx_text(data: bytes) -> str:
    document = docx.Document(io.BytesIO(data))
    return "\n".join(p.text for p in document.paragraphs)


def test_the_docx_handout_holds_every_passage_annotation_and_source_in_order(workshop):
    handout = build_handout(workshop, document_url=lambda d: f"http://hub/documents/{d}")
    text = docx_text(to_docx(handout, HandoutLabels(sources="Sources")))
    lines = [line for item in workshop.items for line in item.text.splitlines() if line.strip()]
    positions = [text.index(line) for line in lines]  # every line of every passage, in the collection's order
    assert positions == sorted(positions) and len(lines) == 6
    for item in workshop.items:
        assert short_source(item.source) in text and item.title in text and item.source not in text
        if item.annotation:
            assert item.annotation in text
    assert text.index("Sources") > positions[-1]
    assert "For the Monday session." in text and text.startswith(workshop.name)
    for source in handout.sources:
        assert f"http://hub/documents/{workshop.items[source.number - 1].doc_id}" in text


def test_the_docx_marks_each_passage_with_its_language():
    from kb.services.collections import CollectionView

    view = CollectionView(1, "สามภาษา", "", "th", "", None, None, None, 2, [
        ItemView(1, 0, 1, 1, 0, 9, "th", "ลูกค้าคือศูนย์กลาง", "หัวข้อ", "/th.md", "", None),
        ItemView(2, 1, 2, 2, 0, 9, "zh", "以客户为中心", "标题", "/zh.md", "", None),
    ])
    document = docx.Document(io.BytesIO(to_docx(build_handout(view))))
    xml = document.element.xml
    assert 'w:bidi="th-TH"' in xml and 'w:eastAsia="zh-CN"' in xml
    assert document.core_properties.language == "th-TH" and document.core_properties.title == "สามภาษา"


def test_the_markdown_handout_holds_passages_notes_and_numbered_sources(workshop):
    handout = build_handout(workshop, document_url=lambda d: f"http://hub/documents/{d}")
    markdown = to_markdown(handout)
    assert markdown.startswith("# Workshop: silos & quality\n")
    quoted = [line[2:] for line in markdown.splitlines() if line.startswith("> ")]
    for item in workshop.items:
        for line in item.text.replace("<", "\\<").splitlines():
            if line.strip():
                assert line in quoted
        if item.annotation:
            assert item.annotation in markdown
    assert "\\<script>" in markdown and "<script>" not in markdown.replace("\\<script>", "")
    sources = markdown.split("## Sources\n", 1)[1]
    assert [line.split(".")[0] for line in sources.strip().splitlines()] == ["1", "2", "3"]
    assert f"<http://hub/documents/{workshop.items[0].doc_id}>" in sources


def test_the_html_handout_escapes_passages_and_marks_their_language(small_kb, workshop):
    app = create_app({"KB_INSTANCE": small_kb, "TESTING": True, "KB_WARM_UP": False})
    response = signed_in(app).get(f"/collections/{workshop.id}/export?format=html")
    assert response.status_code == 200 and response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert "<script>" not in html and "&lt;script&gt;alert(" in html
    assert '<html lang="en">' in html and html.count('<blockquote lang="en">') == 3
    for item in workshop.items:
        assert item.title in html and short_source(item.source) in html and item.source not in html
        if item.annotation:
            assert item.annotation in html
    assert html.index("Sources") > html.index("Show what the agent sees.")
    assert "@media print" in html
    style = re.search(r"<style>(.*?)</style>", html, re.S).group(1)
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    policy = response.headers["Content-Security-Policy"]
    assert f"style-src 'sha256-{digest}';" in policy and "default-src 'none'" in policy and "script" not in policy


def test_personal_data_in_a_note_is_masked_in_the_collected_passage(small_kb):
    outcome = small_kb.add_documents([DocumentInput(
        source="/notes/n.csv#N-1", source_file="/notes/n.csv", title="N-1", kind=NOTE,
        text="Customer called from 081 234 5678 about a double charge.\n\nRefunded the second charge.",
        note=NoteFields(note_id="N-1", complaint="Customer called from 081 234 5678 about a double charge.",
                        resolution="Refunded the second charge.", customer_name="Somchai Jaidee",
                        customer_phone="0812345678"),
    )])[0]
    assert outcome.status == "added"
    collection = create_collection(small_kb.engine, "Double charges")
    item = add_item(small_kb.engine, collection.id, outcome.doc_id).item
    assert "081 234 5678" not in item.text and "[phone]" in item.text
    assert item.text.endswith("Refunded the second charge.")
    assert len(item.text) == len(small_kb.get_document(outcome.doc_id).text)  # masked in place: offsets hold


@pytest.mark.parametrize(("name", "ascii_name", "encoded"), [
    ("Silos workshop", "Silos-workshop", "Silos%20workshop"),
    ("เวิร์กช็อป ไซโล", "collection-7", quote("เวิร์กช็อป ไซโล")),
    ("打破部门墙 / 第一天", "collection-7", quote("打破部门墙 第一天")),
    ('Day "one": <silos>', "Day-one-silos", quote("Day one silos")),
])
def test_export_file_names_are_safe_for_thai_and_chinese(name, ascii_name, encoded):
    header = content_disposition("attachment", name, "collection-7", "docx")
    assert header == f"attachment; filename=\"{ascii_name}.docx\"; filename*=UTF-8''{encoded}.docx"


# -- API ----------------------------------------------------------------------------

COLLECTIONS = "/api/v1/collections"
ONE = "/api/v1/collections/{collection_id}"
ITEMS = "/api/v1/collections/{collection_id}/items"
ITEM = "/api/v1/collections/{collection_id}/items/{item_id}"
ORDER = "/api/v1/collections/{collection_id}/order"
SHARE = "/api/v1/collections/{collection_id}/share"
EXPORT = "/api/v1/collections/{collection_id}/export"


def new_collection(client, name="API workshop", **fields) -> dict:
    response = client.post(COLLECTIONS, json={"name": name, **fields})
    assert response.status_code == 201, response.get_json()
    return check(response, COLLECTIONS, "post")


def test_api_creates_lists_gets_edits_and_deletes_collections(client):
    created = new_collection(client, "ทลายไซโล", description="Workshop for SBU leads", lang="th")
    assert (created["name"], created["lang"], created["items"], created["shared"]) == ("ทลายไซโล", "th", [], False)
    assert created["owner"] == "user:test-admin"
    listed = check(client.get(COLLECTIONS), COLLECTIONS)
    assert created["id"] in [c["id"] for c in listed["collections"]]
    path = f"{COLLECTIONS}/{created['id']}"
    edited = check(client.patch(path, json={"name": "ทลายไซโล (วันที่ 1)"}), ONE, "patch")
    assert (edited["name"], edited["description"], edited["lang"]) == ("ทลายไซโล (วันที่ 1)", "Workshop for SBU leads", "th")
    assert check(client.get(path), ONE)["name"] == "ทลายไซโล (วันที่ 1)"
    assert check(client.delete(path), ONE, "delete") == {"deleted": created["id"]}
    assert check(client.get(path), ONE)["error"]["code"] == "not_found"


def test_api_adds_items_by_chunk_and_offsets_without_duplicates(client, corpus_copy):
    collection = new_collection(client)
    hit = corpus_copy.search("information security ISMS", k=1, lang="en").results[0]
    items = ITEMS.format(collection_id=collection["id"])
    by_chunk = client.post(items, json={"doc_id": hit.doc_id, "chunk_id": hit.chunk_id, "annotation": "Start here"})
    assert by_chunk.status_code == 201
    item = check(by_chunk, ITEMS, "post")
    assert (item["text"], item["annotation"], item["chunk_id"]) == (hit.text, "Start here", hit.chunk_id)
    again = client.post(items, json={"doc_id": hit.doc_id, "chunk_id": hit.chunk_id})
    assert again.status_code == 200 and check(again, ITEMS, "post")["id"] == item["id"]
    start, end = hit.best.start + 10, hit.best.start + 60
    by_offsets = check(client.post(items, json={"doc_id": hit.doc_id, "start": start, "end": end}), ITEMS, "post")
    assert by_offsets["text"] == corpus_copy.get_document(hit.doc_id).text[start:end]
    assert by_offsets["chunk_id"] == hit.chunk_id  # the passage it lies in
    body = check(client.get(f"{COLLECTIONS}/{collection['id']}"), ONE)
    assert [i["id"] for i in body["items"]] == [item["id"], by_offsets["id"]] and body["item_count"] == 2
    assert "parallel" not in body["items"][0]
    item_path = ITEM.format(collection_id=collection["id"], item_id=by_offsets["id"])
    annotated = check(client.patch(item_path, json={"annotation": "Read aloud"}), ITEM, "patch")
    assert annotated["annotation"] == "Read aloud"
    after = check(client.delete(item_path), ITEM, "delete")
    assert [i["id"] for i in after["items"]] == [item["id"]]


def test_api_gives_parallel_passages_when_asked(client, corpus_copy):
    collection = new_collection(client)
    doc_id = guidance_doc(corpus_copy, "en/breaking-silos-sbu.md")
    client.post(ITEMS.format(collection_id=collection["id"]),
                json={"doc_id": doc_id, "chunk_id": chunks_of(corpus_copy, doc_id)[0].id})
    body = check(client.get(f"{COLLECTIONS}/{collection['id']}?parallel=1"), ONE)
    assert {p["lang"] for p in body["items"][0]["parallel"]} == {"th", "zh"}
    bad = client.get(f"{COLLECTIONS}/{collection['id']}?parallel=yes")
    assert bad.status_code == 400 and "parallel" in check(bad, ONE)["error"]["message"]


def test_api_reorders_items_and_names_what_is_wrong_with_an_order(client, small_kb_client):
    api, kb = small_kb_client
    collection = new_collection(api)
    ids = [check(api.post(ITEMS.format(collection_id=collection["id"]), json={"doc_id": d}), ITEMS, "post")["id"]
           for d in kb.doc_ids]
    path = ORDER.format(collection_id=collection["id"])
    body = check(api.put(path, json={"items": [ids[2], ids[0], ids[1]]}), ORDER, "put")
    assert [i["id"] for i in body["items"]] == [ids[2], ids[0], ids[1]]
    assert [i["position"] for i in body["items"]] == [0, 1, 2]
    for bad, named in [({"items": ids[:2]}, f"missing: {ids[2]}"), ({"items": [*ids, ids[0]]}, f"repeated: {ids[0]}"),
                       ({"items": [*ids, 424242]}, "not in this collection: 424242"), ({"items": "1,2,3"}, "items"),
                       ({}, "items"), ({"order": ids}, "order")]:
        response = api.put(path, json=bad)
        assert response.status_code == 400, bad
        assert named in check(response, ORDER, "put")["error"]["message"]
    assert [i["id"] for i in check(api.get(f"{COLLECTIONS}/{collection['id']}"), ONE)["items"]] == [ids[2], ids[0], ids[1]]
    assert check(api.put(ORDER.format(collection_id=999_999), json={"items": []}), ORDER, "put")["error"]["code"] == "not_found"


@pytest.fixture
def small_kb_client(small_kb):
    app = create_app({"KB_INSTANCE": small_kb, "TESTING": True, "KB_WARM_UP": False})
    return signed_in(app), small_kb


def test_api_share_link_shows_the_collection_read_only_until_sharing_is_off(small_kb_client):
    api, kb = small_kb_client
    collection = new_collection(api, "Shared with partners")
    api.post(ITEMS.format(collection_id=collection["id"]), json={"doc_id": kb.doc_ids[0]})
    shared = check(api.post(SHARE.format(collection_id=collection["id"])), SHARE, "post")
    assert shared["shared"] and shared["share_url"].endswith(f"/shared/{shared['share_token']}")
    link = "/shared/" + shared["share_token"]
    page = api.get(link)
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "Shared with partners" in html
    main = html.split("<main", 1)[1].split("</main>", 1)[0]
    assert "<textarea" not in main and 'method="post"' not in main and "Move up" not in main
    assert "no customer tells the same story twice" in html
    download = api.get(f"{link}/export?format=docx")
    assert download.status_code == 200 and download.mimetype == DOCX
    assert "no customer tells the same story twice" in docx_text(download.data)
    off = check(api.delete(SHARE.format(collection_id=collection["id"])), SHARE, "delete")
    assert not off["shared"] and off["share_url"] is None and off["share_token"] is None
    assert api.get(link).status_code == 404 and api.get(f"{link}/export?format=md").status_code == 404


def test_api_exports_each_format_with_its_type_and_file_name(small_kb_client):
    api, kb = small_kb_client
    collection = new_collection(api, "เวิร์กช็อป 数据质量")
    api.post(ITEMS.format(collection_id=collection["id"]), json={"doc_id": kb.doc_ids[1], "annotation": "Discuss"})
    path = EXPORT.format(collection_id=collection["id"])
    described = SPEC["paths"][EXPORT]["get"]["responses"]["200"]["content"]
    for fmt, mimetype in [("md", "text/markdown"), ("html", "text/html"), ("docx", DOCX)]:
        response = api.get(f"{path}?format={fmt}")
        assert response.status_code == 200 and response.mimetype == mimetype and mimetype in described
        disposition = response.headers["Content-Disposition"]
        assert f"filename=\"collection-{collection['id']}.{fmt}\"" in disposition
        assert f"filename*=UTF-8''{quote('เวิร์กช็อป 数据质量')}.{fmt}" in disposition
        body = docx_text(response.data) if fmt == "docx" else response.get_data(as_text=True)
        assert "correct addresses at the first contact" in body and "Discuss" in body
    for query in ("?format=pdf", ""):
        response = api.get(path + query)
        assert response.status_code == 400 and "format" in check(response, EXPORT)["error"]["message"]
    assert check(api.get(EXPORT.format(collection_id=999_999) + "?format=md"), EXPORT)["error"]["code"] == "not_found"


def test_api_refuses_bad_input_by_name_and_writes_nothing(small_kb_client):
    api, kb = small_kb_client
    collection = new_collection(api, "Untouched")
    item = check(api.post(ITEMS.format(collection_id=collection["id"]), json={"doc_id": kb.doc_ids[0]}), ITEMS, "post")
    before = written(kb)
    other_chunk = chunks_of(kb, kb.doc_ids[1])[0].id
    cid, iid = collection["id"], item["id"]
    cases = [
        ("post", COLLECTIONS, COLLECTIONS, {"name": ""}, 400, "name"),
        ("post", COLLECTIONS, COLLECTIONS, {"name": "   "}, 400, "name"),
        ("post", COLLECTIONS, COLLECTIONS, {"description": "no name"}, 400, "name"),
        ("post", COLLECTIONS, COLLECTIONS, {"name": "x", "lang": "fr"}, 400, "lang"),
        ("post", COLLECTIONS, COLLECTIONS, {"name": "x", "title": "typo"}, 400, "title"),
        ("post", COLLECTIONS, COLLECTIONS, ["not", "an", "object"], 400, "JSON object"),
        ("patch", f"{COLLECTIONS}/{cid}", ONE, {"name": ""}, 400, "name"),
        ("patch", f"{COLLECTIONS}/999999", ONE, {"name": "x"}, 404, "999999"),
        ("delete", f"{COLLECTIONS}/999999", ONE, None, 404, "999999"),
        ("get", f"{COLLECTIONS}/999999", ONE, None, 404, "999999"),
        ("post", f"{COLLECTIONS}/{cid}/items", ITEMS, {"doc_id": 999_999}, 404, "999999"),
        ("post", f"{COLLECTIONS}/999999/items", ITEMS, {"doc_id": kb.doc_ids[0]}, 404, "999999"),
        ("post", f"{COLLECTIONS}/{cid}/items", ITEMS, {}, 400, "doc_id"),
        ("post", f"{COLLECTIONS}/{cid}/items", ITEMS, {"doc_id": "1"}, 400, "doc_id"),
        ("post", f"{COLLECTIONS}/{cid}/items", ITEMS, {"doc_id": True}, 400, "doc_id"),
        ("post", f"{COLLECTIONS}/{cid}/items", ITEMS, {"doc_id": kb.doc_ids[0], "chunk_id": other_chunk}, 400, "chunk_id"),
        ("post", f"{COLLECTIONS}/{cid}/items", ITEMS, {"doc_id": kb.doc_ids[0], "start": 0, "end": 10**6}, 400, "start"),
        ("post", f"{COLLECTIONS}/{cid}/items", ITEMS, {"doc_id": kb.doc_ids[0], "start": -1, "end": 4}, 400, "start"),
        ("post", f"{COLLECTIONS}/{cid}/items", ITEMS, {"doc_id": kb.doc_ids[0], "end": 4}, 400, "start"),
        ("post", f"{COLLECTIONS}/{cid}/items", ITEMS, {"doc_id": kb.doc_ids[0], "text": "mine"}, 400, "text"),
        ("patch", f"{COLLECTIONS}/{cid}/items/{iid}", ITEM, {"annotation": 5}, 400, "annotation"),
        ("patch", f"{COLLECTIONS}/{cid}/items/999999", ITEM, {"annotation": "x"}, 404, "999999"),
        ("delete", f"{COLLECTIONS}/{cid}/items/999999", ITEM, None, 404, "999999"),
        ("post", f"{COLLECTIONS}/999999/share", SHARE, None, 404, "999999"),
        ("delete", f"{COLLECTIONS}/999999/share", SHARE, None, 404, "999999"),
    ]
    for method, url, described, payload, status, named in cases:
        response = getattr(api, method)(url, json=payload) if payload is not None else getattr(api, method)(url)
        assert response.status_code == status, (method, url, payload, response.get_json())
        body = check(response, described, method)
        assert named in body["error"]["message"], (url, payload, body)
        assert body["error"]["code"] in (("not_found",) if status == 404 else ("bad_parameter", "bad_json"))
    assert written(kb) == before


# -- pages --------------------------------------------------------------------------


def collect_fields(html: str, key: str) -> dict:
    """The hidden fields of one "Add to collection" form, as a browser would send them."""
    form = re.search(rf'<form class="collect" id="collect-{key}".*?</form>', html, re.S).group(0)
    fields = {name: value.replace("&amp;", "&") for name, value in re.findall(r'name="(\w+)" value="([^"]*)"', form)}
    selected = re.search(r'<option value="(\w+)"[^>]*selected', form)
    fields["collection"] = selected.group(1) if selected else None
    return fields


def test_one_click_add_from_search_creates_a_collection_then_adds_to_it(small_kb_client):
    web, kb = small_kb_client
    html = web.get("/search?q=complaint+history+business+units&ui=en").get_data(as_text=True)
    first = collect_fields(html, "r1")
    assert first["collection"] == "new" and first["new_name"] == "complaint history business units"
    response = web.post("/collections/add", data=first)
    assert response.status_code == 303
    assert response.headers["Location"] == "/search?q=complaint+history+business+units&ui=en#collect-r1"
    created = list_collections(kb.engine)[0]
    assert created.name == "complaint history business units" and created.item_count == 1
    html = web.get("/search?q=complaint+history+business+units&ui=en").get_data(as_text=True)
    assert "✓ In complaint history business units" in html
    second = collect_fields(html, "r2")
    assert second["collection"] == str(created.id)
    web.post("/collections/add", data=second)
    assert len(list_collections(kb.engine)) == 1 and get_collection(kb.engine, created.id).item_count == 2


def test_answers_and_document_passages_have_the_add_control(client, corpus_copy):
    html = client.get("/ask?q=What+is+permission+marketing%3F&ui=en").get_data(as_text=True)
    answer = collect_fields(html, "answer")
    cited = answer_question(corpus_copy.engine, "What is permission marketing?").citations[0]
    assert (int(answer["doc_id"]), int(answer["start"]), int(answer["end"])) == (cited.doc_id, cited.start, cited.end)
    doc_id = guidance_doc(corpus_copy, "en/breaking-silos-sbu.md")
    chunk = chunks_of(corpus_copy, doc_id)[1]
    html = client.get(f"/documents/{doc_id}?passage={chunk.id}&ui=en").get_data(as_text=True)
    passage = collect_fields(html, "passage")
    assert (int(passage["chunk_id"]), int(passage["start"]), int(passage["end"])) == (chunk.id, chunk.start, chunk.end)
    assert 'for="collect-passage-to"' in html


def test_a_failed_one_click_add_leaves_no_new_collection(small_kb_client):
    web, kb = small_kb_client
    before = written(kb)
    response = web.post("/collections/add", data={"doc_id": "999999", "collection": "new", "new_name": "x"})
    assert response.status_code == 404 and written(kb) == before
    response = web.post("/collections/add", data={"doc_id": "abc", "collection": "new"})
    assert response.status_code == 400 and written(kb) == before


def test_collection_page_orders_annotates_and_removes_without_javascript(small_kb_client):
    web, kb = small_kb_client
    response = web.post("/collections", data={"name": "Monday", "description": "", "lang": "en"})
    assert response.status_code == 303
    collection_id = int(response.headers["Location"].rsplit("/", 1)[1])
    ids = [add_item(kb.engine, collection_id, d).item.id for d in kb.doc_ids]
    page = web.get(f"/collections/{collection_id}?ui=en").get_data(as_text=True)
    for item_id in ids:
        assert f'<label for="note-{item_id}">' in page
    assert page.count("disabled") == 2  # the first cannot go up, the last cannot go down
    for _ in range(2):
        web.post(f"/collections/{collection_id}/items/{ids[2]}/move", data={"direction": "up"})
    saved = web.post(f"/collections/{collection_id}/items/{ids[0]}/annotation", data={"annotation": "Discuss in pairs"})
    assert saved.status_code == 303 and saved.headers["Location"].endswith(f"#item-{ids[0]}")
    web.post(f"/collections/{collection_id}/items/{ids[1]}/remove")
    view = get_collection(kb.engine, collection_id)
    assert [i.id for i in view.items] == [ids[2], ids[0]] and view.items[1].annotation == "Discuss in pairs"
    page = web.get(f"/collections/{collection_id}?ui=en").get_data(as_text=True)
    assert "Discuss in pairs</textarea>" in page and 'lang="en"' in page
    assert web.post("/collections", data={"name": " "}).status_code == 400
    refused = web.post(f"/collections/{collection_id}/delete", data={})
    assert refused.status_code == 400 and get_collection(kb.engine, collection_id)
    assert web.post(f"/collections/{collection_id}/delete", data={"confirm": "yes"}).status_code == 303
    with pytest.raises(NotFoundError):
        get_collection(kb.engine, collection_id)
    assert web.get(f"/collections/{collection_id}").status_code == 404


def test_portal_export_refuses_an_unknown_format(small_kb_client):
    web, kb = small_kb_client
    collection = create_collection(kb.engine, "Formats")
    assert web.get(f"/collections/{collection.id}/export?format=pdf").status_code == 400
    assert web.get(f"/collections/{collection.id}/export?format=md").status_code == 200
    assert web.get("/collections/999999/export?format=md").status_code == 404
