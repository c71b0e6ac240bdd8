"""Text into index terms: a language-aware analyzer shared by indexing, search and snippets.

It lives apart from the BM25 index (kb.index.keywords) because chunking,
snippets and the indexer need terms without needing an index, and kb.text sits
below kb.index.

Thai has no spaces between words and Chinese none at all, and one chunk often
mixes scripts ("CRM ของ SBU", "客户 CRM 系统"). So text is cut into script runs
and each run goes to its own segmenter: pythainlp's newmm for Thai, jieba for
Han (after OpenCC turns Traditional into Simplified, so 電話 finds 电话), a
regex for everything else. Every term keeps its span in the analyzed text, so
highlights mark exactly the matched characters, and users can add domain words
(product names, people) that the dictionaries lack.
"""

from __future__ import annotations

import hashlib
import math
import re
import unicodedata
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from kb.text.cleaning import fold_quickly, fold_with_offsets, normalize_text

DATA_DIR = Path(__file__).parents[1] / "data"
_RULES = "kw1"  # see ANALYZER_VERSION


# ------------------------------------------------------------------ scripts


def _combining_mark_class() -> str:
    """Character-class ranges of all combining marks outside Thai.

    Python's `\\w` does not match combining marks, so without them "café"
    written with a combining accent, or any Indic word, would fall apart.
    """
    ranges: list[tuple[int, int]] = []
    # Planes 0-1 hold every combining mark but the variation selectors supplement
    # (scanning all of Unicode would cost 0.15 s at import).
    for code in [*range(0x20000), *range(0xE0100, 0xE01F0)]:
        if 0x0E00 <= code <= 0x0E7F or 0xD800 <= code <= 0xDFFF:
            continue
        if unicodedata.category(chr(code)).startswith("M"):
            if ranges and ranges[-1][1] == code - 1:
                ranges[-1] = (ranges[-1][0], code)
            else:
                ranges.append((code, code))
    return "".join(f"\\U{a:08x}-\\U{b:08x}" if a != b else f"\\U{a:08x}" for a, b in ranges)


_THAI = "\u0e00-\u0e7f"
# CJK Unified Ideographs, Extension A, compatibility ideographs, Extensions B-G
# and the compatibility supplement.
_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
_WORD_CHAR = f"(?:[^\\W_{_THAI}{_HAN}]|[{_combining_mark_class()}])"
# Joiners inside a code or compound: FW-7731-B, v2.1, jordan_whitlock, TCP/IP, O'Brien.
_JOINERS = "-._/'’"
_RUN = re.compile(
    f"(?P<thai>[{_THAI}]+)|(?P<han>[{_HAN}]+)|(?P<word>{_WORD_CHAR}+(?:[{_JOINERS}]{_WORD_CHAR}+)*)"
)
_PART = re.compile(f"{_WORD_CHAR}+")
_THAI_WORD = re.compile(f"[{_THAI}]+")
_HAN_WORD = re.compile(f"[{_HAN}]+")
_HAN_CHAR = re.compile(f"[{_HAN}]")
_COMMENT = re.compile(r"(?:^|\s)#.*")
_POSSESSIVE = re.compile(r"['’][sS]$")
# A Thai token must hold a consonant or a digit; "ๆ", "ฯ" and stray marks are dropped.
_THAI_CONTENT = re.compile("[\u0e01-\u0e2e\u0e50-\u0e59]")
# Thai words of at least this many characters also index their parts (see Analyzer._thai):
# XQuAD Thai top-1 0.907 -> 0.923. Shorter words stay whole, or "ลูกค้า" (customer)
# would also match "ลูก" (child) and "ค้า" (trade).
_THAI_SUBWORD_MIN = 7
_THAI_DIGITS = str.maketrans("๐๑๒๓๔๕๖๗๘๙", "0123456789")


@dataclass(frozen=True)
class Term:
    """An indexable term and where it sits in the analyzed text."""

    text: str  # normalized: lower case, Simplified Chinese, Arabic digits
    start: int  # text[start:end] is what to highlight
    end: int


@lru_cache(maxsize=3)
def _stopwords(lang: str) -> frozenset[str]:
    path = DATA_DIR / f"stopwords-{lang}.txt"
    if not path.is_file():
        return frozenset()
    return frozenset(load_user_words(path))


def _analyzer_version() -> str:
    """Our rules, the segmenters' versions (their dictionaries ship with them) and the stopword lists.

    Stored chunk terms are only valid for the same version; bump _RULES when
    this module changes what terms it makes.
    """
    from importlib.metadata import PackageNotFoundError, version

    digest = hashlib.sha256(_RULES.encode())
    for package in ("pythainlp", "jieba", "opencc"):
        try:
            digest.update(f"{package}={version(package)}".encode())
        except PackageNotFoundError:
            digest.update(f"{package}=?".encode())
    for lang in ("en", "th", "zh"):
        digest.update(",".join(sorted(_stopwords(lang))).encode())
    return f"{_RULES}-{digest.hexdigest()[:12]}"


