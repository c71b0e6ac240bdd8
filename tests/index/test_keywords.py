"""The keyword side of search: segmentation per script, user words, and the BM25 index on tantivy.

Real segmenters and real corpus text throughout. XQuAD retrieval figures that
chose the defaults (stopwords, Thai and Chinese sub-words, no HMM, k1/b) are
measured outside the test suite; see the module docstrings.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from kb.index import keywords
from kb.index.keywords import DIR_PREFIX, IDS_FILE, POINTER_FILE, KeywordIndex
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


def small_index() -> KeywordIndex:
    index = KeywordIndex()
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


def test_scores_are_tantivys_bm25_lucenes_formula_times_k1_plus_1():
    index = small_index()
    k1, b = 1.2, 0.75
    lengths = {10: 7, 11: 4, 12: 3, 13: 5}  # short lengths are stored exactly (longer ones quantised)
    avgdl = sum(lengths.values()) / 4
    # "slow": in chunks 11 and 13 (n = 2 of N = 4), tf 1 each.
    idf = math.log(1 + (4 - 2 + 0.5) / (2 + 0.5))
    expected = idf * (k1 + 1) * 1 / (1 + k1 * (1 - b + b * lengths[11] / avgdl))
    assert index.score_ids(["slow"], np.array([11]))[0] == pytest.approx(expected, rel=1e-5)
    # "router" twice in chunk 13: tf 2.
    idf = math.log(1 + (4 - 4 + 0.5) / (4 + 0.5))
    expected = idf * (k1 + 1) * 2 / (2 + k1 * (1 - b + b * lengths[13] / avgdl))
    assert index.score_ids(["router"], np.array([13]))[0] == pytest.approx(expected, rel=1e-5)
    assert index.idf(["slow", "nowhere"]) == pytest.approx(
        {"slow": math.log(1 + 2.5 / 2.5), "nowhere": math.log(1 + 4.5 / 0.5)})


def test_a_repeated_query_term_counts_once():
    index = small_index()
    assert np.array_equal(index.search(["slow", "slow"], 5)[1], index.search(["slow"], 5)[1])


def test_only_matching_chunks_come_back_and_ties_break_by_id():
    index = KeywordIndex()
    index.add([5, 3], [["a", "x"], ["a", "x"]])
    index.add([9, 1], [["a", "x"], ["y"]])  # a second segment, whose documents tantivy orders after the first
    index.add([2], [["x", "a"]])
    ids, scores = index.search(["x"], 10)
    assert list(ids) == [2, 3, 5, 9]
    assert len(set(scores.tolist())) == 1
    assert list(index.search(["x"], 2)[0]) == [2, 3]
    assert list(index.search(["x"], 1, allowed_ids=np.array([9, 5, 1]))[0]) == [5]
    assert len(index.search(["nothing"], 10)[0]) == 0
    assert len(index.search([], 10)[0]) == 0 and len(index.search(["x"], 0)[0]) == 0


def test_score_ids_gives_zero_for_unknown_or_unmatched_chunks():
    scores = small_index().score_ids(["refund"], np.array([12, 11, 999]))
    assert scores[0] > 0 and scores[1] == 0 and scores[2] == 0


def test_holds_reads_which_terms_each_chunk_has():
    held = small_index().holds(["router", "slow", "nowhere"], np.array([13, 12, 999]))
    assert held.tolist() == [[True, True, False], [True, False, False], [False, False, False]]


def test_empty_index_finds_nothing():
    index = KeywordIndex()
    assert len(index) == 0 and len(index.ids()) == 0
    assert len(index.search(["x"], 5)[0]) == 0
    assert index.score_ids(["x"], np.array([1])).tolist() == [0.0]
    assert index.holds(["x"], np.array([1])).tolist() == [[False]]


def test_terms_are_indexed_as_given_long_or_odd_ones_too():
    long_thai = "ก" * 2000  # past tantivy's token limit once in UTF-8
    odd = ["Café", "客户关系", "a\u3000b", "x\x1fy", long_thai, "o'brien"]
    index = KeywordIndex()
    index.add([1, 2], [odd, ["café", "a", "b"]])
    for term in odd:
        assert index.search([term], 5)[0].tolist() == [1], term
    assert index.search(["café"], 5)[0].tolist() == [2]  # no case folding here: the analyzer did it
    assert index.holds(odd, np.array([1, 2])).tolist() == [[True] * 6, [False] * 6]


# ------------------------------------------------------------------ incremental changes


def random_docs(rng: random.Random, count: int, vocabulary: int = 300) -> list[list[str]]:
    weights = [1 / (i + 1) for i in range(vocabulary)]
    terms = [f"w{i}" for i in range(vocabulary)]
    return [rng.choices(terms, weights, k=rng.randint(0, 40)) for _ in range(count)]


def assert_holds_exactly(index: KeywordIndex, live: dict[int, list[str]], queries: list[list[str]]) -> None:
    """Same chunks and same matches as what was added and not removed (scores may differ from a rebuild:
    tantivy counts deleted chunks in its statistics until it merges them away)."""
    ids = sorted(live)
    assert len(index) == len(live)
    assert index.ids().tolist() == ids
    all_ids = np.array(ids + [10**9], np.int64)
    for query in queries:
        expected = {i for i in ids if set(query) & set(live[i])}
        assert set(index.search(query, 10**6)[0].tolist()) == expected
        assert set(all_ids[index.score_ids(query, all_ids) > 0].tolist()) == expected
        assert index.holds(query, all_ids).tolist() == [[t in live.get(i, ()) for t in query] for i in all_ids.tolist()]


def test_any_sequence_of_adds_replacements_and_removes_holds_exactly_the_live_chunks():
    rng = random.Random(7)
    index, live = KeywordIndex(), {}
    queries = [[f"w{rng.randrange(300)}" for _ in range(4)] for _ in range(10)] + [["w0", "w1"], ["w299"]]
    next_id = 0
    for step in range(40):
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
        if step % 7 == 3:
            assert_holds_exactly(index, live, queries)
    assert_holds_exactly(index, live, queries)


def test_changes_in_one_batch_make_one_commit_and_the_last_step_wins():
    index = KeywordIndex()
    index.add([1, 2], [["old"], ["two"]])
    with index.changes():
        index.add([1], [["new"]])
        index.remove([2])
        index.add([2, 3], [["back"], ["three"]])
        index.remove([3])
        assert len(index) == 2 and len(index.search(["new"], 5)[0]) == 0  # not committed yet
    assert index.ids().tolist() == [1, 2]
    assert index.search(["new"], 5)[0].tolist() == [1] and len(index.search(["old"], 5)[0]) == 0
    assert index.search(["back"], 5)[0].tolist() == [2] and len(index.search(["three"], 5)[0]) == 0
    assert index._view.searcher.num_docs == 2


def test_adding_an_existing_id_replaces_the_chunk():
    index = KeywordIndex()
    index.add([1, 2], [["old", "text"], ["other"]])
    index.add([1], [["new", "words"]])
    assert len(index) == 2
    assert len(index.search(["old"], 5)[0]) == 0
    assert list(index.search(["new"], 5)[0]) == [1]
    index.add([3, 3], [["first"], ["second"]])  # the later copy in one batch wins
    assert len(index.search(["first"], 5)[0]) == 0 and list(index.search(["second"], 5)[0]) == [3]
    assert index._view.searcher.num_docs == 3


def test_removed_chunks_leave_idf_and_results():
    index = small_index()
    assert index.remove([12, 404]) == 1
    assert len(index.search(["refund"], 5)[0]) == 0
    assert 12 not in index.ids().tolist() and len(index) == 3


@pytest.mark.parametrize("kind", ["narrow", "wide", "wide but mostly without the query's terms"])
def test_allowed_ids_filter_inside_scoring_fills_the_page(kind, monkeypatch):
    monkeypatch.setattr(keywords, "DEEPEST", 64)
    monkeypatch.setattr(keywords, "SMALL_SET", 64)
    rng = random.Random(11)
    docs = random_docs(rng, 3000)
    index = KeywordIndex()
    index.add(list(range(3000)), docs)
    query = ["w3", "w40", "w120"] if kind != "wide but mostly without the query's terms" else ["w120", "w299"]
    everything, _ = index.search(query, 3000)
    if kind == "narrow":  # a clause per id in the query
        allowed_list = [i for i in everything.tolist() if i % 7 == 0][-40:]  # the weakest matches
    elif kind == "wide":  # a deeper unfiltered search
        allowed_list = list(range(0, 3000, 2))
    else:  # the deeper search gives up: a term set on the ids left out
        allowed_list = sorted(set(range(3000)) - set(everything.tolist()) | set(everything.tolist()[-15:]))
        assert len(allowed_list) > 0.5 * 3000
    allowed = np.array(allowed_list + [10**9], np.int64)
    found, scores = index.search(query, 10, allowed_ids=allowed[::-1].copy())
    expected = [i for i in everything.tolist() if i in set(allowed.tolist())][:10]
    assert len(found) == 10
    assert found.tolist() == expected
    assert len(index.search(query, 10, allowed_ids=np.array([], np.int64))[0]) == 0


def test_a_language_filter_cuts_along_its_posting_list_and_the_ids_still_decide():
    index = KeywordIndex()
    index.add([1, 2, 3, 4], [["crm"], ["crm"], ["crm", "crm"], ["crm"]], ["en", "th", "th", "zh"])
    assert index.search(["crm"], 5, lang="th")[0].tolist() == [3, 2]
    assert index.search(["crm"], 5, np.array([1, 2, 4]), lang="th")[0].tolist() == [2]
    assert len(index.search(["crm"], 5, lang="ko")[0]) == 0


def test_searches_in_other_threads_stay_whole_while_chunks_change():
    index = KeywordIndex()
    index.add(list(range(200)), [["common", f"t{i}"] for i in range(200)])
    errors: list[str] = []
    stop = threading.Event()

    def search() -> None:
        while not stop.is_set():
            ids, _ = index.search(["common"], 500)
            if len(ids) not in (200, 300) or len(set(ids.tolist())) != len(ids):
                errors.append(f"{len(ids)} hits")

    threads = [threading.Thread(target=search) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        for _ in range(10):
            index.add(list(range(200, 300)), [["common"]] * 100)
            index.remove(list(range(200, 300)))
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert not errors


# ------------------------------------------------------------------ a node's shared directory

MANIFEST = {"analyzer": "v1"}


def test_an_index_opened_again_holds_what_was_committed(tmp_path):
    index = KeywordIndex.open(tmp_path, MANIFEST)
    assert len(index) == 0 and not (tmp_path / POINTER_FILE).exists()  # nothing written until a change
    index.add([1, 2, 3], [["alpha"], ["beta"], ["alpha", "gamma"]])
    index.remove([2])
    again = KeywordIndex.open(tmp_path, MANIFEST)
    assert again.ids().tolist() == [1, 3]
    assert again.search(["alpha"], 5)[0].tolist() == index.search(["alpha"], 5)[0].tolist()
    assert len(KeywordIndex.open(tmp_path, {"analyzer": "v2"})) == 0  # made by another analyzer: not used


def test_processes_sharing_a_directory_follow_each_other_and_never_double_a_chunk(tmp_path):
    first, second = KeywordIndex.open(tmp_path, MANIFEST), KeywordIndex.open(tmp_path, MANIFEST)
    first.add([1, 2], [["alpha"], ["beta"]])
    assert len(second) == 0  # until it follows
    second.follow()
    assert second.ids().tolist() == [1, 2]
    # Both catch up with the same database change; the second adds it again from a stale view.
    with first.changes():
        first.add([3], [["gamma"]])
    stale = KeywordIndex.open(tmp_path, MANIFEST)
    stale.add([3, 4], [["gamma"], ["delta"]])
    second.add([3], [["gamma"]])
    first.follow()
    assert first.ids().tolist() == [1, 2, 3, 4]
    assert first._view.searcher.num_docs == 4
    assert first.search(["gamma"], 5)[0].tolist() == [3]


CATCH_UP = """
import sys
from pathlib import Path
from kb.index.keywords import KeywordIndex
index = KeywordIndex.open(Path(sys.argv[1]), {"analyzer": "v1"})
for start in range(0, 600, 50):  # a catch-up: what the index lacks of ids 0..599, decided under the lock
    with index.changes():
        lacking = [i for i in range(start, start + 50) if i not in set(index.ids().tolist())]
        index.add(lacking, [["shared", f"t{i}"] for i in lacking])
        index.add([start], [["shared", f"t{start}"]])  # and one id again: a replacement, never a double
