"""Structure kept through cleaning (headings, lists, tables) and the author's characters kept for display."""

from __future__ import annotations

import re

from kb.text.analyzer import Analyzer
from kb.text.cleaning import clean_text, fold, fold_with_offsets, normalize_text
from kb.text.structure import extract_headings, heading_line, heading_paths, parse_blocks

ZH = "客户（会员）问：请在２４小时内回电？ＣＲＭ系统ﬁne"


def test_cleaning_keeps_full_width_punctuation_digits_and_ligatures():
    assert clean_text(ZH) == ZH
    assert clean_text("a\u200bb\u00a0c\r\n") == "ab c"  # invisible characters and odd spaces still go


def test_folding_matches_normalize_text_and_maps_every_span_back():
    folded, starts, ends = fold_with_offsets(ZH)
    assert folded == normalize_text(ZH) == "客户(会员)问:请在24小时内回电?CRM系统fine"
    for word, original in [("24", "２４"), ("CRM", "ＣＲＭ"), ("fine", "ﬁne"), ("(会员)", "（会员）")]:
        a = folded.index(word)
        assert ZH[starts[a] : ends[a + len(word) - 1]] == original
    assert fold_with_offsets("plain English, กำลัง, 客户") == ("plain English, กำลัง, 客户", None, None)
    assert fold("cafe\u0301") == "café"


def test_analyzer_terms_of_original_text_are_exact_spans_of_it():
    terms = Analyzer().terms(ZH)
    spans = {t.text: ZH[t.start : t.end] for t in terms}
    assert spans["24"] == "２４" and spans["crm"] == "ＣＲＭ" and spans["fine"] == "ﬁne"
    assert Analyzer().term_texts(ZH) == Analyzer().term_texts(normalize_text(ZH))


def test_boilerplate_rules_written_for_ascii_forms_still_match_full_width_text():
    text = "资源简介（共12张PPT）客户至上。\n展开更多......收起↑资源预览"
    assert clean_text(text) == "客户至上。"


def test_heading_marks_survive_cleaning_and_give_each_position_its_path():
    raw = "\n\n".join([heading_line(1, "Guide"), "Intro.", heading_line(2, "Refunds"), "Paid back.",
                       heading_line(3, "Store credit"), "1. Offer it.\n  - Note it.", heading_line(2, "Exchanges"),
                       "By courier."])
    text, headings = extract_headings(clean_text(raw))
    assert "\ue001" not in text and [(text[h.start : h.end], h.level) for h in headings] == [
        ("Guide", 1), ("Refunds", 2), ("Store credit", 3), ("Exchanges", 2)]
    spans = [(text.index(s), text.index(s) + len(s)) for s in ("Intro.", "Paid back.", "Offer it.", "By courier.")]
    spans.insert(1, (text.index("Refunds"), text.index("Paid back.") + 10))  # a chunk opening with its heading
    assert heading_paths(text, headings, spans, title="Guide") == [
        [], ["Refunds"], ["Refunds"], ["Refunds", "Store credit"], ["Exchanges"]]
    assert "  - Note it." in text  # the nested item keeps its indent


def test_blocks_read_back_lists_tables_and_paragraphs_with_exact_spans():
    text = "Steps:\nfirst line\n\n3. Third\n4. Fourth\n   still fourth\n  - sub\n\n| a | b | c |\n|  | x |"
    blocks = parse_blocks(text)
    assert [b.kind for b in blocks] == ["paragraph", "list", "table"]
    assert [text[a:b] for a, b in blocks[0].lines] == ["Steps:", "first line"]
    items = blocks[1].items
    assert [(i.depth, i.ordered, i.number, [text[a:b] for a, b in i.lines]) for i in items] == [
        (0, True, 3, ["Third"]), (0, True, 4, ["Fourth", "still fourth"]), (1, False, None, ["sub"])]
    assert [[text[a:b] for a, b in row] for row in blocks[2].rows] == [["a", "b", "c"], ["", "x"]]
    assert not re.search(r"\S", "".join(text[a:b] for a, b in blocks[2].rows[1][:1]))
