"""The keyword side of search: segmentation per script, user words, and the incremental BM25 index.

Real segmenters and real corpus text throughout. XQuAD retrieval figures that
chose the defaults (stopwords, Thai and Chinese sub-words, no HMM, k1/b) are
measured outside the test suite; see the module docstrings.
"""

from __future__ import annotations

import json
import math
import random
import re
from pathlib import Path

import numpy as np
import pytest

from kb.index.keywords import INDEX_FILE, MANIFEST_FILE, KeywordIndex
from kb.text.analyzer import Analyzer, _han_dictionary, load_user_words, to_simplified, warm_up
from kb.text.cleaning import normalize_text

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO / "corpus"
THAI_DIGITS = str.maketrans("๐๑๒๓๔๕๖๗๘๙", "0123456789")


@pytest.fixture(scope="module")
def analyzer() -> Analyzer:
    warm_up()
    return Analyzer()


def corpus_texts(lang: str) -> list[str]:
    return [
        normalize_text(p.read_text(encoding="utf-8"))
        for p in sorted((CORPUS / "guidance" / lang).glob("*.md"))
    ]


# ------------------------------------------------------------------ Thai


def test_thai_sentence_is_cut_into_words_not_left_as_one_token(analyzer):
    text = "ลูกค้าสัมพันธ์เป็นหัวใจของการบริการ"
    words = analyzer.segmented(text)
    assert words[:2] == ["ลูกค้า", "สัมพันธ์"]
    assert len(words) >= 5
    assert "ลูกค้า" in analyzer.term_texts(text)


def test_thai_tone_marks_and_vowels_are_kept_so_different_words_stay_different(analyzer):
    assert analyzer.term_texts("ไก่") == ["ไก่"]  # chicken
    assert analyzer.term_texts("ไข่") == ["ไข่"]  # egg
    assert analyzer.term_texts("ใกล้") != analyzer.term_texts("ไกล")  # near / far
    assert analyzer.term_texts("เสือ") != analyzer.term_texts("เสื้อ")  # tiger / shirt


def test_thai_digits_index_as_arabic_digits(analyzer):
    assert analyzer.term_texts("ปี ๒๕๖๗") == analyzer.term_texts("ปี 2567")


def test_long_thai_word_also_indexes_its_dictionary_parts(analyzer):
    terms = analyzer.terms("การแข่งขัน")
    assert [(t.text, t.start, t.end) for t in terms] == [("การแข่งขัน", 0, 10), ("แข่งขัน", 3, 10)]
    assert [t.text for t in analyzer.words("การแข่งขัน")] == ["การแข่งขัน"]  # shown as one word


def test_thai_stopwords_are_a_short_list_that_keeps_content_words(analyzer):
    text = "ลูกค้าไม่ได้รับบริการใหม่ และค่าบริการสูงเกินไป"
    terms = analyzer.term_texts(text)
    for content in ("ลูกค้า", "ไม่", "บริการ", "ใหม่", "สูง"):  # pythainlp's list drops ไม่, ใหม่, สูง
        assert content in terms
    assert "และ" in analyzer.segmented(text) and "และ" not in terms


# ------------------------------------------------------------------ Chinese


def test_traditional_and_simplified_chinese_give_the_same_terms(analyzer):
    assert analyzer.term_texts("客戶關係管理系統的電話") == analyzer.term_texts("客户关系管理系统的电话")
    assert "电话" in analyzer.term_texts("電話")


def test_chinese_search_mode_lets_a_short_word_find_a_compound(analyzer):
    terms = analyzer.term_texts("客户关系管理")
    assert "客户关系" in terms and "客户" in terms and "管理" in terms
    assert analyzer.segmented("客户关系管理") == ["客户关系", "管理"]


def test_chinese_names_segment_the_same_alone_and_in_a_sentence(analyzer):
    # jieba's HMM would make "袁梦说" one word here and miss a query for the name.
    name = set(analyzer.term_texts("袁梦"))
    assert name <= set(analyzer.term_texts("袁梦说网速太慢"))


def test_chinese_cut_is_exactly_jiebas_no_hmm_cut():
    import jieba

    dictionary = _han_dictionary(frozenset())
    runs = [
        to_simplified(m.group())
        for text in corpus_texts("zh")
        for m in re.finditer(r"[\u4e00-\u9fff]+", text)
    ]
    assert len(runs) > 500
    assert [dictionary.cut(r) for r in runs] == [jieba.lcut(r, HMM=False) for r in runs]