@lru_cache(maxsize=1)
def _all_stopwords() -> frozenset[str]:
    # Scripts never overlap, so one set serves all three segmenters.
    return _stopwords("en") | _stopwords("th") | _stopwords("zh")


def load_user_words(path: Path | None) -> list[str]:
    """Domain words from a file: one a line; '#' at the start or after a space begins a comment.

    So "C#" is a word and "智家宝  # router" is 智家宝. A missing file gives [].
    """
    if path is None:
        return []
    try:
        source = Path(path).read_text(encoding="utf-8")
    except (FileNotFoundError, IsADirectoryError):
        return []
    words = []
    for line in source.splitlines():
        word = _COMMENT.sub("", line).strip()
        if word:
            words.append(word)
    return words


# Identifies how terms are made (rules, segmenter versions, stopwords): terms
# stored with another version must be made again.
ANALYZER_VERSION = _analyzer_version()


def analyzer_version(user_words: list[str]) -> str:
    """Identifies how chunk terms were made: stored terms are only valid for the same version."""
    digest = hashlib.sha256(f"{ANALYZER_VERSION}\n".encode() + "\n".join(sorted(user_words)).encode())
    return digest.hexdigest()[:16]


# ------------------------------------------------------------------ segmenters


@lru_cache(maxsize=1)
def _opencc():
    import opencc

    return opencc.OpenCC("t2s")


def to_simplified(text: str) -> str:
    """Traditional -> Simplified, keeping the length so that offsets still hold.

    OpenCC converts by phrase; if a phrase ever changes the length, the run is
    converted character by character instead (a character that would become
    two is left as it is).
    """
    converted = _opencc().convert(text)
    if len(converted) == len(text):
        return converted
    out = []
    for char in text:
        single = _opencc().convert(char)
        out.append(single if len(single) == 1 else char)
    return "".join(out)


class _HanDictionary:
    """jieba's dictionary, with its exact no-HMM cut done twice as fast.

    `cut` returns what `jieba.Tokenizer.cut(text, HMM=False)` returns for a
    run of Han characters (tested against it): the same prefix graph and the
    same best route, ties included, but with the log probabilities computed
    once here instead of on every edge of every sentence. jieba alone took
    2.1 ms per 1,000 Chinese characters, over our budget.

    No HMM: jieba's HMM guesses words its dictionary lacks, but by context:
    "袁梦" alone is one word, in "袁梦说网速太慢" the guess is "袁梦说", so a
    query for the name would miss the note. Without it a name is single
    characters on both sides (user words keep it whole); XQuAD scores the same.
    """

    def __init__(self, tokenizer) -> None:
        self.freq: dict[str, int] = tokenizer.FREQ
        log_total = math.log(tokenizer.total)
        self.logp = {w: math.log(f) - log_total for w, f in self.freq.items() if f}
        self.unknown = math.log(1) - log_total  # jieba's score of a character it does not know

    def cut(self, text: str) -> list[str]:
        n, freq, logp = len(text), self.freq, self.logp
        score = [0.0] * (n + 1)
        last = [0] * n  # last[i]: index of the last character of the best word starting at i
        for start in range(n - 1, -1, -1):
            best, best_end = self.unknown + score[start + 1], start
            found = False
            i, fragment = start, text[start]
            while fragment in freq:  # every prefix of a word is in freq (with 0 if not a word)
                p = logp.get(fragment)
                if p is not None:
                    candidate = p + score[i + 1]
                    if not found or candidate >= best:  # ties go to the longer word, as in jieba
                        best, best_end, found = candidate, i, True
                i += 1
                if i >= n:
                    break
                fragment = text[start : i + 1]
            score[start], last[start] = best, best_end
        words, i = [], 0
        while i < n:
            words.append(text[i : last[i] + 1])
            i = last[i] + 1
        return words


@lru_cache(maxsize=1)
def _default_jieba():
    import jieba

    jieba.setLogLevel(60)  # no "Building prefix dict" chatter on stderr
    jieba.dt.check_initialized()
    return jieba.dt


@lru_cache(maxsize=2)  # each holds about 50 MB; user words change rarely
def _han_dictionary(words: frozenset[str]) -> _HanDictionary:
    """jieba's dictionary plus `words`, in a tokenizer of its own: the process-wide one stays untouched."""
    import jieba

    base = _default_jieba()
    if not words:
        return _HanDictionary(base)
    tokenizer = jieba.Tokenizer()
    tokenizer.FREQ = dict(base.FREQ)
    tokenizer.total = base.total
    tokenizer.initialized = True
    for word in sorted(words):
        tokenizer.add_word(word)  # with the frequency jieba suggests, so that the word is cut whole
    return _HanDictionary(tokenizer)


