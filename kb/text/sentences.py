"""Split a cleaned document into language runs, and a run into sentences.

One file often holds several languages (an English handout followed by its
Thai machine translation), and each needs its own sentence rules: Thai has no
sentence punctuation, Chinese has no spaces, English from PDFs is wrapped at
arbitrary points. Every span returned here is an offset pair into the text it
was given, so chunks, highlights and citations point at the exact characters.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

from kb.text.languages import (
    MIN_LATIN_LETTERS,
    detect_language,
    detect_language_confidently,
    detect_latin_language,
    script_profile,
)


@dataclass(frozen=True)
class Run:
    """A stretch of `text[start:end]` in one language."""

    start: int
    end: int
    lang: str


# A block shorter than this (weighted letters, see kb.text.languages) between two
# blocks of one other language takes theirs: an English reference entry inside
# a Thai bibliography, a Thai name line inside English prose.
_SANDWICH_WEIGHT = 120

_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
_LINE = re.compile(r"[^\n]+")
_NON_SPACE = re.compile(r"\S")
# Bullets that start an item even in the middle of a line ("...ตัวเอง !!! •หาก...").
_BULLETS = "•▪●◦■►➢"
_INLINE_BULLET = re.compile(f"[{_BULLETS}]")
_LIST_MARKER = re.compile(
    rf"(?:[{_BULLETS}]|[-–—*✓✔]\s|\d{{1,3}}[.)](?:\s|$)|[a-z][.)]\s|[A-Z]\)\s|\(\w{{1,3}}\)\s)"
)
_SENTENCE_END = re.compile(r"[.!?:…。！？：][\"'”’)）」\]]*$")
_THAI_LETTER = re.compile(r"[\u0e01-\u0e4e]")
_FRAGMENT_CHARS = 12
_CONNECTOR_END = re.compile(r"[,;\-‐–(/&]$")


def _paragraphs(text: str, start: int, end: int) -> list[tuple[int, int]]:
    spans, position = [], start
    for match in _PARAGRAPH_BREAK.finditer(text, start, end):
        spans.append((position, match.start()))
        position = match.end()
    spans.append((position, end))
    return spans


def _lines(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Non-blank lines of text[start:end], trimmed of surrounding whitespace."""
    spans = []
    for match in _LINE.finditer(text, start, end):
        trimmed = trim_span(text, match.start(), match.end())
        if trimmed:
            spans.append(trimmed)
    return spans


