"""The text pipeline: normalise, strip boilerplate, detect languages, split sentences, chunk.

The seed documents (real, messy input) live outside the repository; they are
found through KB_SEEDS_DIR, a `shared/seeds` folder beside an ancestor of this
file, or /work/shared/seeds, and the seed tests skip when none exists.
"""

from __future__ import annotations

import math
import os
import re
import statistics
import time
from pathlib import Path

import pytest

from kb.text.chunking import ChunkSpec, chunk_text
from kb.text.cleaning import clean_text, load_boilerplate_rules, normalize_text, tidy_text
from kb.text.languages import SUPPORTED_LANGUAGES, detect_language
from kb.text.sentences import THAI_SENTENCE_MAX, Run, join_thai_clauses, language_runs, split_sentences

THAI = re.compile(r"[\u0e00-\u0e7f]")
HAN = re.compile(r"[\u4e00-\u9fff]")

# --------------------------------------------------------------------- fixtures


def _find_seeds_dir() -> Path | None:
    if os.environ.get("KB_SEEDS_DIR"):
        path = Path(os.environ["KB_SEEDS_DIR"])
        return path if path.is_dir() else None
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "shared" / "seeds"
        if candidate.is_dir():
            return candidate
    fallback = Path("/work/shared/seeds")
    return fallback if fallback.is_dir() else None


@pytest.fixture(scope="session")
def seeds() -> dict[str, str]:
    """Raw seed texts keyed by their number prefix ("000" ... "004")."""
    folder = _find_seeds_dir()
    if folder is None:
        pytest.skip("no seed documents (set KB_SEEDS_DIR)")
    texts = {path.name[:3]: path.read_text(encoding="utf-8") for path in sorted(folder.glob("*.txt"))}
    if not texts:
        pytest.skip(f"no seed documents in {folder}")
    return texts


def _seed(seeds: dict[str, str], number: str) -> str:
    if number not in seeds:
        pytest.skip(f"seed {number}_* is missing")
    return seeds[number]


@pytest.fixture(scope="session")
def cleaned(seeds) -> dict[str, str]:
    return {number: clean_text(text) for number, text in seeds.items()}


@pytest.fixture(scope="session")
def model_counter(models_dir):
    """Token counts as the bundled e5 model sees them ("passage: " prefix, <s> and </s>)."""
    import tokenizers

    from kb.embed.bundled_model import BUNDLED_DIR_NAME

    model_dir = models_dir / BUNDLED_DIR_NAME
    tokenizer = tokenizers.Tokenizer.from_file(str(model_dir / "tokenizer.json"))

    def count(texts: list[str]) -> list[int]:
        return [len(e.ids) for e in tokenizer.encode_batch(["passage: " + t for t in texts])]

    return count


def word_counter(texts: list[str]) -> list[int]:
    """Two special tokens plus one per whitespace-separated word: additive, easy to reason about."""
    return [2 + len(t.split()) for t in texts]


def char_counter(texts: list[str]) -> list[int]:
    """One token per three characters, whitespace included: joined text costs more than its parts,
    so the chunker's estimate runs short and its overflow repair has to work."""
    return [3 + math.ceil(len(t) / 3) for t in texts]


# ---------------------------------------------------------------- invariants


def assert_spans_cover(
    text: str, spans: list[tuple[int, int]], start: int = 0, end: int | None = None
) -> None:
    """Spans are trimmed, ordered, non-overlapping, inside the range, and cover its non-space text."""
    end = len(text) if end is None else end
    previous_end = start
    for s, e in spans:
        assert start <= s < e <= end
        assert s >= previous_end, "spans overlap or are out of order"
        assert not text[s].isspace() and not text[e - 1].isspace(), "span is not trimmed"
        assert text[previous_end:s].strip() == "", f"text left out: {text[previous_end:s]!r}"
        previous_end = e
    assert text[previous_end:end].strip() == "", f"text left out: {text[previous_end:end]!r}"