@lru_cache(maxsize=2)
def _thai_trie(words: frozenset[str]):
    """newmm's dictionary plus the user's words (about 0.3 s to build, so cached)."""
    from pythainlp.util import dict_trie

    return dict_trie(dict_source=set(_thai_dictionary()) | set(words))


@lru_cache(maxsize=1)
def _thai_dictionary() -> frozenset[str]:
    from pythainlp.corpus.common import thai_words

    return thai_words()


@lru_cache(maxsize=1 << 16)
def _thai_subwords(word: str) -> tuple[tuple[int, int], ...]:
    """Spans of the fewest stock-dictionary words that make up `word`, or () if none do.

    Cuts fall only on Thai character-cluster boundaries, so a sub-word never
    separates a vowel or tone mark from its consonant. Cached: words repeat.
    """
    from pythainlp.tokenize.tcc import tcc_pos

    size, dictionary = len(word), _thai_dictionary()
    cuts = sorted({0, size} | tcc_pos(word))
    best: dict[int, tuple[tuple[int, int], ...]] = {0: ()}
    for j in cuts[1:]:
        for i in cuts:
            if i >= j:
                break
            if i in best and (i, j) != (0, size) and word[i:j] in dictionary:
                found = (*best[i], (i, j))
                if j not in best or len(found) < len(best[j]):
                    best[j] = found
    return best.get(size, ())


def _thai_words(run: str, trie) -> list[str]:
    from pythainlp.tokenize import word_tokenize

    return word_tokenize(run, engine="newmm", custom_dict=trie, keep_whitespace=False, join_broken_num=False)


def warm_up() -> None:
    """Load jieba's dictionary, the Thai dictionary and OpenCC now (about 1 s), not on the first query."""
    _han_dictionary(frozenset())
    _thai_words("ลูกค้า", None)
    _thai_dictionary()
    _opencc()
    _all_stopwords()


# ------------------------------------------------------------------ analyzer

# Internally a token is (text, start, end, is_word): is_word is False for the
# parts of a code and for sub-words, which `Analyzer.words` leaves out.
_Token = tuple[str, int, int, bool]