def test_to_simplified_keeps_the_length():
    for text in ("電話與客戶", "乾隆皇帝", "頭髮", "後來"):
        assert len(to_simplified(text)) == len(text)


# ------------------------------------------------------------------ mixed text and codes


def test_mixed_scripts_each_use_their_own_segmenter(analyzer):
    assert analyzer.term_texts("CRM ของ SBU") == ["crm", "sbu"]
    assert analyzer.segmented("CRM ของ SBU") == ["CRM", "ของ", "SBU"]
    assert analyzer.term_texts("客户 CRM 系统") == ["客户", "crm", "系统"]
    assert analyzer.term_texts("ระบบCRMของลูกค้า") == ["ระบบ", "crm", "ลูกค้า"]
    assert analyzer.term_texts("用CRM管理客户") == ["用", "crm", "管理", "客户"]


def test_product_code_is_indexed_whole_and_in_parts_with_exact_spans(analyzer):
    text = "Build FW-7731-B froze; SH-210 and v2.1 too."
    terms = [(t.text, text[t.start : t.end]) for t in analyzer.terms(text)]
    assert terms[1:5] == [("fw-7731-b", "FW-7731-B"), ("fw", "FW"), ("7731", "7731"), ("b", "B")]
    assert ("sh-210", "SH-210") in terms and ("210", "210") in terms
    assert ("v2.1", "v2.1") in terms and ("v2", "v2") in terms


def test_numbers_are_terms_and_case_is_folded(analyzer):
    assert analyzer.term_texts("FiberNet 1000 costs 40 in 2024") == [
        "fibernet",
        "1000",
        "costs",
        "40",
        "2024",
    ]


def test_possessive_indexes_as_the_word_itself(analyzer):
    assert analyzer.term_texts("the customer's line") == ["customer", "line"]
    assert analyzer.term_texts("the customer’s line") == ["customer", "line"]
    assert "o'brien" in analyzer.term_texts("Mr O'Brien")


def test_english_stopwords_and_question_words_are_dropped(analyzer):
    assert analyzer.term_texts("What is the status of the order?") == ["status", "order"]
    assert "not" in analyzer.term_texts("router not working")  # negation is kept
    assert Analyzer(stopwords=False).term_texts("the order") == ["the", "order"]


def test_accented_and_cyrillic_words_stay_whole(analyzer):
    assert analyzer.term_texts("Café Müller") == ["café", "müller"]
    # A combining accent is part of the word, folded (NFKC) with its letter, so both spellings match.
    assert analyzer.term_texts("cafe\u0301") == ["caf\u00e9"]
    assert analyzer.term_texts("Клиент доволен") == ["клиент", "доволен"]


def _as_indexed(piece: str) -> str:
    return to_simplified(piece.lower()).translate(THAI_DIGITS).replace("’", "'")


@pytest.mark.parametrize("lang", ["en", "th", "zh"])
def test_every_term_span_holds_exactly_the_characters_of_the_term(analyzer, lang):
    for text in corpus_texts(lang)[:6]:
        terms = analyzer.terms(text)
        assert terms
        for term in terms:
            assert _as_indexed(text[term.start : term.end]) == term.text, (term, text[term.start : term.end])
        starts = [(t.start, -t.end) for t in terms]
        assert starts == sorted(starts)


def test_terms_never_contain_whitespace_so_they_can_be_stored_space_separated(analyzer):
    notes = (CORPUS / "notes" / "notes-2025.jsonl").read_text(encoding="utf-8").splitlines()
    for line in notes:
        note = json.loads(line)
        for term in analyzer.term_texts(normalize_text(note["complaint"] + "\n" + note["resolution"])):
            assert term and not any(c.isspace() for c in term)


# ------------------------------------------------------------------ user words


def test_user_word_keeps_a_new_thai_product_name_whole():
    text = "สมัครไฟเบอร์เน็ตแล้ว"
    assert "ไฟเบอร์เน็ต" not in Analyzer().term_texts(text)
    custom = Analyzer(["ไฟเบอร์เน็ต"])
    terms = custom.terms(text)
    whole = [t for t in terms if t.text == "ไฟเบอร์เน็ต"]
    assert len(whole) == 1 and text[whole[0].start : whole[0].end] == "ไฟเบอร์เน็ต"
    assert "ไฟเบอร์เน็ต" in custom.segmented(text)
    assert "เน็ต" in [t.text for t in terms]  # its parts still match a shorter query