def assert_chunk_invariants(text: str, chunks: list[ChunkSpec], count, max_tokens: int) -> None:
    runs = language_runs(text)
    assert chunks, "non-empty text must give chunks"
    covered = bytearray(len(text))
    for chunk in chunks:
        assert 0 <= chunk.start < chunk.end <= len(text)
        assert chunk.token_count <= max_tokens
        assert chunk.lang in {run.lang for run in runs}
        inside = [r for r in runs if r.start <= chunk.start and chunk.end <= r.end]
        assert len(inside) == 1 and inside[0].lang == chunk.lang, "chunk crosses a language run"
        covered[chunk.start : chunk.end] = b"\x01" * (chunk.end - chunk.start)
        assert chunk.sentences, "a chunk keeps the sentences it is made of"
        assert_spans_cover(text, list(chunk.sentences), chunk.start, chunk.end)
    assert all(covered[i] or text[i].isspace() for i in range(len(text))), "text not in any chunk"
    assert [c.token_count for c in chunks] == count([text[c.start : c.end] for c in chunks])
    for a, b in zip(chunks, chunks[1:], strict=False):
        same_run = any(r.start <= a.start and b.end <= r.end for r in runs)
        assert b.start > a.start, "chunks out of order"
        if not same_run:
            assert b.start >= a.end, "chunks overlap across runs"


def run_of(runs: list[Run], chunk: ChunkSpec) -> Run:
    return next(r for r in runs if r.start <= chunk.start and chunk.end <= r.end)


# ------------------------------------------------------------------ normalize


def test_normalize_text_removes_byte_order_marks_and_zero_width_characters():
    text = "\ufeffCRM\u200b sys\u00adtem\u200c\u200d re\u2060port\ufeff"
    assert normalize_text(text) == "CRM system report"


def test_normalize_text_folds_fullwidth_forms_to_ascii():
    assert normalize_text("ＣＲＭ　１２３！") == "CRM 123!"


def test_normalize_text_unifies_newlines_spaces_and_blank_lines():
    text = "one\r\ntwo\rthree\tfour\u00a0five   \n\n\n\n\nsix\x07\x00"
    assert normalize_text(text) == "one\ntwo\nthree four five\n\nsix"


def test_normalize_text_keeps_thai_sara_am_whole():
    # NFKC alone would split ำ into ํ + า, which Thai word lists do not contain.
    assert normalize_text("กำลังดำเนินการ") == "กำลังดำเนินการ"
    assert normalize_text("ก\u0e4d\u0e32ลัง") == "กำลัง"


def test_normalize_text_is_idempotent(seeds):
    samples = [
        "e\u200b\u0301 caf\u00e9 ﬁle ½ ①",
        "\u3000全角\u3000スペース\r\n\r\n\r\n次",
        " trailing  \n\n\n  lines \t\n",
        "กํา ก\u200bำ",
        *seeds.values(),
    ]
    for sample in samples:
        once = normalize_text(sample)
        assert normalize_text(once) == once


# -------------------------------------------------------------- boilerplate


def test_clean_text_removes_download_site_disclaimers(seeds):
    text = clean_text(_seed(seeds, "002"))
    for boilerplate in ("本文档共", "原创力文档", "本站所有内容", "如文档侵犯", "查看更多", "文档评论"):
        assert boilerplate not in text
    assert "組織的結構通常是在一段時間形成" in text
    assert "長時間的電話等候是由於有限的人力資源。" in text


def test_clean_text_removes_slide_site_wrappers_glued_to_text(seeds):
    text = clean_text(_seed(seeds, "003"))
    for boilerplate in ("资源简介", "共32张PPT", "展开更多", "收起", "资源预览"):
        assert boilerplate not in text
    assert text.startswith("Chapter 11Making CRM a Success")
    assert "A successful CRM requires a cultural change" in text
    assert text.endswith("permission marketing.Recap")