class Analyzer:
    """Turns text into index terms with spans; documents and queries go through the same one.

    Documents keep their own characters (full-width ，１２３ and all); the
    analyzer folds each text to NFKC itself (`kb.text.cleaning.fold_with_offsets`)
    and maps every span back, so terms match whatever form the text was written
    in while every span still indexes the very string the caller holds.

    No stemming: English stemmers conflate words users keep apart ("news" /
    "new", "series" / "sery"), do nothing for Thai and Chinese, and would show
    users non-words in their segmented query. A light plural rule (Lucene's
    minimal English stemmer) gained 4 of 612 XQuAD questions, not enough.
    """

    def __init__(self, user_words: Iterable[str] = (), stopwords: bool = True) -> None:
        words = {normalize_text(w).strip() for w in user_words}
        self.user_words: tuple[str, ...] = tuple(sorted(w for w in words if w))
        thai = {w for w in self.user_words if _THAI_WORD.fullmatch(w)}
        han = {to_simplified(w) for w in self.user_words if _HAN_WORD.fullmatch(w)}
        # User words in other scripts need nothing: those are cut at spaces and punctuation anyway.
        self._thai_user = frozenset(thai)
        self._trie = _thai_trie(frozenset(thai)) if thai else None
        self._han = _han_dictionary(frozenset(han))
        self._stop = _all_stopwords() if stopwords else frozenset()

    def terms(self, text: str) -> list[Term]:
        """Every indexable term of `text`, with its span, in order of position (a whole before its parts)."""
        stop = self._stop
        return [Term(t, start, end) for t, start, end, _ in self._tokens(text) if t not in stop]

    def term_texts(self, text: str) -> list[str]:
        stop = self._stop
        return [t for t, _, _, _ in self._tokens(text) if t not in stop]

    def words(self, text: str) -> list[Term]:
        """The text as the segmenters cut it: stopwords included, no parts or sub-words.

        This is what to show a user who asks how a query was understood
        (`segmented`), and where a snippet may be cut without splitting a word.
        """
        return [Term(t, start, end) for t, start, end, word in self._tokens(text) if word]

    def analyze(self, text: str) -> tuple[list[Term], list[Term]]:
        """`terms(text)` and `words(text)` from one pass of the segmenters (snippets need both)."""
        tokens, stop = self._tokens(text), self._stop
        return (
            [Term(t, start, end) for t, start, end, _ in tokens if t not in stop],
            [Term(t, start, end) for t, start, end, word in tokens if word],
        )

    def match_form(self, text: str) -> str:
        """`text` folded as its terms are: NFKC, lower case, Thai digits, Simplified Chinese.

        Each character keeps its position when `text` needs no NFKC folding
        and lower case keeps the length, the usual case: then a slice of the
        form is the form of the slice.
        """
        form = fold_quickly(text).lower().replace("\u2019", "'").translate(_THAI_DIGITS)
        return to_simplified(form) if _HAN_CHAR.search(form) else form

    def may_hold(self, text: str, terms: Collection[str], form: str | None = None) -> int:
        """How many of `terms` can be terms of `text`: never fewer than are.

        A substring test on `match_form(text)` (or the `form` given), so a
        caller can skip segmenting text that cannot match; it counts a term
        that is only part of a word too.
        """
        if not terms:
            return 0
        if form is None:
            form = self.match_form(text)
        return sum(term in form for term in terms)

    def segmented(self, text: str) -> list[str]:
        """The words as written, for display: "ลูกค้าสัมพันธ์" -> ["ลูกค้า", "สัมพันธ์"]."""
        return [text[t.start : t.end] for t in self.words(text)]

    def _tokens(self, text: str) -> list[_Token]:
        folded, starts, ends = fold_with_offsets(text)
        tokens = self._folded_tokens(folded)
        if starts is None or ends is None:
            return tokens
        return [(t, starts[a], ends[b - 1], word) for t, a, b, word in tokens]

    def _folded_tokens(self, text: str) -> list[_Token]:
        tokens: list[_Token] = []
        for match in _RUN.finditer(text):
            kind, start = match.lastgroup, match.start()
            if kind == "thai":
                self._thai(match.group(), start, tokens)
            elif kind == "han":
                self._han_run(match.group(), start, tokens)
            else:
                _latin(match.group(), start, tokens)
        tokens.sort(key=_position)
        return tokens

    def _thai(self, run: str, offset: int, out: list[_Token]) -> None:
        """newmm words, tone marks and vowels exactly as written (Thai digits as 0-9), then sub-words.

        A long word also indexes the dictionary words it is made of (see
        `_thai_subwords`), as jieba's search mode does for Chinese, so that
        "แข่งขัน" finds "การแข่งขัน"; a user word such as "ไฟเบอร์เน็ต" is kept
        whole and "เน็ต" still finds it.
        """
        position = 0
        for word in _thai_words(run, self._trie):
            start = run.find(word, position)
            if start < 0:  # newmm never changes the text; if it did, skip what cannot be placed
                continue
            position = start + len(word)
            if not _THAI_CONTENT.search(word):
                continue
            begin = offset + start
            out.append((word.translate(_THAI_DIGITS), begin, begin + len(word), True))
            if len(word) >= _THAI_SUBWORD_MIN or word in self._thai_user:
                out.extend((word[a:b], begin + a, begin + b, False) for a, b in _thai_subwords(word))

    def _han_run(self, run: str, offset: int, out: list[_Token]) -> None:
        """jieba's words of the Simplified run, each followed by its dictionary 2- and 3-grams.

        That is jieba's search mode (`cut_for_search`): "客户" finds
        "客户关系管理" while the whole word adds weight to an exact match.
        """
        logp, position = self._han.logp, offset
        for word in self._han.cut(to_simplified(run)):
            size = len(word)
            out.append((word, position, position + size, True))
            if size > 2:
                for n in (2, 3) if size > 3 else (2,):
                    for i in range(size - n + 1):
                        gram = word[i : i + n]
                        if gram in logp:
                            out.append((gram, position + i, position + i + n, False))
            position += size


def _position(token: _Token) -> tuple[int, int]:
    return token[1], -token[2]


def _latin(run: str, offset: int, out: list[_Token]) -> None:
    """A word, or a code with joiners: the whole lower-cased code, then its parts.

    "customer's" indexes as "customer" (a possessive is the same word, and
    the apostrophe is typed both ways); other apostrophes join like hyphens
    ("o'brien" plus "o" and "brien").
    """
    possessive = _POSSESSIVE.search(run)
    if possessive and possessive.start() > 0:
        run = run[: possessive.start()]
    parts = _PART.findall(run)
    if len(parts) == 1:
        out.append((run.lower(), offset, offset + len(run), True))
        return
    out.append((run.lower().replace("’", "'"), offset, offset + len(run), True))
    for part in _PART.finditer(run):
        out.append((part.group().lower(), offset + part.start(), offset + part.end(), False))