def test_user_word_keeps_a_new_chinese_brand_whole_in_both_scripts():
    assert "智家宝" not in Analyzer().term_texts("我买了智家宝路由器")
    custom = Analyzer(["智家寶"])  # given in Traditional
    assert "智家宝" in custom.term_texts("我买了智家宝路由器")
    assert "智家宝" in custom.term_texts("我買了智家寶路由器")
    assert "智家宝" in custom.segmented("我买了智家宝路由器")


def test_user_words_do_not_leak_into_other_analyzers():
    Analyzer(["ไฟเบอร์เน็ต", "智家宝"])
    assert "ไฟเบอร์เน็ต" not in Analyzer().term_texts("ไฟเบอร์เน็ต")
    assert "智家宝" not in Analyzer().term_texts("智家宝")


def test_load_user_words_skips_comments_and_a_missing_file_gives_none(tmp_path):
    path = tmp_path / "words.txt"
    path.write_text("# products\nไฟเบอร์เน็ต\n智家宝  # router\n\n  SH-210 \n", encoding="utf-8")
    assert load_user_words(path) == ["ไฟเบอร์เน็ต", "智家宝", "SH-210"]
    assert load_user_words(tmp_path / "missing.txt") == []
    assert load_user_words(None) == []


# ------------------------------------------------------------------ BM25 ranking


def small_index(**kwargs) -> KeywordIndex:
    index = KeywordIndex(**kwargs)
    index.add(
        [10, 11, 12, 13],
        [
            ["router", "reboot", "firmware", "fw-7731-b", "fw", "7731", "b"],
            ["router", "reboot", "wifi", "slow"],
            ["router", "billing", "refund"],
            ["wifi", "slow", "speed", "router", "router"],
        ],
    )
    return index


def test_exact_rare_term_ranks_first():
    ids, scores = small_index().search(["fw-7731-b", "fw", "7731", "b", "router"], 10)
    assert ids[0] == 10
    assert all(scores > 0) and list(scores) == sorted(scores, reverse=True)


def test_rare_term_outweighs_a_common_one():
    ids, _ = small_index().search(["router", "refund"], 10)
    assert ids[0] == 12  # "refund" is in one chunk, "router" in all four


def test_scores_follow_lucene_bm25():
    index = small_index(k1=1.2, b=0.75)
    lengths = {10: 7, 11: 4, 12: 3, 13: 5}
    avgdl = sum(lengths.values()) / 4
    # "slow": in chunks 11 and 13 (n = 2 of N = 4), tf 1 each.
    idf = math.log(1 + (4 - 2 + 0.5) / (2 + 0.5))
    expected = idf * 1 / (1 + 1.2 * (1 - 0.75 + 0.75 * lengths[11] / avgdl))
    assert index.score_ids(["slow"], np.array([11]))[0] == pytest.approx(expected, rel=1e-6)
    # "router" twice in chunk 13: tf 2.
    idf = math.log(1 + (4 - 4 + 0.5) / (4 + 0.5))
    expected = idf * 2 / (2 + 1.2 * (1 - 0.75 + 0.75 * lengths[13] / avgdl))
    assert index.score_ids(["router"], np.array([13]))[0] == pytest.approx(expected, rel=1e-6)


def test_a_repeated_query_term_counts_once():
    index = small_index()
    assert np.array_equal(index.search(["slow", "slow"], 5)[1], index.search(["slow"], 5)[1])


def test_only_matching_chunks_come_back_and_ties_break_by_id():
    index = KeywordIndex()
    index.add([5, 3, 9, 1], [["a", "x"], ["a", "x"], ["a", "x"], ["y"]])
    ids, scores = index.search(["x"], 10)
    assert list(ids) == [3, 5, 9]
    assert len(set(scores.tolist())) == 1
    assert list(index.search(["x"], 2)[0]) == [3, 5]
    assert len(index.search(["nothing"], 10)[0]) == 0
    assert len(index.search([], 10)[0]) == 0 and len(index.search(["x"], 0)[0]) == 0


def test_score_ids_gives_zero_for_unknown_or_unmatched_chunks():
    scores = small_index().score_ids(["refund"], np.array([12, 11, 999]))
    assert scores[0] > 0 and scores[1] == 0 and scores[2] == 0


def test_empty_index_finds_nothing():
    index = KeywordIndex()
    assert len(index) == 0 and len(index.ids()) == 0
    assert len(index.search(["x"], 5)[0]) == 0
    assert index.score_ids(["x"], np.array([1])).tolist() == [0.0]


# ------------------------------------------------------------------ incremental changes