print(len(index))
"""


def test_two_processes_catching_up_at_once_index_each_chunk_once(tmp_path):
    procs = [subprocess.Popen([sys.executable, "-c", CATCH_UP, str(tmp_path)], cwd=REPO, stdout=subprocess.PIPE,
                              text=True, env={**os.environ, "PYTHONPATH": str(REPO)}) for _ in range(2)]
    outputs = [proc.communicate(timeout=300)[0] for proc in procs]
    assert all(proc.returncode == 0 for proc in procs), outputs
    index = KeywordIndex.open(tmp_path, MANIFEST)
    assert index.ids().tolist() == list(range(600))
    assert index._view.searcher.num_docs == 600
    assert len(index.search(["shared"], 1000)[0]) == 600


def test_a_crash_between_the_commit_and_the_id_list_is_repaired_from_the_index(tmp_path):
    index = KeywordIndex.open(tmp_path, MANIFEST)
    index.add([1, 2], [["alpha"], ["beta"]])
    ids_file = index._dir / IDS_FILE
    before = ids_file.read_bytes()
    index.add([7], [["gamma"]])
    ids_file.write_bytes(before)  # as if the process died after tantivy's commit
    assert KeywordIndex.open(tmp_path, MANIFEST).ids().tolist() == [1, 2, 7]
    assert KeywordIndex.open(tmp_path, MANIFEST).ids().tolist() == [1, 2, 7]  # and the list was rewritten
    ids_file.write_bytes(b"garbage")
    assert KeywordIndex.open(tmp_path, MANIFEST).ids().tolist() == [1, 2, 7]


def test_a_rebuild_is_made_aside_and_switched_in_whole(tmp_path):
    (tmp_path / "keywords.npz").write_bytes(b"the index before tantivy")
    old = KeywordIndex.open(tmp_path, MANIFEST)
    old.add([1, 2], [["alpha"], ["beta"]])
    old_dir = old._dir
    new = KeywordIndex.aside(tmp_path, MANIFEST)
    with new.changes():
        new.add([1, 5], [["alpha"], ["epsilon"]])
        assert KeywordIndex.open(tmp_path, MANIFEST).ids().tolist() == [1, 2]  # not yet switched
    assert new._dir != old_dir and not old_dir.exists() and not (tmp_path / "keywords.npz").exists()
    assert old.search(["beta"], 5)[0].tolist() == [2]  # a reader of the old one keeps its mapped files
    assert KeywordIndex.open(tmp_path, MANIFEST).ids().tolist() == [1, 5]
    old.follow()
    assert old.ids().tolist() == [1, 5] and old.search(["epsilon"], 5)[0].tolist() == [5]
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == sorted([POINTER_FILE, new._dir.name])


def test_a_switch_never_removes_a_directory_another_rebuild_is_still_writing(tmp_path):
    KeywordIndex.open(tmp_path, MANIFEST).add([1], [["alpha"]])
    slow, quick = KeywordIndex.aside(tmp_path, MANIFEST), KeywordIndex.aside(tmp_path, MANIFEST)
    with slow.changes():
        slow.add([1, 2], [["alpha"], ["beta"]])
        with quick.changes():
            quick.add([1, 3], [["alpha"], ["gamma"]])
        assert slow._dir.exists()  # quick's switch left it: slow is still writing there
        assert KeywordIndex.open(tmp_path, MANIFEST).ids().tolist() == [1, 3]
        slow.add([4], [["delta"]])
    assert not quick._dir.exists()  # the later switch wins and clears the rest
    assert KeywordIndex.open(tmp_path, MANIFEST).ids().tolist() == [1, 2, 4]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(DIR_PREFIX)) == [slow._dir.name]
    assert not list(tmp_path.glob(f".{quick._dir.name}*"))  # its building lock file went with it


REBUILDS = """
import sys
from pathlib import Path
from kb.index.keywords import KeywordIndex
home, me = Path(sys.argv[1]), int(sys.argv[2])
index = KeywordIndex.open(home, {"analyzer": "v1"})
for round in range(24):  # a worker's rebuilds (centroids drifted) between its catch-ups, as ingest makes them
    if round % 3 == me:
        index = KeywordIndex.aside(home, {"analyzer": "v1"})
    with index.changes():
        lacking = [i for i in range(round * 10 + 10) if i not in set(index.ids().tolist())]
        index.add(lacking, [["shared", f"t{i}"] for i in lacking])
