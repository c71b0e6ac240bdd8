"""Normalise text and strip the boilerplate that readers drag in with it.

Documents arrive from PDFs, web pages and download sites: byte-order marks,
zero-width characters, odd spaces, site disclaimers, breadcrumbs, comment-widget
footers and paragraphs repeated by the page template. Left in, they become
chunks that match every query. Everything here is conservative: a rule removes
a whole line only when the line is nothing but boilerplate, and repeated text is
dropped only when it is clearly a copy (see `collapse_repeats`).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

DEFAULT_BOILERPLATE_FILE = Path(__file__).parents[1] / "data" / "boilerplate.txt"

# Characters that carry no text: removed *before* NFKC so that a mark hidden
# behind a zero-width space still composes (keeps normalize_text idempotent).
_INVISIBLE = (
    "\u00ad"  # soft hyphen
    "\u200b\u200c\u200d"  # zero-width space / non-joiner / joiner
    "\u2060\ufeff"  # word joiner, byte-order mark
    "\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"  # bidi controls
)
_SPACES = (
    "\t\v\f\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u202f\u205f\u3000"
)
_TRANSLATE = {ord(c): None for c in _INVISIBLE}
_TRANSLATE.update({ord(c): " " for c in _SPACES})
_TRANSLATE.update({ord(c): "\n" for c in "\u0085\u2028\u2029"})
# Remaining C0/C1 controls (not newline) carry nothing readable.
_TRANSLATE.update(
    {c: None for c in [*range(0x00, 0x09), *range(0x0E, 0x20), 0x7F, *range(0x80, 0x85), *range(0x86, 0xA0)]}
)

_TRAILING_SPACES = re.compile(r"[ ]+(?=\n|\Z)")
_MANY_NEWLINES = re.compile(r"\n{3,}")
_SPACE_RUN = re.compile(r" {2,}")
_PARAGRAPH_BREAK = re.compile(r"\n[ ]*\n")
_WHITESPACE = re.compile(r"\s+")
_CUT = "\x00"  # marks removed phrases; normalize_text guarantees the text has none
# Private-use characters readers put before a heading line (one per level, see
# `kb.text.structure`); kept through cleaning, taken out before chunking.
STRUCTURE_MARKS = "".join(chr(0xE000 + level) for level in range(1, 7))
_LIST_ITEM = re.compile(r"(?:[-*•]|\d{1,3}[.)])\s")
_WIDE = re.compile(r"[\u1100-\u11ff\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef]")


def normalize_text(text: str) -> str:
    """NFKC, invisible characters out, one kind of space and newline: the form queries are matched in.

    Runs on every query, so it is a few C-level passes and idempotent:
    normalize_text(normalize_text(x)) == normalize_text(x). Documents are kept
    as `tidy_text` leaves them (their own characters) and folded to this form
    only for indexing and matching (`fold_with_offsets`).
    """
    if not text:
        return ""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = text.translate(_TRANSLATE)
    if not text.isascii() and not unicodedata.is_normalized("NFKC", text):
        # NFKC can itself produce odd spaces (e.g. from compatibility forms).
        text = unicodedata.normalize("NFKC", text).translate(_TRANSLATE)
    return _tidy_lines(_recompose_thai(text))


def tidy_text(text: str) -> str:
    """What a document is shown and stored as: invisible characters out, one kind of space and newline.

    Unlike `normalize_text` it keeps every visible character as the author
    wrote it: Chinese full-width punctuation (，：（）？), full-width digits and
    ligatures stay, so passages, answers and exports quote the original.
    """
    if not text:
        return ""
    text = text.replace("\r\n", "\n").replace("\r", "\n").translate(_TRANSLATE)
    return _tidy_lines(_recompose_thai(text))


def _recompose_thai(text: str) -> str:
    # NFKC splits Thai SARA AM (and its Lao twin) into NIKHAHIT + SARA AA,
    # which no Thai dictionary uses: "กำลัง" would segment as "กํา|ลัง".
    # Recompose; decomposed input from PDFs is unified the same way.
    if "\u0e4d\u0e32" in text or "\u0ecd\u0eb2" in text:
        text = text.replace("\u0e4d\u0e32", "\u0e33").replace("\u0ecd\u0eb2", "\u0eb3")
    return text


def _tidy_lines(text: str) -> str:
    text = _TRAILING_SPACES.sub("", text)
    return _MANY_NEWLINES.sub("\n\n", text)


def _joins_previous(char: str) -> bool:
    """A combining mark (outside Thai, whose marks NFKC leaves alone) composes with the character before it."""
    return unicodedata.combining(char) != 0 and not "\u0e00" <= char <= "\u0e7f"


def _fold_whole(text: str) -> str:
    """The folding itself: NFKC, our translations, Thai vowels recomposed."""
    return _recompose_thai(unicodedata.normalize("NFKC", text).translate(_TRANSLATE))


@lru_cache(maxsize=8192)
def _fold_piece(piece: str) -> str:
    return _fold_whole(piece)


def is_folded(text: str) -> bool:
    """Whether folding would leave `text` as it is (C-level checks only).

    SARA AM is swapped for SARA AA for the check: NFKC splits it and
    `_recompose_thai` joins it again, so for folding it is stable.
    """
    if text.isascii():
        return text.translate(_TRANSLATE) == text
    probe = text.replace("\u0e33", "\u0e32").replace("\u0eb3", "\u0eb2")
    return unicodedata.is_normalized("NFKC", probe) and text.translate(_TRANSLATE) == text


def fold_with_offsets(text: str) -> tuple[str, list[int] | None, list[int] | None]:
    """`text` in the form it is indexed and matched in (NFKC, as `normalize_text`), with a way back.

    Returns (folded, starts, ends): character k of `folded` came from
    text[starts[k]:ends[k]], so a span [a, b) found in the folded text is
    text[starts[a]:ends[b - 1]] in the original. Both lists are None when the
    text is already folded (most text: English, Thai, Chinese without
    full-width forms), which costs only C-level checks. A base character and
    the combining marks after it are folded together, so "e" + U+0301 folds to
    "é" as NFKC would.
    """
    if not text or is_folded(text):
        return text, None, None
    pieces: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    size, i = len(text), 0
    while i < size:
        j = i + 1
        while j < size and _joins_previous(text[j]):
            j += 1
        piece = text[i:j]
        plain = len(piece) == 1 and (" " <= piece <= "~" or piece == "\n")
        folded = piece if plain else _fold_piece(piece)
        if folded:
            pieces.append(folded)
            starts.extend([i] * len(folded))
            ends.extend([j] * len(folded))
        i = j
    return "".join(pieces), starts, ends


def fold(text: str) -> str:
    """`text` as indexes and the model see it (see `fold_with_offsets`)."""
    return fold_with_offsets(text)[0]


def fold_quickly(text: str) -> str:
    """`fold(text)` without the way back, normalised in C over the whole text (for substring tests, where
    `fold_with_offsets`'s loop over a text that needs folding costs more than the test)."""
    return text if is_folded(text) else _fold_whole(text)


@dataclass
class BoilerplateRules:
    """Regexes that mark boilerplate.

    `line_patterns` must match a whole (stripped) line; `phrase_patterns` are
    cut out wherever they occur, for boilerplate glued to real text.
    """

    line_patterns: list[re.Pattern] = field(default_factory=list)
    phrase_patterns: list[re.Pattern] = field(default_factory=list)

    def __add__(self, other: BoilerplateRules) -> BoilerplateRules:
        return BoilerplateRules(
            self.line_patterns + other.line_patterns, self.phrase_patterns + other.phrase_patterns
        )


def parse_boilerplate_rules(source: str, name: str = "<rules>") -> BoilerplateRules:
    """Parse the `line: <regex>` / `phrase: <regex>` format (see kb/data/boilerplate.txt)."""
    rules = BoilerplateRules()
    for number, raw in enumerate(source.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        kind, sep, pattern = line.partition(":")
        kind, pattern = kind.strip().lower(), pattern.strip()
        if not sep or kind not in ("line", "phrase") or not pattern:
            raise ValueError(f"{name}:{number}: expected 'line: <regex>' or 'phrase: <regex>', got {raw!r}")
        try:
            compiled = re.compile(pattern, re.IGNORECASE | re.MULTILINE)
        except re.error as exc:
            raise ValueError(f"{name}:{number}: invalid regular expression {pattern!r}: {exc}") from exc
        (rules.line_patterns if kind == "line" else rules.phrase_patterns).append(compiled)
    return rules


@lru_cache(maxsize=1)
def _default_rules() -> BoilerplateRules:
    return parse_boilerplate_rules(
        DEFAULT_BOILERPLATE_FILE.read_text(encoding="utf-8"), str(DEFAULT_BOILERPLATE_FILE)
    )


def load_boilerplate_rules(extra_file: Path | None = None) -> BoilerplateRules:
    """The bundled rules, plus those in `extra_file` (the KB_BOILERPLATE_FILE setting)."""
    rules = _default_rules()
    if extra_file is None:
        return rules
    path = Path(extra_file)
    if not path.is_file():
        raise FileNotFoundError(f"boilerplate rules file {path} does not exist (check KB_BOILERPLATE_FILE)")
    return rules + parse_boilerplate_rules(path.read_text(encoding="utf-8"), str(path))


@lru_cache(maxsize=32)
def _combined(patterns: tuple[re.Pattern, ...]) -> re.Pattern | None:
    """One alternation instead of N patterns: one regex call per line, not N."""
    if not patterns:
        return None
    try:
        return re.compile("|".join(f"(?:{p.pattern})" for p in patterns), re.IGNORECASE | re.MULTILINE)
    except re.error:  # e.g. a pattern with its own global inline flags
        return None


def _line_matcher(patterns: list[re.Pattern]):
    combined = _combined(tuple(patterns))
    if combined is not None:
        return lambda s: combined.fullmatch(s) is not None
    return lambda s: any(p.fullmatch(s) for p in patterns)


def _phrase_remover(patterns: list[re.Pattern]):
    combined = _combined(tuple(patterns))
    if combined is not None:
        return lambda s: combined.sub(_CUT, s)

    def remove_each(s: str) -> str:
        for p in patterns:
            s = p.sub(_CUT, s)
        return s

    return remove_each


def _cut_phrases(text: str, patterns: list[re.Pattern]) -> str:
    """Phrases are matched in the folded text (rules are written for NFKC forms) and cut from the original."""
    folded, starts, ends = fold_with_offsets(text)
    if starts is None or ends is None:
        return _phrase_remover(patterns)(text)
    combined = _combined(tuple(patterns))
    spans = [(m.start(), m.end()) for p in ([combined] if combined else patterns) for m in p.finditer(folded)]
    pieces, position = [], 0
    for a, b in sorted(span for span in spans if span[1] > span[0]):
        start, end = starts[a], ends[b - 1]
        if start < position:  # overlaps a phrase already cut
            start = position
            if end <= start:
                continue
        pieces += [text[position:start], _CUT]
        position = end
    pieces.append(text[position:])
    return "".join(pieces)


def remove_boilerplate(text: str, rules: BoilerplateRules) -> str:
    """Cut boilerplate phrases, then drop boilerplate lines; tidy spaces on each line.

    Phrases go first (they may take a line break with them, as the home link
    before a breadcrumb does), then each remaining line is tested whole. A line
    that only held boilerplate disappears with its newline, so removing it never
    creates a paragraph break that the document did not have.
    """
    if rules.phrase_patterns:
        text = _cut_phrases(text, rules.phrase_patterns)
    is_boilerplate = _line_matcher(rules.line_patterns)
    kept: list[str] = []
    for line in text.split("\n"):
        had_phrase = _CUT in line
        if had_phrase:
            line = line.replace(_CUT, "")
        stripped = _SPACE_RUN.sub(" ", line.strip())
        if not stripped:
            if not had_phrase:
                kept.append("")
            continue
        if not is_boilerplate(fold(stripped).lstrip(STRUCTURE_MARKS)):
            # A nested list item keeps its indent: it says which item it belongs to.
            indent = line[: len(line) - len(line.lstrip(" "))] if _LIST_ITEM.match(stripped) else ""
            kept.append(indent + stripped)
    return "\n".join(kept)


def _weighted_length(key: str) -> int:
    """Length with CJK characters counted twice: 14 Han characters say as much as 28 letters."""
    return len(key) + len(_WIDE.findall(key))


def collapse_repeats(text: str, min_chars: int = 20, always_chars: int = 80) -> str:
    """Drop paragraphs that repeat an earlier one (whitespace-insensitive); keep the first.

    Templates repeat whole blocks ("this is part two of two..."), but documents
    also legitimately repeat short lines, e.g. "(accessed 19 October 2005)"
    under several references. So a repeat of at least `always_chars` (weighted,
    see `_weighted_length`) is always dropped, while a shorter one (at least
    `min_chars`) is dropped only as part of a repeated block: next to another
    repeat whose first occurrence was next to its own first occurrence.
    """
    paragraphs = _PARAGRAPH_BREAK.split(text)
    keys = [_WHITESPACE.sub(" ", p).strip() for p in paragraphs]
    first: dict[str, int] = {}
    origin: list[int | None] = []  # index of the earlier copy, for repeats
    for i, key in enumerate(keys):
        if key in first and _weighted_length(key) >= min_chars:
            origin.append(first[key])
        else:
            origin.append(None)
            first.setdefault(key, i)

    def in_block(i: int) -> bool:
        before = i > 0 and origin[i - 1] is not None and origin[i - 1] == origin[i] - 1
        after = i + 1 < len(origin) and origin[i + 1] is not None and origin[i + 1] == origin[i] + 1
        return before or after

    kept = [
        paragraph
        for i, paragraph in enumerate(paragraphs)
        if origin[i] is None or not (_weighted_length(keys[i]) >= always_chars or in_block(i))
    ]
    return "\n\n".join(kept)


def clean_text(text: str, rules: BoilerplateRules | None = None) -> str:
    """tidy_text + boilerplate removal + repeat collapse, whitespace tidied; the author's characters kept."""
    text = tidy_text(text)
    text = remove_boilerplate(text, rules if rules is not None else load_boilerplate_rules())
    text = collapse_repeats(_MANY_NEWLINES.sub("\n\n", text))
    return _MANY_NEWLINES.sub("\n\n", text).strip()