def random_docs(rng: random.Random, count: int, vocabulary: int = 300) -> list[list[str]]:
    weights = [1 / (i + 1) for i in range(vocabulary)]
    terms = [f"w{i}" for i in range(vocabulary)]
    return [rng.choices(terms, weights, k=rng.randint(0, 40)) for _ in range(count)]


def assert_same_as_rebuild(index: KeywordIndex, live: dict[int, list[str]], queries: list[list[str]]) -> None:
    rebuilt = KeywordIndex()
    ids = sorted(live)
    rebuilt.add(ids, [live[i] for i in ids])
    assert len(index) == len(live)
    assert sorted(index.ids().tolist()) == ids
    all_ids = np.array(ids + [10**9], np.int64)
    for query in queries:
        assert np.array_equal(index.score_ids(query, all_ids), rebuilt.score_ids(query, all_ids))
        found, scores = index.search(query, 20)
        expected, expected_scores = rebuilt.search(query, 20)
        assert np.array_equal(found, expected) and np.array_equal(scores, expected_scores)


def test_any_sequence_of_adds_replacements_and_removes_scores_like_a_rebuild():
    rng = random.Random(7)
    index, live = KeywordIndex(), {}
    queries = [[f"w{rng.randrange(300)}" for _ in range(4)] for _ in range(15)] + [["w0", "w1"], ["w299"]]
    next_id = 0
    for step in range(60):
        action = rng.random()
        if action < 0.55:
            batch = random_docs(rng, rng.randint(1, 30))
            ids = list(range(next_id, next_id + len(batch)))
            next_id += len(batch)
        elif action < 0.75 and live:  # replace existing chunks
            ids = rng.sample(sorted(live), min(len(live), rng.randint(1, 10)))
            batch = random_docs(rng, len(ids))
        elif live:
            gone = rng.sample(sorted(live), min(len(live), rng.randint(1, 15)))
            assert index.remove(gone + [10**9]) == len(gone)
            for i in gone:
                del live[i]
            continue
        else:
            continue
        index.add(ids, batch)
        live.update(zip(ids, batch, strict=True))
        if step % 20 == 19:
            index.compact()
            assert_same_as_rebuild(index, live, queries)
        elif step % 7 == 3:
            assert_same_as_rebuild(index, live, queries)  # with a delta and dead rows in place
    assert_same_as_rebuild(index, live, queries)


def test_automatic_compaction_keeps_scores_exact():
    rng = random.Random(3)
    docs = random_docs(rng, 6000, vocabulary=2000)
    index, live = KeywordIndex(), {}
    for start in range(0, 6000, 500):  # passes the delta threshold
        index.add(list(range(start, start + 500)), docs[start : start + 500])
        live.update(zip(range(start, start + 500), docs[start : start + 500], strict=True))
    assert index._main_rows > 0  # a compaction happened
    gone = list(range(0, 6000, 3))  # passes the dead-row threshold
    index.remove(gone)
    for i in gone:
        del live[i]
    assert index._rows == len(live)  # dead rows were dropped
    assert_same_as_rebuild(index, live, [["w0", "w5", "w1999"], ["w17"], ["w1", "w2", "w3"]])


def test_adding_an_existing_id_replaces_the_chunk():
    index = KeywordIndex()
    index.add([1, 2], [["old", "text"], ["other"]])
    index.add([1], [["new", "words"]])
    assert len(index) == 2
    assert len(index.search(["old"], 5)[0]) == 0
    assert list(index.search(["new"], 5)[0]) == [1]
    index.add([3, 3], [["first"], ["second"]])  # the later copy in one batch wins
    assert len(index.search(["first"], 5)[0]) == 0 and list(index.search(["second"], 5)[0]) == [3]


def test_removed_chunks_leave_idf_and_results():
    index = small_index()
    assert index.remove([12, 404]) == 1
    assert len(index.search(["refund"], 5)[0]) == 0
    assert 12 not in index.ids().tolist() and len(index) == 3


def test_allowed_ids_filter_inside_scoring_fills_the_page():
    rng = random.Random(11)
    docs = random_docs(rng, 3000)
    index = KeywordIndex()
    index.add(list(range(3000)), docs)
    query = ["w3", "w40", "w120"]
    everything, all_scores = index.search(query, 3000)
    allowed = np.array(
        [i for i in everything.tolist() if i % 7 == 0][-40:] + [10**9], np.int64
    )  # the weakest
    found, scores = index.search(query, 10, allowed_ids=allowed)
    expected = [i for i in everything.tolist() if i in set(allowed.tolist())][:10]
    assert len(found) == 10
    assert found.tolist() == expected
    assert len(index.search(query, 10, allowed_ids=np.array([], np.int64))[0]) == 0