def trim_span(text: str, start: int, end: int) -> tuple[int, int] | None:
    """(start, end) without surrounding whitespace, or None if nothing is left."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return (start, end) if start < end else None


# ---------------------------------------------------------------- language runs


@dataclass
class _Block:
    start: int
    end: int
    paragraph: int
    lang: str = "und"
    confident: bool = False
    weight: float = 0.0


def _blocks(text: str) -> list[_Block]:
    """Paragraphs, cut again wherever the dominant script of consecutive lines changes.

    Lines without letters (page numbers, bullets) stay with the block they are in.
    """
    blocks: list[_Block] = []
    for number, (p_start, p_end) in enumerate(_paragraphs(text, 0, len(text))):
        current: _Block | None = None
        current_script: str | None = None
        for l_start, l_end in _lines(text, p_start, p_end):
            script = script_profile(text[l_start:l_end]).dominant
            if current is not None and (script is None or current_script is None or script == current_script):
                current.end = l_end
                current_script = current_script or script
                continue
            current = _Block(l_start, l_end, number)
            current_script = script
            blocks.append(current)
    return blocks


def _nearest_confident(blocks: list[_Block], index: int, step: int, same_paragraph: bool) -> _Block | None:
    i = index + step
    while 0 <= i < len(blocks):
        block = blocks[i]
        if same_paragraph and block.paragraph != blocks[index].paragraph:
            return None
        if block.confident:
            return block
        i += step
    return None


def _latin_group_languages(text: str, blocks: list[_Block], profiles: list) -> dict[int, str]:
    """Languages of long Latin-script blocks, one detection per stretch of consecutive Latin blocks.

    Short Latin blocks (headings) do not break a stretch; they are left to
    the neighbour rules. Returns {block index: language} for the long blocks.
    """
    found: dict[int, str] = {}
    group: list[int] = []

    def close() -> None:
        long_blocks = [i for i in group if profiles[i].latin >= MIN_LATIN_LETTERS]
        if long_blocks:
            language = detect_latin_language([text[blocks[i].start : blocks[i].end] for i in long_blocks])
            if language:
                found.update(dict.fromkeys(long_blocks, language))
        group.clear()

    for i, profile in enumerate(profiles):
        if profile.dominant == "latin":
            group.append(i)
        else:
            close()
    close()
    return found


def language_runs(text: str) -> list[Run]:
    """Language runs of a cleaned document, in order, covering all its non-space text.

    Each block (see `_blocks`) is detected on its own. Blocks too short to judge
    ("Chapter 4", "CRM", "12") take the language of a neighbour: the block
    before them in the same paragraph, else the one after; a paragraph of its
    own takes the next paragraph's (a lone heading belongs to what follows),
    else the previous one's. Adjacent blocks of one language are merged.
    """
    blocks = _blocks(text)
    if not blocks:
        return []
    profiles = [script_profile(text[b.start : b.end]) for b in blocks]
    latin = _latin_group_languages(text, blocks, profiles)
    for i, (block, profile) in enumerate(zip(blocks, profiles, strict=True)):
        if i in latin:
            block.lang, block.confident = latin[i], True
        else:
            block.lang, block.confident = detect_language_confidently(text[block.start : block.end], default="en")
        block.weight = profile.total
    if not any(block.confident for block in blocks):
        language = detect_language(text, default="en")
        return [Run(blocks[0].start, blocks[-1].end, language)]
    # Short confident blocks sandwiched between two blocks of another language.
    smoothed = [block.lang for block in blocks]
    for i, block in enumerate(blocks):
        if block.confident and block.weight < _SANDWICH_WEIGHT:
            before = _nearest_confident(blocks, i, -1, False)
            after = _nearest_confident(blocks, i, 1, False)
            if before and after and before.lang == after.lang != block.lang:
                smoothed[i] = before.lang
    for block, language in zip(blocks, smoothed, strict=True):
        block.lang = language
    for i, block in enumerate(blocks):
        if block.confident:
            continue
        neighbour = (
            _nearest_confident(blocks, i, -1, True)
            or _nearest_confident(blocks, i, 1, True)
            or _nearest_confident(blocks, i, 1, False)
            or _nearest_confident(blocks, i, -1, False)
        )
        block.lang = neighbour.lang  # there is at least one confident block
    runs: list[Run] = []
    for block in blocks:
        if runs and runs[-1].lang == block.lang:
            runs[-1] = Run(runs[-1].start, block.end, block.lang)
        else:
            runs.append(Run(block.start, block.end, block.lang))
    return runs


# ------------------------------------------------------------------- sentences


def _align(piece_texts: list[str], segment: str) -> list[tuple[int, int]]:
    """Offsets in `segment` of pieces a tokenizer returned, trimmed.

    Tokenizers may drop or change whitespace (pythainlp does), so pieces are
    matched by counting non-space characters, not by searching strings. If the
    counts disagree the tokenizer changed the text itself, and the segment is
    kept as one piece rather than guessed at.
    """
    positions = [m.start() for m in _NON_SPACE.finditer(segment)]
    counts = [len(_NON_SPACE.findall(piece)) for piece in piece_texts]
    if sum(counts) != len(positions):
        return [(positions[0], positions[-1] + 1)] if positions else []
    spans, k = [], 0
    for count in counts:
        if count:
            spans.append((positions[k], positions[k + count - 1] + 1))
            k += count
    return spans


def _item_segments(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Lines of text[start:end], each cut again before any bullet inside it."""
    segments = []
    for l_start, l_end in _lines(text, start, end):
        segments.extend(_inline_items(text, l_start, l_end))
    return segments


def _thai_sentences(text: str, start: int, end: int) -> list[tuple[int, int]]:
    from pythainlp.tokenize import sent_tokenize

    spans = []
    for s_start, s_end in _item_segments(text, start, end):
        segment = text[s_start:s_end]
        pieces = _align(sent_tokenize(segment, engine="crfcut"), segment)
        spans.extend((s_start + a, s_start + b) for a, b in _merge_fragments(segment, pieces))
    return spans