def test_clean_text_removes_breadcrumbs_comment_widget_and_list_garbage(seeds):
    text = clean_text(_seed(seeds, "004"))
    assert "主页" not in text and "TEC博客" not in text
    assert "comments powered by Disqus" not in text
    assert not re.search(r"-\s+-\s*$", text, re.MULTILINE)
    assert "一个有效的商业案例必须连结CRM实现组织目标" in text
    assert "• 这是正确的时机吗?" in text
    assert "作者: Glen Petersen" in text


def test_clean_text_removes_translation_widget_line_but_keeps_both_languages(seeds):
    text = clean_text(_seed(seeds, "000"))
    assert "กรุณารอสักครู่" not in text
    assert "• The key challenge in implementing CRM is the organization itself!!!" in text
    assert "1 มิติทางธุรกิจ" in text
    assert text.endswith("การเปลี่ยนแปลงในการแก้ปัญหาด้านเทคโนโลยีในช่วงเวลา")


def test_clean_text_keeps_real_thai_content(seeds):
    raw, text = _seed(seeds, "001"), clean_text(_seed(seeds, "001"))
    # Nothing in the Thai article is boilerplate: only whitespace may change.
    assert re.sub(r"\s", "", text) == re.sub(r"\s", "", tidy_text(raw))


def test_clean_text_collapses_repeated_paragraph_blocks(seeds):
    text = clean_text(_seed(seeds, "004"))
    assert text.count("是由两部分组成的两个部分") == 1
    assert text.count("一个讨论客户关系管理(CRM)和它的好处") == 1


def test_clean_text_drops_long_repeats_but_keeps_short_isolated_ones():
    long_paragraph = "Escalate a complaint to the duty manager when the customer has called three times."
    text = "\n\n".join(
        [
            "Intro.",
            long_paragraph,
            "Smith, J. CRM handbook.",
            "(accessed 19 October 2005)",
            "Jones, K. Service design.",
            "(accessed 19 October 2005)",
            long_paragraph,
        ]
    )
    cleaned_text = clean_text(text)
    assert cleaned_text.count(long_paragraph) == 1
    assert cleaned_text.count("(accessed 19 October 2005)") == 2


def test_clean_text_keeps_lookalikes_of_boilerplate():
    kept = [
        "Go to Settings > Users > Roles to add a role.",
        "Settings > Users > Roles",
        "> > quoted reply from the customer",
        "(c) The customer signs the form.",
        "กรุณารอสักครู่",
        "Please wait...",
        "Home",
        "Our website uses cookies to track customer journeys into the CRM.",
        "Home/office/retail customers get the same warranty.",
        "Loading",
        "请联系版权所有人获得授权。",
    ]
    text = "\n".join(kept)
    assert clean_text(text) == text


def test_clean_text_removes_generic_web_boilerplate_in_three_languages():
    boilerplate = [
        "Share on Facebook",
        "Loading...",
        "Home / Blog / Refund policy",
        "กำลังโหลด...",
        "加载中...",
        "Page 3 of 20",
        "- 7 -",
        "© 2024 Acme Corp.",
        "Copyright 2023 Acme. All rights reserved.",
        "版权所有 © 2020 某某公司",
        "สงวนลิขสิทธิ์ 2566 บริษัท ตัวอย่าง จำกัด",
        "Back to top",
        "This website uses cookies to improve your experience. By continuing to browse you agree to our cookie policy.",
        "本网站使用cookie来改善体验，继续浏览即表示您同意。",
    ]
    real = ["Refunds are processed within 14 days.", "退款在14天内处理。", "คืนเงินภายใน 14 วัน"]
    text = "\n".join([real[0], *boilerplate[:7], real[1], *boilerplate[7:], real[2]])
    assert clean_text(text) == "\n".join(real)


def test_extra_boilerplate_file_adds_rules_to_the_defaults(tmp_path):
    extra = tmp_path / "rules.txt"
    extra.write_text("# ours\nline: Internal use only\nphrase: \\[DRAFT\\][ ]*\n", encoding="utf-8")
    rules = load_boilerplate_rules(extra)
    text = "[DRAFT] Call back within a day.\nInternal use only\ncomments powered by Disqus"
    assert clean_text(text, rules) == "Call back within a day."
    assert clean_text(text) == "[DRAFT] Call back within a day.\nInternal use only"


