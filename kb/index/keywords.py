"""The keyword side of hybrid search: a language-aware analyzer and an incremental BM25 index.

Thai has no spaces between words and Chinese none at all, and one chunk often
mixes scripts ("CRM ของ SBU", "客户 CRM 系统"). So text is cut into script runs
and each run goes to its own segmenter: pythainlp's newmm for Thai, jieba for
Han (after OpenCC turns Traditional into Simplified, so 電話 finds 电话), a
regex for everything else. Every term keeps its span in the analyzed text, so
highlights mark exactly the matched characters, and users can add domain words
(product names, people) that the dictionaries lack.

The index is BM25 written here rather than taken from the `bm25s` library,
because bm25s can neither add nor delete documents without rebuilding: here a
compacted sparse matrix (scipy's CSC layout, held as plain numpy arrays so that
compaction is a linear merge rather than a sort) plus a small delta and a live
mask take adds and deletes at any time, and idf and average length always
reflect the live chunks. Keys are chunk ids, the same ids as the FAISS index.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import threading
import unicodedata
import uuid
from array import array
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from filelock import FileLock

from kb.index.vectors import atomic_write
from kb.text.cleaning import normalize_text

DATA_DIR = Path(__file__).parents[1] / "data"
_RULES = "kw1"  # see ANALYZER_VERSION
INDEX_FILE = "keywords.npz"
MANIFEST_FILE = "keywords.json"
FORMAT_VERSION = 1


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

    Texts are expected as `kb.text.cleaning.normalize_text` left them (NFKC, one
    kind of space); the analyzer does not normalize again, so that every span
    indexes the very string the caller holds.

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

    def segmented(self, text: str) -> list[str]:
        """The words as written, for display: "ลูกค้าสัมพันธ์" -> ["ลูกค้า", "สัมพันธ์"]."""
        return [text[t.start : t.end] for t in self.words(text)]

    def _tokens(self, text: str) -> list[_Token]:
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


# ------------------------------------------------------------------ BM25 index

# Compaction folds the delta into the main matrix and drops dead rows. It runs
# when the delta holds more than this share of all rows (and at least
# _MIN_DELTA_ROWS), or dead rows more than _DEAD_SHARE: a 100-chunk add stays
# a few milliseconds, and the occasional compaction is linear in the index size.
_DELTA_SHARE = 0.125
_MIN_DELTA_ROWS = 4096
_DEAD_SHARE = 0.25
_MIN_DEAD_ROWS = 1024


class KeywordIndex:
    """Okapi BM25 over chunk ids, with adds, replacements and deletes at any time.

    Scores are Lucene's: idf = ln(1 + (N - n + 0.5) / (n + 0.5)) and
    tf / (tf + k1 * (1 - b + b * dl / avgdl)) per query term, where N, n and
    avgdl count live chunks only and dl is a chunk's number of terms. Repeated
    query terms count once: a question that says a word twice is not asking
    for it twice. Document frequencies are counted at query time over the live
    rows of each query term's postings, so no statistic can drift after any
    sequence of adds and removes.

    Storage: rows [0, main_rows) are a CSC matrix (rows x terms, term
    frequencies); newer rows are a delta of per-term arrays; removed rows are
    only marked dead until the next compaction.
    """

    def __init__(self, k1: float = 1.2, b: float = 0.75) -> None:
        self.k1, self.b = float(k1), float(b)
        self._lock = threading.RLock()
        self._terms: list[str] = []  # term id -> term
        self._vocab: dict[str, int] = {}  # term -> term id
        self._indptr = np.zeros(1, np.int64)  # main CSC: postings of term t are
        self._indices = np.empty(0, np.int32)  # rows _indices[_indptr[t]:_indptr[t+1]]
        self._tf = np.empty(0, np.float32)  # with these term frequencies
        self._main_rows = 0
        self._delta: dict[int, tuple[array, array]] = {}  # term id -> (rows, tfs) of delta rows
        self._rows = 0
        self._row_ids = np.empty(0, np.int64)  # row -> chunk id (capacity may exceed _rows)
        self._lengths = np.empty(0, np.int32)
        self._live = np.empty(0, bool)
        self._row_of: dict[int, int] = {}  # live chunk id -> row
        self._total_length = 0
        self._norm: np.ndarray | None = None  # cached k1 * (1 - b + b * dl / avgdl)

    def __len__(self) -> int:
        return len(self._row_of)

    def ids(self) -> np.ndarray:
        """Live chunk ids, in the order they were added."""
        with self._lock:
            n = self._rows
            return self._row_ids[:n][self._live[:n]].copy()

    # -------------------------------------------------------------- changes

    def add(self, chunk_ids: Sequence[int], term_lists: Sequence[Sequence[str]]) -> None:
        """Index chunks; an id that is already indexed is replaced."""
        if len(chunk_ids) != len(term_lists):
            raise ValueError(f"add() got {len(chunk_ids)} chunk ids but {len(term_lists)} term lists")
        if len(chunk_ids) == 0:
            return
        with self._lock:
            self._reserve(self._rows + len(chunk_ids))
            vocab, terms, delta = self._vocab, self._terms, self._delta
            for chunk_id, term_list in zip(chunk_ids, term_lists, strict=True):
                chunk_id = int(chunk_id)
                old = self._row_of.get(chunk_id)
                if old is not None:
                    self._kill(old)
                row = self._rows
                self._rows += 1
                for term, count in Counter(term_list).items():
                    term_id = vocab.get(term)
                    if term_id is None:
                        term_id = vocab[term] = len(terms)
                        terms.append(term)
                    postings = delta.get(term_id)
                    if postings is None:
                        postings = delta[term_id] = (array("i"), array("f"))
                    postings[0].append(row)
                    postings[1].append(count)
                self._row_ids[row] = chunk_id
                self._lengths[row] = len(term_list)
                self._live[row] = True
                self._row_of[chunk_id] = row
                self._total_length += len(term_list)
            self._norm = None
            self._maybe_compact()

    def remove(self, chunk_ids: Sequence[int]) -> int:
        """Forget chunks; returns how many were indexed."""
        removed = 0
        with self._lock:
            for chunk_id in chunk_ids:
                row = self._row_of.get(int(chunk_id))
                if row is not None:
                    self._kill(row)
                    removed += 1
            if removed:
                self._norm = None
                self._maybe_compact()
        return removed

    def _kill(self, row: int) -> None:
        self._live[row] = False
        del self._row_of[int(self._row_ids[row])]
        self._total_length -= int(self._lengths[row])

    def _reserve(self, rows: int) -> None:
        capacity = len(self._row_ids)
        if rows <= capacity:
            return
        capacity = max(rows, 2 * capacity, 64)
        for name, dtype in (("_row_ids", np.int64), ("_lengths", np.int32), ("_live", bool)):
            grown = np.zeros(capacity, dtype)
            grown[: self._rows] = getattr(self, name)[: self._rows]
            setattr(self, name, grown)

    def _maybe_compact(self) -> None:
        delta_rows = self._rows - self._main_rows
        dead_rows = self._rows - len(self._row_of)
        if (delta_rows > _MIN_DELTA_ROWS and delta_rows > _DELTA_SHARE * self._rows) or (
            dead_rows > _MIN_DEAD_ROWS and dead_rows > _DEAD_SHARE * self._rows
        ):
            self.compact()

    def compact(self) -> None:
        """Fold the delta into the main matrix, drop dead rows and terms no live row has.

        Linear in the number of postings (numpy scatters, no sort): main
        entries keep their order within each term and delta rows, which are
        all newer, go after them, so every term's rows stay ascending.
        """
        with self._lock:
            n, main_rows = self._rows, self._main_rows
            has_dead = len(self._row_of) < n
            if main_rows == n and not has_dead:
                return
            live = self._live[:n]
            main_has_dead = not live[:main_rows].all()
            new_row = (np.cumsum(live) - 1).astype(np.int32) if has_dead else None
            # Main postings of live rows, and how many each term keeps.
            indptr, indices, tf = self._indptr, self._indices, self._tf
            if main_has_dead:
                keep = live[indices]
                kept_before = np.concatenate([[0], np.cumsum(keep, dtype=np.int64)])
                main_counts = kept_before[indptr[1:]] - kept_before[indptr[:-1]]
                indices, tf = new_row[indices[keep]], tf[keep]
            else:  # dead rows, if any, are all in the delta: main rows keep their numbers
                main_counts = np.diff(indptr)
            # Delta postings, grouped by term as stored (each term's rows ascending).
            groups = list(self._delta.items())
            d_rows = np.concatenate([np.empty(0, np.int32), *(np.array(p[0], np.int32) for _, p in groups)])
            d_tf = np.concatenate([np.empty(0, np.float32), *(np.array(p[1], np.float32) for _, p in groups)])
            d_cols = np.repeat(
                np.fromiter((t for t, _ in groups), np.int64, len(groups)),
                np.fromiter((len(p[0]) for _, p in groups), np.int64, len(groups)),
            )
            if has_dead:
                d_keep = live[d_rows]
                d_rows, d_tf, d_cols = new_row[d_rows[d_keep]], d_tf[d_keep], d_cols[d_keep]
            n_terms = len(self._terms)
            main_counts = np.concatenate([main_counts, np.zeros(n_terms - len(main_counts), np.int64)])
            delta_counts = np.bincount(d_cols, minlength=n_terms)
            counts = main_counts + delta_counts
            starts = np.concatenate([[0], np.cumsum(counts)])  # term t's postings begin at starts[t]
            # Main entries shift by the delta entries of earlier terms; a term's delta entries follow its own.
            main_starts = np.concatenate([[0], np.cumsum(main_counts)])
            pos_main = np.arange(len(indices)) + np.repeat(starts[:-1] - main_starts[:-1], main_counts)
            first = np.zeros(len(d_cols), np.int64)  # index of the first entry of each entry's term
            boundaries = np.flatnonzero(np.diff(d_cols)) + 1
            first[boundaries] = boundaries
            rank = np.arange(len(d_cols)) - np.maximum.accumulate(first) if len(d_cols) else first
            pos_delta = starts[d_cols] + main_counts[d_cols] + rank
            total = int(starts[-1])
            new_indices, new_tf = np.empty(total, np.int32), np.empty(total, np.float32)
            new_indices[pos_main], new_tf[pos_main] = indices, tf
            new_indices[pos_delta], new_tf[pos_delta] = d_rows, d_tf
            used = counts > 0
            if used.all():
                self._indptr = starts
            else:  # empty columns hold no entries, so dropping them moves nothing
                self._indptr = np.concatenate([[0], starts[1:][used]])
                self._terms = [t for t, u in zip(self._terms, used.tolist(), strict=True) if u]
                self._vocab = {t: i for i, t in enumerate(self._terms)}
            self._indices, self._tf = new_indices, new_tf
            self._delta = {}
            if has_dead:
                self._row_ids = self._row_ids[:n][live]
                self._lengths = self._lengths[:n][live]
                self._live = np.ones(len(self._row_ids), bool)
                self._row_of = dict(zip(self._row_ids.tolist(), range(len(self._row_ids)), strict=True))
            self._rows = self._main_rows = len(self._row_of)
            self._norm = None

    # -------------------------------------------------------------- scoring

    def _postings(self, term_id: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows and term frequencies of one term, main and delta together."""
        parts_rows, parts_tf = [], []
        if term_id < len(self._indptr) - 1:
            a, b = self._indptr[term_id], self._indptr[term_id + 1]
            parts_rows.append(self._indices[a:b])
            parts_tf.append(self._tf[a:b])
        postings = self._delta.get(term_id)
        if postings is not None:
            # Copies: an array.array cannot grow while numpy views of it exist.
            parts_rows.append(np.array(postings[0], np.int32))
            parts_tf.append(np.array(postings[1], np.float32))
        if len(parts_rows) == 1:
            return parts_rows[0], parts_tf[0]
        return np.concatenate(parts_rows), np.concatenate(parts_tf)

    def idf(self, terms: Sequence[str]) -> dict[str, float]:
        """BM25 inverse document frequency of each term among the live chunks.

        A term no chunk holds gets the highest weight there is: it is the
        rarest of all, and a question that needs it is not answered by text
        without it.
        """
        with self._lock:
            live_count, live = len(self._row_of), self._live[: self._rows]
            weights = {}
            for term in dict.fromkeys(terms):
                term_id = self._vocab.get(term)
                df = int(np.count_nonzero(live[self._postings(term_id)[0]])) if term_id is not None else 0
                weights[term] = math.log1p((live_count - df + 0.5) / (df + 0.5))
            return weights

    def _scores(self, query_terms: Sequence[str]) -> np.ndarray:
        """BM25 score of every row (0 for dead rows and rows without a query term)."""
        n_rows, live_count = self._rows, len(self._row_of)
        scores = np.zeros(n_rows, np.float64)
        if live_count == 0:
            return scores
        if self._norm is None:
            avgdl = self._total_length / live_count if self._total_length else 1.0
            self._norm = self.k1 * (1.0 - self.b + self.b * self._lengths[:n_rows] / avgdl)
        norm, live = self._norm, self._live[:n_rows]
        for term in dict.fromkeys(query_terms):
            term_id = self._vocab.get(term)
            if term_id is None:
                continue
            rows, tf = self._postings(term_id)
            alive = live[rows]
            df = int(np.count_nonzero(alive))
            if df == 0:
                continue
            if df < len(rows):
                rows, tf = rows[alive], tf[alive]
            idf = math.log1p((live_count - df + 0.5) / (df + 0.5))
            tf = tf.astype(np.float64)
            scores[rows] += idf * tf / (tf + norm[rows])
        return scores

    def _rows_of(self, chunk_ids: np.ndarray) -> np.ndarray:
        """Rows of the given chunk ids, -1 where an id is not indexed."""
        get = self._row_of.get
        return np.fromiter(
            (get(int(i), -1) for i in np.asarray(chunk_ids).ravel()), np.int64, np.size(chunk_ids)
        )

    def search(
        self, query_terms: Sequence[str], k: int, allowed_ids: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Best `k` chunk ids and their scores (all > 0), best first, ties by id.

        `allowed_ids` restricts the scoring itself, so a filter never empties a
        page that has matches further down.
        """
        empty = np.empty(0, np.int64), np.empty(0, np.float32)
        if k <= 0 or len(query_terms) == 0:
            return empty
        with self._lock:
            scores = self._scores(query_terms)
            if allowed_ids is not None:
                rows = np.unique(self._rows_of(allowed_ids))
                rows = rows[rows >= 0]
                candidates = rows[scores[rows] > 0]
            else:
                candidates = np.flatnonzero(scores > 0)
            if len(candidates) == 0:
                return empty
            candidate_scores = scores[candidates]
            if len(candidates) > k:
                # Everything tied with the k-th best stays in, so ties break by id, not by chance.
                kth = np.partition(candidate_scores, len(candidates) - k)[len(candidates) - k]
                keep = candidate_scores >= kth
                candidates, candidate_scores = candidates[keep], candidate_scores[keep]
            ids = self._row_ids[candidates]
            order = np.lexsort((ids, -candidate_scores))[:k]
            return ids[order].copy(), candidate_scores[order].astype(np.float32)

    def score_ids(self, query_terms: Sequence[str], chunk_ids: np.ndarray) -> np.ndarray:
        """BM25 scores of the given chunks, in their order (0 where no term matches or the id is unknown)."""
        with self._lock:
            rows = self._rows_of(chunk_ids)
            result = np.zeros(len(rows), np.float32)
            known = rows >= 0
            if len(query_terms) and known.any():
                result[known] = self._scores(query_terms)[rows[known]]
            return result

    # -------------------------------------------------------------- persistence

    def save(self, directory: Path, manifest: dict) -> None:
        """Write the compacted index and the manifest, each via a temporary file and rename.

        The two files carry the same random token, so a crash between the two
        renames is detected by `load` rather than pairing a new matrix with an
        old manifest.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        token = uuid.uuid4().hex
        with self._lock:
            self.compact()
            arrays = {
                "indptr": self._indptr,
                "indices": self._indices,
                "tf": self._tf,
                "row_ids": self._row_ids[: self._rows],
                "lengths": self._lengths[: self._rows],
                "terms": np.frombuffer(json.dumps(self._terms, ensure_ascii=False).encode(), np.uint8),
                "token": np.frombuffer(token.encode(), np.uint8),
            }
            meta = {
                "format": FORMAT_VERSION,
                "k1": self.k1,
                "b": self.b,
                "count": len(self),
                "terms": len(self._terms),
                "token": token,
                "manifest": manifest,
            }
            encoded = json.dumps(meta, ensure_ascii=False, indent=2).encode()
            with FileLock(str(directory / ".keywords.lock")):
                atomic_write(directory / INDEX_FILE, lambda fh: np.savez(fh, **arrays))
                atomic_write(directory / MANIFEST_FILE, lambda fh: fh.write(encoded))

    @classmethod
    def load(cls, directory: Path) -> tuple[KeywordIndex, dict] | None:
        """The saved index and the manifest given to `save`, or None if missing, corrupt or unreadable."""
        directory = Path(directory)
        index_path, manifest_path = directory / INDEX_FILE, directory / MANIFEST_FILE
        if not index_path.is_file() or not manifest_path.is_file():
            return None
        try:
            with FileLock(str(directory / ".keywords.lock")):
                meta = json.loads(manifest_path.read_text(encoding="utf-8"))
                with np.load(index_path, allow_pickle=False) as saved:
                    arrays = {name: saved[name] for name in saved.files}
            return cls._from_saved(meta, arrays)
        except Exception:  # noqa: BLE001 - any unreadable file means "rebuild", never a crash
            return None

    @classmethod
    def _from_saved(cls, meta: dict, arrays: dict[str, np.ndarray]) -> tuple[KeywordIndex, dict] | None:
        if meta.get("format") != FORMAT_VERSION or bytes(arrays["token"]).decode() != meta["token"]:
            return None
        terms = json.loads(bytes(arrays["terms"]).decode())
        indptr, indices, tf = arrays["indptr"], arrays["indices"], arrays["tf"]
        row_ids, lengths = arrays["row_ids"], arrays["lengths"]
        n_rows = len(row_ids)
        valid = (
            isinstance(terms, list)
            and all(isinstance(t, str) for t in terms)
            and len(set(terms)) == len(terms) == len(indptr) - 1 == meta["terms"]
            and n_rows == len(lengths) == meta["count"] == len(np.unique(row_ids))
            and indptr.dtype == np.int64
            and indices.dtype == np.int32
            and tf.dtype == np.float32
            and row_ids.dtype == np.int64
            and lengths.dtype == np.int32
            and indptr[0] == 0
            and indptr[-1] == len(indices) == len(tf)
            and bool(np.all(np.diff(indptr) >= 0))
            and (len(indices) == 0 or (int(indices.min()) >= 0 and int(indices.max()) < n_rows))
            and bool(np.all(lengths >= 0))
        )
        if not valid:
            return None
        index = cls(k1=float(meta["k1"]), b=float(meta["b"]))
        index._terms = terms
        index._vocab = {t: i for i, t in enumerate(terms)}
        index._indptr, index._indices, index._tf = indptr, indices, tf
        index._row_ids, index._lengths = row_ids, lengths
        index._rows = index._main_rows = n_rows
        index._live = np.ones(n_rows, bool)
        index._row_of = dict(zip(row_ids.tolist(), range(n_rows), strict=True))
        index._total_length = int(lengths.sum())
        return index, meta["manifest"]