def _merge_fragments(segment: str, pieces: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Join crfcut pieces without Thai letters ("• CRM", "14") to the next piece.

    crfcut cuts at spaces, so an English term or a page number before a space
    becomes a "sentence" of its own that means nothing alone.
    """
    merged: list[tuple[int, int]] = []
    pending: int | None = None
    for a, b in pieces:
        if pending is not None:
            a, pending = pending, None
        if b - a <= _FRAGMENT_CHARS and not _THAI_LETTER.search(segment, a, b):
            pending = a
            continue
        merged.append((a, b))
    if pending is not None:
        if merged:
            merged[-1] = (merged[-1][0], pieces[-1][1])
        else:
            merged.append((pending, pieces[-1][1]))
    return merged


# Words that open a clause continuing the sentence before it ("...ในซูเปอร์โบว์ล" / "โดยมีอายุ 39 ปี").
_THAI_CONTINUATIONS = (
    "โดย", "และ", "ซึ่ง", "แต่", "หรือ", "เพื่อ", "เนื่องจาก", "เพราะ", "จึง", "ทำให้", "ขณะที่", "ในขณะที่",
    "รวมถึง", "รวมทั้ง", "พร้อม", "ถึงแม้", "แม้", "จนกระทั่ง", "จนถึง", "อีกทั้ง", "ตลอดจน", "กับ", "ของ", "ที่",
)
# A Thai sentence built of clauses is at least this long (unless its paragraph ends) and at most
# THAI_SENTENCE_MAX; English sentences in XQuAD have a median of 145 characters.
THAI_SENTENCE_MIN = 100
THAI_SENTENCE_MAX = 300


def join_thai_clauses(text: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """crfcut's Thai pieces joined into sentences: a clause joins the one before it when that one is short
    or when it opens with a continuing word, as long as both stay on one line and within THAI_SENTENCE_MAX.

    Thai writers put a space between clauses as well as between sentences, and
    crfcut cuts at spaces: on XQuAD its pieces have a median of 77 characters,
    and the answer to a question is often the clause right after the one that
    repeats the question's words ("...อายุมากที่สุดที่เคยเล่นในซูเปอร์โบว์ล" /
    "โดยมีอายุ 39 ปี"). Joined, the median is 154 characters, close to English
    sentences, and an answer of one or two sentences holds the clause it needs
    (bench/answers.py: Thai hit rate 0.69 -> 0.77 at no threshold). Chunking
    keeps crfcut's pieces; this is for quoting whole sentences.
    """
    joined: list[tuple[int, int]] = []
    for start, end in spans:
        if joined:
            previous_start, previous_end = joined[-1]
            same_line = "\n" not in text[previous_end:start]
            continues = (previous_end - previous_start < THAI_SENTENCE_MIN
                         or text.startswith(_THAI_CONTINUATIONS, start))
            if same_line and continues and end - previous_start <= THAI_SENTENCE_MAX:
                joined[-1] = (previous_start, end)
                continue
        joined.append((start, end))
    return joined


# Chinese sentence ends, closing quotes and brackets kept with the sentence;
# documents keep full-width ！？）, queries and folded text have !?). A Latin
# sentence inside Chinese text ("... the end. 然后") ends at its period.
_CJK_END = re.compile(r"(?:[。!?！？]+|…+|\.{3,}|(?<=[a-z]{2})\.(?=\s))[\"'”’」』)）\]】》〉]*")


def _cjk_sentences(text: str, start: int, end: int) -> list[tuple[int, int]]:
    spans = []
    for s_start, s_end in _item_segments(text, start, end):
        cuts = [
            match.end() for match in _CJK_END.finditer(text, s_start, s_end)
            if not (text[match.start()] in "!?" and _inside_url(text, match.start(), s_end))
        ]
        spans.extend(_split_at(text, s_start, s_end, cuts))
    return spans


def _inside_url(text: str, position: int, limit: int) -> bool:
    """'?' in "index.jsp?pos=1" is not a question mark."""
    before = text[position - 1] if position > 0 else " "
    after = text[position + 1] if position + 1 < limit else " "
    return before.isascii() and before.isalnum() and after.isascii() and (after.isalnum() or after in "=&/")


def _is_list_item(line: str) -> bool:
    return _LIST_MARKER.match(line) is not None


def _looks_like_heading(line: str) -> bool:
    """A short title-case line without closing punctuation: "Human Factor: Leadership"."""
    words = line.split()
    if not words or len(words) > 10 or len(line) > 80:
        return False
    if not (line[0].isupper() or line[0].isdigit()) or _CONNECTOR_END.search(line):
        return False
    significant = [w for w in words if w[0].isalpha() and (len(w) > 3 or w.isupper())]
    if not significant:
        return True
    capitalised = sum(1 for w in significant if w[0].isupper())
    return capitalised * 3 >= len(significant) * 2


def _hard_break(previous: str, line: str, following: str | None) -> bool:
    """Whether the newline between `previous` and `line` ends a sentence.

    PDF text wraps lines mid-sentence. A newline counts only before a list
    item, after closing punctuation or a colon, after a heading, or before a
    heading that itself introduces a list ("...to the" / "Organization
    Environment: Technology" / "• CRM efforts...").
    """
    if _is_list_item(line) or _SENTENCE_END.search(previous):
        return True
    starts_lower = line[0].islower()
    if not starts_lower and _looks_like_heading(previous):
        return True
    return (
        not starts_lower
        and following is not None
        and _looks_like_heading(line)
        and (_is_list_item(following) or _looks_like_heading(following))
        and not _CONNECTOR_END.search(previous)
    )


def _logical_lines(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Join soft-wrapped lines of text[start:end] into the lines the author wrote."""
    spans: list[tuple[int, int]] = []
    for p_start, p_end in _paragraphs(text, start, end):
        lines = _lines(text, p_start, p_end)
        if not lines:
            continue
        current_start, current_end = lines[0]
        for i in range(1, len(lines)):
            previous = text[lines[i - 1][0] : lines[i - 1][1]]
            line = text[lines[i][0] : lines[i][1]]
            following = text[lines[i + 1][0] : lines[i + 1][1]] if i + 1 < len(lines) else None
            if _hard_break(previous, line, following):
                spans.append((current_start, current_end))
                current_start = lines[i][0]
            current_end = lines[i][1]
        spans.append((current_start, current_end))
    return spans


_PYSBD_LANGUAGES = frozenset("am ar bg da de el en es fa fr hi hy it kk mr my nl pl ru sk ur".split())


@lru_cache(maxsize=8)
def _segmenter(lang: str):
    import pysbd

    return pysbd.Segmenter(language=lang if lang in _PYSBD_LANGUAGES else "en", clean=False)


# "organization.A successful", "operates.Introduction", "(Contd.)The", "aligned.1. Top":
# a lowercase word, closing punctuation, then a capitalised word with no space.
_GLUED = re.compile(
    r"(?<![A-Za-z.])([A-Za-z]*[a-z])([.!?]+)([\"'”’“)\]]*)"
    r"(?=[A-Z](?:[a-z]|[A-Z]+\b|[\s,;:'’]|$)|\d{1,2}\.\s+[A-Z])"
)
_TOKEN_REST = re.compile(r"\S*")
_ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof sr jr st vs etc inc ltd co corp no fig vol approx dept est ca cf al eg ie".split()
)