def test_bad_boilerplate_rule_names_the_file_and_line(tmp_path):
    extra = tmp_path / "rules.txt"
    extra.write_text("line: fine\nphrase: (unclosed\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"rules\.txt:2"):
        load_boilerplate_rules(extra)


# ------------------------------------------------------------------ languages


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The customer asked for a refund because the delivery was late again.", "en"),
        ("ลูกค้าร้องเรียนเรื่องการจัดส่งล่าช้า", "th"),
        ("客户投诉送货延迟，要求退款。", "zh"),
        ("顧客關係管理的結構通常是在一段時間形成", "zh"),
        ("CRM ของ SBU", "th"),
        ("客户 CRM 系统", "zh"),
        ("The CRM (客户关系管理) module", "en"),
        ("如何在 Salesforce 中导出报表", "zh"),
        ("วิธีตั้งค่า Salesforce", "th"),
        ("顧客管理システムの導入について説明します", "ja"),
        ("고객 관계 관리 시스템", "ko"),
        ("Le client est roi dans notre entreprise de services et nous le savons bien", "fr"),
        ("", "und"),
        ("123 456 !!! •", "und"),
    ],
)
def test_detect_language(text, expected):
    assert detect_language(text) == expected


def test_detect_language_gives_short_latin_text_the_default():
    assert detect_language("Chapter 4") == "en"
    assert detect_language("Chapter 4", default="th") == "th"
    assert detect_language("Salesforce", default="zh") == "zh"


def test_supported_languages():
    assert SUPPORTED_LANGUAGES == ("en", "th", "zh")


def test_detect_language_is_deterministic():
    # Short mixed-European text is where unseeded langdetect flips between answers.
    text = "Der Kunde ist König, le client est roi, the customer is king, el cliente"
    assert len({detect_language(text) for _ in range(50)}) == 1


# ------------------------------------------------------------ language runs


def test_english_thai_seed_has_an_english_run_then_a_thai_run(seeds, cleaned, model_counter):
    _seed(seeds, "000")
    text = cleaned["000"]
    runs = language_runs(text)
    assert [run.lang for run in runs] == ["en", "th"]
    english, thai = (text[r.start : r.end] for r in runs)
    assert not THAI.search(english)
    assert english.startswith("3 Multidimensional Process")
    assert thai.startswith("3 หลายมิติกระบวนการ")
    chunks = chunk_text(text, model_counter)
    assert {c.lang for c in chunks} == {"en", "th"}
    for chunk in chunks:
        body = text[chunk.start : chunk.end]
        assert (chunk.lang == "th") == bool(THAI.search(body))


def test_traditional_chinese_seed_is_chinese(seeds, cleaned, model_counter):
    _seed(seeds, "002")
    text = cleaned["002"]
    assert [run.lang for run in language_runs(text)] == ["zh"]
    assert {c.lang for c in chunk_text(text, model_counter)} == {"zh"}


def test_seed_languages(cleaned):
    expected = {"000": ["en", "th"], "001": ["th"], "002": ["zh"], "003": ["en"], "004": ["zh"]}
    for number, text in cleaned.items():
        if number in expected:
            assert [run.lang for run in language_runs(text)] == expected[number], number


def test_language_runs_are_ordered_and_cover_every_character(cleaned):
    for text in cleaned.values():
        runs = language_runs(text)
        assert_spans_cover(text, [(r.start, r.end) for r in runs])
        assert all(a.lang != b.lang for a, b in zip(runs, runs[1:], strict=False))


def test_short_lines_take_their_neighbours_language():
    text = (
        "Chapter 4\n\n"
        "ลูกค้าร้องเรียนเรื่องการจัดส่งล่าช้า และขอให้บริษัทติดต่อกลับภายในวันนี้\n"
        "CRM\n"
        "พนักงานต้องบันทึกเรื่องร้องเรียนในระบบทุกครั้ง\n\n"
        "12"
    )
    assert language_runs(text) == [Run(0, len(text), "th")]