# ------------------------------------------------------------------ persistence


def test_save_and_load_give_back_the_same_index_and_manifest(tmp_path):
    rng = random.Random(5)
    docs = random_docs(rng, 200)
    index = KeywordIndex(k1=1.1, b=0.7)
    index.add(list(range(200)), docs)
    index.remove(list(range(0, 200, 4)))
    index.add([1000], [["w1", "fresh"]])  # still in the delta when saved
    manifest = {"fingerprint": "abc", "chunks": len(index), "analyzer": ["ไฟเบอร์เน็ต"]}
    index.save(tmp_path, manifest)
    loaded = KeywordIndex.load(tmp_path)
    assert loaded is not None
    copy, saved_manifest = loaded
    assert saved_manifest == manifest
    assert (copy.k1, copy.b) == (1.1, 0.7)
    assert sorted(copy.ids().tolist()) == sorted(index.ids().tolist())
    ids = np.array(sorted(index.ids().tolist()), np.int64)
    for query in (["w1", "fresh"], ["w0"], ["w150", "w7"]):
        assert np.array_equal(copy.score_ids(query, ids), index.score_ids(query, ids))
    copy.add([2000], [["fresh"]])  # a loaded index keeps taking changes
    assert set(copy.search(["fresh"], 5)[0].tolist()) == {1000, 2000}


def test_saved_postings_open_memory_mapped_and_changes_after_that_go_elsewhere(tmp_path):
    rng = random.Random(6)
    index = KeywordIndex()
    index.add(list(range(300)), random_docs(rng, 300))
    index.save(tmp_path, {})
    copy, _ = KeywordIndex.load(tmp_path)
    assert isinstance(copy._indices, np.memmap) and isinstance(copy._tf, np.memmap)
    assert not copy._indices.flags.writeable
    ids = np.arange(300, dtype=np.int64)
    assert np.array_equal(copy.score_ids(["w1", "w7"], ids), index.score_ids(["w1", "w7"], ids))
    copy.remove(list(range(0, 300, 2)))
    copy.add(list(range(1000, 1400)), random_docs(rng, 400))  # enough to compact: new arrays, not the map
    copy.compact()
    assert sorted(copy.ids().tolist()) == list(range(1, 300, 2)) + list(range(1000, 1400))
    assert not isinstance(copy._indices, np.memmap)


def test_load_returns_none_for_missing_corrupt_or_mismatched_files(tmp_path):
    assert KeywordIndex.load(tmp_path / "nowhere") is None
    small_index().save(tmp_path / "a", {"n": 1})
    small_index().save(tmp_path / "b", {"n": 2})
    assert KeywordIndex.load(tmp_path / "a") is not None

    (tmp_path / "a" / MANIFEST_FILE).write_bytes((tmp_path / "b" / MANIFEST_FILE).read_bytes())
    assert KeywordIndex.load(tmp_path / "a") is None  # files from two different saves

    small_index().save(tmp_path / "c", {})
    data = (tmp_path / "c" / INDEX_FILE).read_bytes()
    (tmp_path / "c" / INDEX_FILE).write_bytes(data[: len(data) // 2])
    assert KeywordIndex.load(tmp_path / "c") is None  # truncated

    small_index().save(tmp_path / "d", {})
    (tmp_path / "d" / MANIFEST_FILE).write_text("{not json", encoding="utf-8")
    assert KeywordIndex.load(tmp_path / "d") is None

    small_index().save(tmp_path / "e", {})
    (tmp_path / "e" / INDEX_FILE).write_bytes(b"\x00" * 100)
    assert KeywordIndex.load(tmp_path / "e") is None

    small_index().save(tmp_path / "f", {})
    (tmp_path / "f" / INDEX_FILE).unlink()
    assert KeywordIndex.load(tmp_path / "f") is None


def test_save_leaves_no_temporary_files(tmp_path):
    small_index().save(tmp_path, {})
    small_index().save(tmp_path, {})
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == sorted(
        [INDEX_FILE, MANIFEST_FILE]
    )


def test_analyze_gives_terms_and_words_in_one_pass(analyzer):
    text = "ระบบCRMของลูกค้า FW-7731-B 客户关系管理"
    assert analyzer.analyze(text) == (analyzer.terms(text), analyzer.words(text))