def _in_url_or_email(text: str, start: int, position: int) -> bool:
    """ "john.Smith@example.com" and "www.Example.Com" are not two sentences."""
    token_start = max(text.rfind(" ", start, position), text.rfind("\n", start, position), start - 1) + 1
    token = text[token_start : _TOKEN_REST.match(text, position).end()]
    return "@" in token or "://" in token or token.lower().startswith("www.")


def _split_glued(text: str, start: int, end: int) -> list[tuple[int, int]]:
    spans, cut = [], start
    for match in _GLUED.finditer(text, start, end):
        word, marks = match.group(1), match.group(2)
        if marks == "." and (len(word) < 2 or word.lower() in _ABBREVIATIONS):
            continue
        if _in_url_or_email(text, start, match.start()):
            continue
        spans.append((cut, match.end()))
        cut = match.end()
    spans.append((cut, end))
    return [t for t in (trim_span(text, a, b) for a, b in spans) if t]


def _latin_sentences(text: str, start: int, end: int, lang: str) -> list[tuple[int, int]]:
    segmenter = _segmenter(lang)
    spans = []
    for line_start, line_end in _logical_lines(text, start, end):
        for item_start, item_end in _inline_items(text, line_start, line_end):
            # Glued sentences first: pysbd would take "aligned.1." as one sentence end.
            for s_start, s_end in _split_glued(text, item_start, item_end):
                # Soft wraps become spaces (same length, so offsets still hold).
                segment = text[s_start:s_end].replace("\n", " ")
                # The processor's sentences without pysbd's span pass, which compiles
                # a regex per sentence; `_align` finds the offsets by counting.
                sentences = segmenter.processor(segment).process()
                spans.extend((s_start + a, s_start + b) for a, b in _align(sentences, segment))
    return spans