def test_language_runs_split_where_the_script_changes_inside_a_paragraph():
    english = "Customers expect a reply within one working day, even on public holidays."
    thai = "ลูกค้าคาดหวังการตอบกลับภายในหนึ่งวันทำการ แม้ในวันหยุดนักขัตฤกษ์"
    text = f"{english}\n{thai}"
    assert language_runs(text) == [Run(0, len(english), "en"), Run(len(english) + 1, len(text), "th")]


def test_language_runs_of_blank_text_is_empty():
    assert language_runs("") == [] and language_runs(" \n\n ") == []


# ---------------------------------------------------------------- sentences


def sentences_of(text: str, lang: str) -> list[str]:
    spans = split_sentences(text, lang)
    assert_spans_cover(text, spans)
    return [text[s:e] for s, e in spans]


def test_english_sentences_join_pdf_wrapped_lines_and_split_at_list_items():
    text = (
        "Human Factor: Leadership\n"
        "• If CRM program effort is not an integrated extension of the overall vision, it\n"
        "may be unpredictably or unsustainably successful\n"
        "How to create CRM Vision?\n"
        "• A CRM Vision is created at the highest level of an organization, followed by\n"
        "goals, objectives, strategies, and plans\n"
        "– They must be given time to learn\n"
        "1. A business dimension\n"
        "a) a technological dimension\n"
        "• The benefit include more efficient communication to the\n"
        "Organization Environment: Technology\n"
        "• CRM efforts are most successful when integrated"
    )
    assert sentences_of(text, "en") == [
        "Human Factor: Leadership",
        "• If CRM program effort is not an integrated extension of the overall vision, it\n"
        "may be unpredictably or unsustainably successful",
        "How to create CRM Vision?",
        "• A CRM Vision is created at the highest level of an organization, followed by\n"
        "goals, objectives, strategies, and plans",
        "– They must be given time to learn",
        "1. A business dimension",
        "a) a technological dimension",
        "• The benefit include more efficient communication to the",
        "Organization Environment: Technology",
        "• CRM efforts are most successful when integrated",
    ]


def test_english_sentences_split_glued_sentences():
    text = (
        "Change starts at the top of the organization.A successful CRM requires a cultural change."
        "Another aspect is data quality.IntroductionSuccess matters.CRM’s API helps."
        "4. CRM & HR Issues (Contd.)The implementation of CRM involves change."
    )
    assert sentences_of(text, "en") == [
        "Change starts at the top of the organization.",
        "A successful CRM requires a cultural change.",
        "Another aspect is data quality.",
        "IntroductionSuccess matters.",
        "CRM’s API helps.",
        "4. CRM & HR Issues (Contd.)",
        "The implementation of CRM involves change.",
    ]


def test_english_sentences_split_before_glued_numbered_headings():
    text = "Goals get aligned.1. Top Management Commitment is needed."
    assert sentences_of(text, "en") == ["Goals get aligned.", "1. Top Management Commitment is needed."]


def test_english_sentences_do_not_split_abbreviations_numbers_or_addresses():
    text = (
        "We use tools, e.g. Salesforce, in the U.S. market. "
        "It costs 3.5 million. Version v2.1 shipped. "
        "See www.Example.com or mail john.Smith@example.com for more. "
        "Dr. Smith agreed."
    )
    assert sentences_of(text, "en") == [
        "We use tools, e.g. Salesforce, in the U.S. market.",
        "It costs 3.5 million.",
        "Version v2.1 shipped.",
        "See www.Example.com or mail john.Smith@example.com for more.",
        "Dr. Smith agreed.",
    ]


