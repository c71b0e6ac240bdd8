"""Snippets: the right excerpt, cut between words, with exactly the matched characters marked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kb.search.snippets import ELLIPSIS, Snippet, make_snippet
from kb.text.analyzer import Analyzer, warm_up
from kb.text.cleaning import normalize_text

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO / "corpus"


@pytest.fixture(scope="module")
def analyzer() -> Analyzer:
    warm_up()
    return Analyzer()


def snippet(text: str, lang: str, query: str, analyzer: Analyzer, **kwargs) -> Snippet:
    return make_snippet(text, lang, set(analyzer.term_texts(query)), analyzer, **kwargs)


def marked(s: Snippet) -> list[str]:
    return [s.text[a:b] for a, b in s.highlights]


def guidance(lang: str, name: str) -> str:
    return normalize_text((CORPUS / "guidance" / lang / name).read_text(encoding="utf-8"))


def note(note_id: str) -> str:
    for line in (CORPUS / "notes" / "notes-2025.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if row["id"] == note_id:
            return normalize_text(row["complaint"] + "\n" + row["resolution"])
    raise KeyError(note_id)


# ------------------------------------------------------------------ highlights


def test_simplified_query_marks_the_traditional_characters(analyzer):
    text = guidance("zh", "complaint-knowledge-sharing.md")  # Traditional, as used in Taiwan
    s = snippet(text, "zh", "电话", analyzer)
    assert marked(s) == ["電話"]


def test_traditional_query_marks_the_simplified_characters(analyzer):
    text = guidance("zh", "data-quality.md")
    s = snippet(text, "zh", "電話", analyzer)
    assert marked(s) and set(marked(s)) == {"电话"}


def test_thai_word_is_marked_inside_a_longer_run(analyzer):
    s = snippet("ฝ่ายลูกค้าสัมพันธ์โทรกลับภายในวันเดียว", "th", "ลูกค้า", analyzer)
    assert marked(s) == ["ลูกค้า"]
    s = snippet("ฝ่ายลูกค้าสัมพันธ์โทรกลับภายในวันเดียว", "th", "ลูกค้าสัมพันธ์", analyzer)
    assert marked(s) == ["ลูกค้าสัมพันธ์"]  # adjacent matches merge into one mark


def test_full_width_text_is_shown_as_written_and_marked_exactly(analyzer):
    text = "客户（会员）问：退款多久到账？答：在１４个工作日内退回原卡。ＣＲＭ系统会发短信通知。"
    s = snippet(text, "zh", "14 crm 退款", analyzer)
    assert s.text == text  # nothing folded for display
    assert set(marked(s)) == {"１４", "ＣＲＭ", "退款"}


def test_thai_marks_keep_tone_marks_apart(analyzer):
    s = snippet("ร้านขายไก่และไข่สด", "th", "ไข่", analyzer)
    assert marked(s) == ["ไข่"]


def test_product_code_is_marked_whole_once(analyzer):
    text = note("N-2025-0013")
    s = snippet(text, "en", "FW-7731-B", analyzer)
    assert marked(s) == ["FW-7731-B"]
    s = snippet(text, "en", "7731", analyzer)
    assert marked(s) == ["7731"]  # a part alone marks only the part


def test_mixed_thai_and_code_note_marks_both(analyzer):
    text = note("N-2025-0027")  # "SH-210 หลุดออฟไลน์วันละหลายรอบ ..."
    s = snippet(text, "th", "SH-210 ออฟไลน์", analyzer)
    assert marked(s) == ["SH-210", "ออฟไลน์"]


def test_every_mark_is_a_query_term_in_real_documents(analyzer):
    cases = [
        ("en", "complaint-history-sharing.md", "complaint history customer"),
        ("th", "complaint-knowledge-sharing.md", "ลูกค้า ข้อมูล"),
        ("zh", "data-quality.md", "客户 数据 质量"),
    ]
    for lang, name, query in cases:
        terms = set(analyzer.term_texts(query))
        s = make_snippet(guidance(lang, name), lang, terms, analyzer)
        assert s.highlights
        for text in marked(s):
            assert text.strip() == text and set(analyzer.term_texts(text)) & terms, (lang, text)


# ------------------------------------------------------------------ the window


def test_sentence_with_most_distinct_terms_wins_over_an_earlier_one(analyzer):
    text = "The router was replaced. Billing was fine. The router firmware update fixed the reboot loop. Router again."
    s = snippet(text, "en", "router firmware reboot", analyzer, max_chars=70)
    assert "firmware" in s.text and "reboot" in s.text
    assert text[s.start : s.end].startswith("The router firmware")


def test_neighbouring_sentences_are_added_while_they_fit(analyzer):
    text = "First sentence here. The router firmware was updated. Third sentence follows. Fourth one."
    s = snippet(text, "en", "firmware", analyzer, max_chars=80)
    assert s.text.startswith("First sentence here. The router firmware")
    assert len(s.text) <= 80


def test_excerpt_offsets_point_into_the_chunk(analyzer):
    text = note("N-2025-0013")
    s = snippet(text, "en", "patched build released", analyzer, max_chars=90)
    body = s.text.removeprefix(ELLIPSIS).removesuffix(ELLIPSIS)
    assert body == " ".join(text[s.start : s.end].split())
    assert s.text.startswith(ELLIPSIS) == (s.start > 0)
    assert len(s.text) <= 90


@pytest.mark.parametrize("max_chars", range(60, 130, 7))
def test_long_latin_sentence_is_cut_between_words(analyzer, max_chars):
    text = (
        " ".join(["alpha beta gamma delta"] * 30)
        + " the refund was approved "
        + " ".join(["epsilon zeta"] * 30)
    )
    s = snippet(text, "en", "refund", analyzer, max_chars=max_chars)
    assert marked(s) == ["refund"]
    assert len(s.text) <= max_chars
    assert text[s.start - 1] == " " and text[s.end] == " "  # whole words at both ends


@pytest.mark.parametrize("max_chars", range(50, 120, 9))
def test_long_thai_text_without_spaces_is_cut_at_word_boundaries(analyzer, max_chars):
    filler = "ลูกค้าแจ้งว่าอินเทอร์เน็ตหลุดบ่อยมากในช่วงเย็น"
    text = filler * 8 + "เจ้าหน้าที่จึงเปลี่ยนเราเตอร์ให้ใหม่" + filler * 8
    s = snippet(text, "th", "เปลี่ยนเราเตอร์", analyzer, max_chars=max_chars, sentences=[(0, len(text))])
    assert "".join(marked(s)) == "เปลี่ยนเราเตอร์"
    assert len(s.text) <= max_chars
    boundaries = {w.start for w in analyzer.words(text)} | {w.end for w in analyzer.words(text)}
    assert s.start in boundaries and s.end in boundaries


def test_a_hit_found_by_meaning_only_shows_the_beginning(analyzer):
    text = guidance("en", "complaint-history-sharing.md")
    s = snippet(text, "en", "ลูกค้า", analyzer, max_chars=120)
    assert s.start == 0 and s.highlights == []
    assert s.text.endswith(ELLIPSIS) and len(s.text) <= 120
    assert text.startswith(s.text.removesuffix(ELLIPSIS).split(" ")[0])


def test_whitespace_is_collapsed_and_marks_still_fit(analyzer):
    text = "Customer   called\n\n  twice about   the\tbill.\nRefund   approved  today."
    s = snippet(text, "en", "bill refund", analyzer)
    assert "  " not in s.text and "\n" not in s.text and "\t" not in s.text
    assert marked(s) == ["bill", "Refund"]


def test_given_sentence_boundaries_are_used(analyzer):
    text = "aaa bbb refund ccc ddd eee fff"
    s = snippet(text, "en", "refund", analyzer, max_chars=12, sentences=[(0, 14), (15, 30)])
    assert "refund" in s.text and marked(s) == ["refund"]


def test_short_text_comes_back_whole_without_ellipses(analyzer):
    s = snippet("  Refund approved.  ", "en", "refund", analyzer)
    assert s.text == "Refund approved." and marked(s) == ["Refund"]
    assert (s.start, s.end) == (2, 18)


def test_empty_text_gives_an_empty_snippet(analyzer):
    assert snippet("", "en", "x", analyzer) == Snippet("", [], 0, 0)
    assert snippet(" \n ", "en", "x", analyzer).text == ""


# ------------------------------------------------------------------ analyzed piece by piece


@pytest.mark.parametrize("lang, name, query", [
    ("en", "complaint-history-sharing.md", "how do we share complaint history with other teams"),
    ("th", "complaint-knowledge-sharing.md", "ลูกค้า ร้องเรียน ข้อมูล ทีม"),
    ("zh", "data-quality.md", "客户 數據 质量 负责"),  # Traditional in the query: matched as Simplified
])
def test_stored_sentences_give_the_excerpt_a_whole_text_analysis_gives(analyzer, lang, name, query):
    # With the chunk's sentences, only the sentences that may hold a query term are segmented up front;
    # the excerpt and every mark must be those of segmenting the whole text.
    from kb.text.sentences import split_sentences

    text = guidance(lang, name)
    sentences = split_sentences(text, lang)
    for max_chars in (80, 240):
        whole = snippet(text, lang, query, analyzer, max_chars=max_chars)
        pieces = snippet(text, lang, query, analyzer, max_chars=max_chars, sentences=sentences)
        assert whole.highlights, (lang, query)
        assert (pieces.text, pieces.highlights, pieces.start, pieces.end) == (
            whole.text, whole.highlights, whole.start, whole.end)


def test_may_hold_never_misses_a_term_the_analyzer_finds(analyzer):
    texts = [
        "The customer’s O’Brien-2 case: CALLBACK within 2 hours.",
        "ลูกค้าสัมพันธ์ต้องโทรกลับภายใน ๒ ชั่วโมง",  # Thai digits are indexed as 0-9
        "客戶關係管理：請在兩小時內回電。",  # Traditional, indexed as Simplified
    ]
    for text in texts:
        terms = analyzer.terms(text)
        assert terms
        for term in terms:
            assert analyzer.may_hold(text, {term.text}) == 1, (text, term.text)
        assert analyzer.may_hold(text, {"refund", "退款", "คืนเงิน"}) == 0