print(len(index))
"""


def test_two_processes_rebuilding_and_catching_up_at_once_both_finish(tmp_path):
    procs = [subprocess.Popen([sys.executable, "-c", REBUILDS, str(tmp_path), str(me)], cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(REPO)}) for me in range(2)]
    outputs = [proc.communicate(timeout=300) for proc in procs]
    assert all(proc.returncode == 0 for proc in procs), outputs
    index = KeywordIndex.open(tmp_path, MANIFEST)
    with index.changes():
        lacking = [i for i in range(240) if i not in set(index.ids().tolist())]
        index.add(lacking, [["shared", f"t{i}"] for i in lacking])
    assert index.ids().tolist() == list(range(240))
    assert index._view.searcher.num_docs == 240
    assert len([p for p in tmp_path.iterdir() if p.name.startswith(DIR_PREFIX)]) == 1


def test_unreadable_files_mean_a_new_index_never_a_crash(tmp_path):
    index = KeywordIndex.open(tmp_path, MANIFEST)
    index.add([1], [["alpha"]])
    (tmp_path / POINTER_FILE).write_text("{not json", encoding="utf-8")
    fresh = KeywordIndex.open(tmp_path, MANIFEST)
    assert len(fresh) == 0
    fresh.add([2], [["beta"]])
    assert KeywordIndex.open(tmp_path, MANIFEST).ids().tolist() == [2]
    for path in fresh._dir.iterdir():
        if path.name == "meta.json":
            path.write_text("garbage", encoding="utf-8")
    assert len(KeywordIndex.open(tmp_path, MANIFEST)) == 0


def test_analyze_gives_terms_and_words_in_one_pass(analyzer):
    text = "ระบบCRMของลูกค้า FW-7731-B 客户关系管理"
    assert analyzer.analyze(text) == (analyzer.terms(text), analyzer.words(text))