def test_thai_sentences_use_crfcut_and_break_at_bullets_and_newlines():
    text = (
        "ปัจจัยมนุษย์: ความเป็นผู้นำ\n"
        "•ความคิดริเริ่มจากบนลงล่างจากผู้บริหาร•มุ่งเน้นไปที่ลูกค้าและการพัฒนาความภักดีของลูกค้า\n"
        "ลูกค้าโทรมาสอบถามเรื่องการคืนสินค้า พนักงานจึงอธิบายขั้นตอนให้ลูกค้าฟังอย่างละเอียด "
        "หลังจากนั้นลูกค้าก็พอใจและวางสายไป"
    )
    sentences = sentences_of(text, "th")
    assert sentences[:3] == [
        "ปัจจัยมนุษย์: ความเป็นผู้นำ",
        "•ความคิดริเริ่มจากบนลงล่างจากผู้บริหาร",
        "•มุ่งเน้นไปที่ลูกค้าและการพัฒนาความภักดีของลูกค้า",
    ]
    assert len(sentences) >= 4  # crfcut cuts the last line at least once


def test_thai_clauses_join_into_sentences_for_quoting():
    answer = "เพย์ตัน แมนนิง เป็นควอเตอร์แบ็กที่อายุมากที่สุดที่เคยเล่นในซูเปอร์โบว์ล โดยมีอายุ 39 ปี"
    pieces = split_sentences(answer, "th")
    assert len(pieces) >= 2  # crfcut cuts at the spaces
    # The clause opened by "โดย" continues the sentence: quoted together, the age comes with it.
    assert [answer[a:b] for a, b in join_thai_clauses(answer, pieces)] == [answer]


def test_thai_clause_joining_stops_at_lines_and_at_the_length_limit():
    text = "ลูกค้าโทรมา\nโดยขอคืนสินค้า"
    assert join_thai_clauses(text, [(0, 11), (12, len(text))]) == [(0, 11), (12, len(text))]
    long_clause = "ก" * (THAI_SENTENCE_MAX - 20)
    text = f"สั้น {long_clause}"
    spans = [(0, 4), (5, len(text))]
    assert join_thai_clauses(text, spans) == [(0, len(text))]  # a short clause joins the next one
    text = f"{long_clause} และอีกประโยคหนึ่งที่ยาวพอสมควร"
    spans = [(0, len(long_clause)), (len(long_clause) + 1, len(text))]
    assert join_thai_clauses(text, spans) == spans  # together they would pass THAI_SENTENCE_MAX
    assert join_thai_clauses("", []) == []


def test_chinese_sentences_end_at_chinese_punctuation_with_closing_quotes():
    text = "他说：“客户第一。”然后离开了！这是真的吗？是的……我们继续\n下一行没有标点"
    assert sentences_of(normalize_text(text), "zh") == [
        "他说:“客户第一。”",
        "然后离开了!",
        "这是真的吗?",
        "是的......",
        "我们继续",
        "下一行没有标点",
    ]


def test_chinese_sentences_do_not_split_urls():
    assert sentences_of("请访问 index.jsp?pos=1 查看。", "zh") == ["请访问 index.jsp?pos=1 查看。"]


def test_split_sentences_uses_absolute_offsets_inside_a_range():
    text = "Prefix that is skipped. First sentence here. Second one here. Suffix skipped."
    start = text.index("First")
    end = text.index(" Suffix")
    spans = split_sentences(text, "en", start, end)
    assert [text[s:e] for s, e in spans] == ["First sentence here.", "Second one here."]


def test_sentences_of_every_seed_run_are_trimmed_and_cover_it(cleaned):
    for text in cleaned.values():
        for run in language_runs(text):
            assert_spans_cover(text, split_sentences(text, run.lang, run.start, run.end), run.start, run.end)


# ------------------------------------------------------------------- chunks


def test_chunk_text_of_blank_text_is_empty():
    assert chunk_text("", word_counter) == [] and chunk_text(" \n\t\n", word_counter) == []


