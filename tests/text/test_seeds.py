"""The five real seed files (messy, mixed languages, site boilerplate) through the whole pipeline."""

from __future__ import annotations

import unicodedata
from collections import Counter

import pytest
from sqlalchemy import select

from indexer.pipeline import ingest_paths
from kb.config import Settings
from kb.knowledge_base import KnowledgeBase
from kb.storage.models import Chunk, Document
from tests.conftest import find_shared

SEEDS = find_shared("seeds")
pytestmark = pytest.mark.skipif(SEEDS is None, reason="the shared seed files are not next to this checkout")

BOILERPLATE = [
    "comments powered by Disqus", "การแปล กรุณารอสักครู่", "本文档共20页", "原创力文档", "本站所有内容",
    "如文档侵犯商业秘密", "查看更多", "文档评论(0)", "展开更多", "资源预览", "资源简介", "主页 >",
]


@pytest.fixture(scope="module")
def seeds_kb(tmp_path_factory, models_dir, embedder):
    data = tmp_path_factory.mktemp("seeds-kb")
    kb = KnowledgeBase.open(Settings(data_dir=data, models_dir=models_dir), embedder=embedder)
    report = ingest_paths(kb.engine, [SEEDS], progress=False)
    yield kb, report
    kb.close()


def _documents(kb):
    with kb.store.session() as s:
        docs = s.scalars(select(Document)).all()
        chunks = s.execute(select(Chunk.document_id, Chunk.lang, Chunk.text)).all()
    by_doc = {d.id: [] for d in docs}
    for doc_id, lang, text in chunks:
        by_doc[doc_id].append((lang, text))
    return {d.source.rsplit("/", 1)[-1][:3]: (d, by_doc[d.id]) for d in docs}


def dominant_script(text: str) -> str:
    scripts = Counter()
    for ch in text:
        if ch.isalpha():
            name = unicodedata.name(ch, "")
            scripts["th" if name.startswith("THAI") else "zh" if "CJK" in name else "en" if name.startswith("LATIN") else "?"] += 1
    return scripts.most_common(1)[0][0]


def test_all_five_seed_files_go_in(seeds_kb):
    _, report = seeds_kb
    assert report.added == 5 and report.failed == []


def test_every_chunk_is_labelled_with_the_language_of_its_script(seeds_kb):
    kb, _ = seeds_kb
    for name, (_, chunks) in _documents(kb).items():
        for lang, text in chunks:
            assert lang == dominant_script(text), (name, lang, text[:80])


def test_english_text_followed_by_its_thai_translation_is_a_mixed_document(seeds_kb):
    kb, _ = seeds_kb
    doc, chunks = _documents(kb)["000"]
    assert {lang for lang, _ in chunks} == {"en", "th"}
    assert doc.is_mixed and doc.lang == "en" and doc.languages[:2] == ["en", "th"]
    langs = [lang for lang, _ in chunks]
    assert langs == sorted(langs, key=["en", "th"].index), "English chunks come first, then Thai"


def test_each_seed_records_its_main_language(seeds_kb):
    kb, _ = seeds_kb
    docs = _documents(kb)
    assert {name: docs[name][0].lang for name in docs} == {"000": "en", "001": "th", "002": "zh", "003": "en", "004": "zh"}
    assert not docs["001"][0].is_mixed and not docs["004"][0].is_mixed


def test_no_boilerplate_line_survives_in_chunks_or_documents(seeds_kb):
    kb, _ = seeds_kb
    for name, (doc, chunks) in _documents(kb).items():
        for marker in BOILERPLATE:
            assert marker not in doc.text, (name, marker)
            assert not any(marker in text for _, text in chunks), (name, marker)


def test_titles_come_from_real_content_not_boilerplate(seeds_kb):
    kb, _ = seeds_kb
    titles = {name: doc.title for name, (doc, _) in _documents(kb).items()}
    assert not any(marker in title for title in titles.values() for marker in BOILERPLATE + ["本文档"]), titles
    assert titles["004"] != "主页"