def _inline_items(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Cut before bullets inside a logical line ("item one • item two")."""
    return _split_at(text, start, end, [m.start() for m in _INLINE_BULLET.finditer(text, start + 1, end)])


def _split_at(text: str, start: int, end: int, cuts: list[int]) -> list[tuple[int, int]]:
    """text[start:end] cut at the given offsets, each piece trimmed, empty pieces dropped."""
    bounds = [start, *cuts, end]
    pieces = (trim_span(text, a, b) for a, b in zip(bounds, bounds[1:], strict=False))
    return [piece for piece in pieces if piece]


# Sentence splitters see at most this many characters at once (see `text_windows`): crfcut keeps
# features for its whole input, and a 9 MB Thai file on one line once took 7.6 GB and 12 minutes.
SENTENCE_WINDOW_CHARS = 5_000
# Where a window may end, best first: a paragraph break, a sentence end, a line break (PDF lines
# wrap mid-sentence), a space (Thai puts one between sentences), clause punctuation. Only the
# second half of a window is searched, so no window is tiny.
_WINDOW_ENDS = (
    re.compile(r"\n\s*\n"), re.compile(r"[.!?。！？…][\"'”’)）」]*\s|[。！？]"), re.compile(r"\n"),
    re.compile(r"\s"), re.compile(r"[,;:、，；：]"),
)


def text_windows(text: str, start: int, end: int, max_chars: int) -> Iterator[tuple[int, int]]:
    """Consecutive spans covering text[start:end], none over `max_chars`, each ending at the best break found.

    A stretch with no break at all (one endless "word") is cut at `max_chars`,
    but never between a letter and the marks on it (Thai vowels and tones).
    """
    while end - start > max_chars:
        limit = start + max_chars
        cut = None
        for pattern in _WINDOW_ENDS:
            cut = _last_match_end(pattern, text, start + max_chars // 2, limit)
            if cut is not None:
                break
        if cut is None:
            cut = limit
            while cut > start + 1 and unicodedata.category(text[cut])[0] == "M":
                cut -= 1
        yield start, cut
        start = cut
    if start < end:
        yield start, end


def _last_match_end(pattern: re.Pattern, text: str, start: int, end: int) -> int | None:
    ends = [match.end() for match in pattern.finditer(text, start, end)]
    return ends[-1] if ends else None


def split_sentences(text: str, lang: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Sentence spans of text[start:end] as absolute offsets into `text`.

    Spans are trimmed, in order, non-overlapping, and together cover every
    non-space character of the range. Thai uses pythainlp's crfcut; Chinese and
    Japanese end at 。!? and ellipses; everything else goes through pysbd after
    PDF soft wraps are joined (see `_hard_break`), then glued sentences
    ("organization.A successful") are cut apart. A long range is split a
    window at a time (`SENTENCE_WINDOW_CHARS`), so memory stays bounded
    whatever the length of a line; a window ends at a break, so it rarely cuts a sentence.
    """
    end = len(text) if end is None else end
    spans: list[tuple[int, int]] = []
    for w_start, w_end in text_windows(text, start, end, SENTENCE_WINDOW_CHARS):
        spans.extend(_split_window(text, lang, w_start, w_end))
    return spans


def _split_window(text: str, lang: str, start: int, end: int) -> list[tuple[int, int]]:
    if lang == "th":
        return _thai_sentences(text, start, end)
    if lang in ("zh", "ja"):
        return _cjk_sentences(text, start, end)
    return _latin_sentences(text, start, end, lang)