@pytest.mark.parametrize(("counter", "max_tokens"), [(word_counter, 40), (char_counter, 90)])
def test_seed_chunks_hold_invariants_with_simple_counters(cleaned, counter, max_tokens):
    for text in cleaned.values():
        assert_chunk_invariants(text, chunk_text(text, counter, max_tokens=max_tokens), counter, max_tokens)


def test_seed_chunks_hold_invariants_with_the_model_tokenizer(cleaned, model_counter):
    for text in cleaned.values():
        chunks = chunk_text(text, model_counter, max_tokens=256)
        assert_chunk_invariants(text, chunks, model_counter, 256)
        assert statistics.median(c.token_count for c in chunks) > 200, "chunks should be well filled"


def test_seed_chunks_overlap_by_exactly_one_sentence_or_not_at_all(cleaned, model_counter):
    for text in cleaned.values():
        runs = language_runs(text)
        sentences = {run: set(split_sentences(text, run.lang, run.start, run.end)) for run in runs}
        chunks = chunk_text(text, model_counter)
        for a, b in zip(chunks, chunks[1:], strict=False):
            if run_of(runs, a) == run_of(runs, b) and b.start < a.end:
                assert (b.start, a.end) in sentences[run_of(runs, a)], "overlap must be one whole sentence"


def test_chunk_sentences_are_the_sentences_of_their_run_or_pieces_of_one(cleaned, model_counter):
    for text in cleaned.values():
        runs = language_runs(text)
        sentences = {run: split_sentences(text, run.lang, run.start, run.end) for run in runs}
        for chunk in chunk_text(text, model_counter):
            whole = sentences[run_of(runs, chunk)]
            for s, e in chunk.sentences:
                assert any(a <= s and e <= b for a, b in whole), f"{text[s:e]!r} is not inside one sentence"
            relative = chunk.relative_sentences()
            assert [text[chunk.start : chunk.end][a:b] for a, b in relative] == [
                text[s:e] for s, e in chunk.sentences
            ]


def test_consecutive_chunks_share_exactly_one_sentence():
    sentences = [f"Sentence number {i} explains one more step of the refund process." for i in range(40)]
    text = " ".join(sentences)
    chunks = chunk_text(text, word_counter, max_tokens=50)
    assert len(chunks) > 5
    spans = split_sentences(text, "en")
    for a, b in zip(chunks, chunks[1:], strict=False):
        inside_a = [s for s in spans if a.start <= s[0] and s[1] <= a.end]
        assert (b.start, a.end) == inside_a[-1], "next chunk starts with the previous chunk's last sentence"
    assert_chunk_invariants(text, chunks, word_counter, 50)


def test_overlap_can_be_turned_off():
    text = " ".join(f"Step {i} of the escalation procedure is documented here." for i in range(30))
    chunks = chunk_text(text, word_counter, max_tokens=40, overlap_sentences=0)
    assert all(b.start >= a.end for a, b in zip(chunks, chunks[1:], strict=False))


def test_chunks_never_cross_a_language_run():
    english = " ".join(["Customers expect a reply within one working day."] * 3)
    thai = "ลูกค้าคาดหวังการตอบกลับภายในหนึ่งวันทำการ"
    text = f"{english}\n\n{thai}"
    chunks = chunk_text(text, word_counter, max_tokens=200)
    assert [(text[c.start : c.end], c.lang) for c in chunks] == [(english, "en"), (thai, "th")]


def test_overlong_english_sentence_is_cut_at_spaces(model_counter):
    words = [f"word{i}" for i in range(600)]
    text = " ".join(words)
    chunks = chunk_text(text, model_counter, max_tokens=64)
    assert len(chunks) > 5
    assert_chunk_invariants(text, chunks, model_counter, 64)
    for chunk in chunks:
        assert (
            text[chunk.start : chunk.end].split()[0] in words
            and text[chunk.start : chunk.end].split()[-1] in words
        )


def test_overlong_thai_sentence_is_cut_between_words(model_counter):
    from pythainlp.tokenize import word_tokenize

    text = "ลูกค้าโทรมาสอบถามเรื่องการคืนสินค้าและพนักงานอธิบายขั้นตอนให้ลูกค้าฟังอย่างละเอียด" * 8
    bounds = {0}
    for word in word_tokenize(text, engine="newmm"):
        bounds.add(max(bounds) + len(word))
    chunks = chunk_text(text, model_counter, max_tokens=48)
    assert len(chunks) > 3
    assert_chunk_invariants(text, chunks, model_counter, 48)
    assert all(c.start in bounds and c.end in bounds for c in chunks)


def test_overlong_chinese_sentence_is_cut_within_the_limit(model_counter):
    text = "客户关系管理需要整合销售市场和服务部门的数据并且持续改进流程" * 20
    chunks = chunk_text(text, model_counter, max_tokens=40)
    assert len(chunks) > 5
    assert_chunk_invariants(text, chunks, model_counter, 40)


def test_chunk_text_counts_tokens_in_few_calls(cleaned, model_counter):
    calls = []

    def counting(texts):
        calls.append(len(texts))
        return model_counter(texts)

    for text in cleaned.values():
        calls.clear()
        chunk_text(text, counting)
        assert len(calls) <= 4, "one call for runs, one for sentences, one to verify, at most one repair"


def test_chunks_fit_even_when_sentence_counts_are_wrong():
    # The sentence batch (the second call) claims every sentence is free; the
    # run and verification calls tell the truth. Final counts must still fit.
    calls = []

    def misleading(texts: list[str]) -> list[int]:
        calls.append(texts)
        if len(calls) == 2:
            return [2] * len(texts)
        return word_counter(texts)

    text = " ".join(f"Sentence {i} describes another part of the returns policy." for i in range(30))
    chunks = chunk_text(text, misleading, max_tokens=30)
    assert len(calls) > 3, "the lie must have forced a repair"
    assert_chunk_invariants(text, chunks, word_counter, 30)


def test_chunk_text_rejects_a_limit_below_the_overhead():
    with pytest.raises(ValueError, match="overhead"):
        chunk_text("Some text.", word_counter, max_tokens=2)


# -------------------------------------------------------------- performance


def test_pipeline_is_fast_on_the_seeds(seeds, model_counter):
    for text in seeds.values():  # warm up: crfcut model, langdetect profiles, pysbd rules
        chunk_text(clean_text(text), model_counter)
    started = time.perf_counter()
    chunks: dict[str, list[ChunkSpec]] = {}
    for number, text in seeds.items():
        chunks[number] = chunk_text(clean_text(text), model_counter)
    elapsed = time.perf_counter() - started
    total = sum(len(c) for c in chunks.values())
    print(f"\nclean + runs + chunks over {len(seeds)} seeds: {elapsed * 1000:.0f} ms, {total} chunks")
    for number, specs in chunks.items():
        for lang in sorted({c.lang for c in specs}):
            sizes = [c.token_count for c in specs if c.lang == lang]
            print(
                f"  {number} {lang}: {len(sizes)} chunks, tokens min {min(sizes)} "
                f"median {statistics.median(sizes):.0f} max {max(sizes)}"
            )
    # Embedding runs at ~10 chunks/s on the 2-core build machine; the whole ingest
    # must stay within 15% of that, so this part should be a few per cent of it.
    print(f"  = {elapsed / (total / 10):.1%} of the time embedding these chunks takes")
    assert elapsed < 2.0


def test_quick_folding_folds_as_folding_with_offsets_does():
    from kb.text.cleaning import fold, fold_quickly

    texts = ["ＣＲＭ　ｆｕｌｌ-width（全角）？", "e\u0301clair caf\u00e9", "กำลัง \u0e01\u0e4d\u0e32", "plain ascii", "ﬁle\u200bname"]
    texts += [p.read_text(encoding="utf-8") for p in sorted((Path(__file__).resolve().parents[2] / "corpus" / "guidance").rglob("*.md"))]
    for text in texts:
        assert fold_quickly(text) == fold(text), text[:40]
