"""Excerpts of a hit with the matched words marked, in Thai, Chinese and Latin text alike.

Highlights come from the analyzer's own term spans, not from searching the
query string in the text: so Traditional 電話 is marked for the query 电话,
"ลูกค้า" is marked inside "ลูกค้าสัมพันธ์" exactly where newmm put the word
boundary, and nothing is marked that the index did not match. Excerpts are cut
only between words (Thai has no spaces to find them by), and whitespace is
collapsed for display with the highlight offsets carried along.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field

from kb.text.analyzer import Analyzer, Term
from kb.text.cleaning import is_folded
from kb.text.sentences import split_sentences, trim_span

ELLIPSIS = "…"
# A sentence that fits is added whole; the rest of the room is filled with part
# of the next sentence only if at least this many characters are left.
_MIN_FILL = 20


@dataclass
class Snippet:
    """An excerpt of a chunk and the spans in it to mark."""

    text: str  # what the user sees, with ELLIPSIS where the chunk was cut
    highlights: list[tuple[int, int]] = field(default_factory=list)  # spans in `text`
    start: int = 0  # the excerpt is chunk_text[start:end] (before whitespace collapsing and ellipses)
    end: int = 0


def make_snippet(
    text: str,
    lang: str,
    query_terms: set[str],
    analyzer: Analyzer,
    max_chars: int = 240,
    sentences: list[tuple[int, int]] | None = None,
) -> Snippet:
    """The best excerpt of `text` for `query_terms` (analyzed terms), at most `max_chars` long.

    The window is the sentence matching the most distinct query terms (the
    earliest of equals), grown by whole neighbouring sentences (see `_grow`),
    then filled with part of the next one. A sentence longer than `max_chars`
    is cut around its densest run of matches. Without any match (a hit found
    by meaning only, perhaps in another language) the excerpt is the
    beginning, and no sentence splitting is paid for.
    """
    whole = trim_span(text, 0, len(text))
    if whole is None:
        return Snippet("", [], 0, 0)
    cuts = _Cuts(text, sentences or [], analyzer, query_terms)
    matches = cuts.matches  # filled as pieces are matched: exact wherever `cuts.match` has been asked
    # Room for the ellipses too, when the text will be cut at all.
    budget = max_chars if whole[1] - whole[0] <= max_chars else max(1, max_chars - 2 * len(ELLIPSIS))
    if sentences is None:
        cuts.match(0, len(text))
    if not cuts.possible or (sentences is None and not matches):
        start, end = whole[0], cuts.before(whole[0] + budget, whole[0])
    else:
        if sentences is None:
            sentences = split_sentences(text, lang)
        sentences = [s for s in (trim_span(text, a, b) for a, b in sentences) if s] or [whole]
        best = _best_sentence(sentences, cuts)
        if best is None:  # no match, or the caller's sentences miss the matches
            start, end = whole[0], cuts.before(whole[0] + budget, whole[0])
        else:
            if sentences[best][1] - sentences[best][0] > budget:
                start, end = _inside_long_sentence(sentences[best], matches, cuts, budget)
            else:
                start, end = _grow(sentences, best, cuts, budget)
                if end - start <= budget - _MIN_FILL and end < whole[1]:
                    end = cuts.before(start + budget, end)
    start, end = trim_span(text, start, min(end, whole[1])) or (start, start)
    cuts.match(start, end)
    return _render(
        text, start, end, whole, [(t.start, t.end) for t in matches if start <= t.start and t.end <= end]
    )


def _inside_long_sentence(
    sentence: tuple[int, int], matches: list[Term], cuts: _Cuts, budget: int
) -> tuple[int, int]:
    """A window of a sentence longer than the budget: its densest matches, a third of the rest before them.

    The window stays inside the sentence unless the sentence ends with room
    to spare, which goes to the start of the next one.
    """
    first, last = sentence
    match_start, match_end = _densest(matches, first, last, budget)
    # A match may be part of a word (a code's part, a sub-word): keep the whole word.
    match_start, match_end = cuts.word_start(match_start), cuts.word_end(match_end)
    room = max(0, budget - (match_end - match_start))
    start = cuts.after(max(first, match_start - room // 3), match_start)
    end = cuts.before(min(last, start + budget), match_end)
    if end >= last:  # the matches sit near the end: spend the rest before them
        start = cuts.after(max(first, end - budget), match_start)
        if start + budget - end >= _MIN_FILL:
            end = cuts.before(start + budget, end)
    return start, end


def _best_sentence(sentences: list[tuple[int, int]], cuts: _Cuts) -> int | None:
    """Index of the sentence with the most distinct matched terms (earliest on ties), None if none match.

    Sentences are matched most promising first (by how many query terms each
    may hold), until none left can beat the best found: most are never segmented.
    """
    bounds = [cuts.bound(a, b) for a, b in sentences]
    best, best_count = None, 0
    for i in sorted((i for i, bound in enumerate(bounds) if bound), key=lambda i: (-bounds[i], i)):
        if bounds[i] < best_count or (bounds[i] == best_count and best is not None and i > best):
            break
        a, b = sentences[i]
        cuts.match(a, b)
        count = len(_distinct(cuts.matches, a, b))
        if count > best_count or (count and count == best_count and best is not None and i < best):
            best, best_count = i, count
    return best


def _distinct(matches: list[Term], a: int, b: int) -> set[str]:
    """Texts of the matches inside [a, b); `matches` are in order of start."""
    i = bisect_left([m.start for m in matches], a)
    found = set()
    while i < len(matches) and matches[i].start < b:
        if matches[i].end <= b:
            found.add(matches[i].text)
        i += 1
    return found


def _densest(matches: list[Term], a: int, b: int, max_chars: int) -> tuple[int, int]:
    """The stretch of [a, b) within max_chars holding the most distinct matches, earliest first."""
    inside = [m for m in matches if a <= m.start and m.end <= b]
    if not inside:
        return a, a
    best, best_count = (inside[0].start, inside[0].end), 0
    for i, first in enumerate(inside):
        texts, last_end = set(), first.end
        for m in inside[i:]:
            if m.end - first.start > max_chars:
                break
            texts.add(m.text)
            last_end = max(last_end, m.end)
        if len(texts) > best_count:
            best, best_count = (first.start, last_end), len(texts)
    return best


def _grow(sentences: list[tuple[int, int]], best: int, cuts: _Cuts, budget: int) -> tuple[int, int]:
    """Sentence `best` plus whole neighbours while they fit.

    The side whose sentence brings more new matches goes first; on a tie the
    sides take turns, starting after the best sentence, so it sits mid-excerpt.
    """
    lo = hi = best
    start, end = sentences[best]
    matches = cuts.matches
    seen = _distinct(matches, start, end)
    turn = 1  # 1: the next sentence wins ties, 0: the previous one
    while True:
        options = []
        if hi + 1 < len(sentences) and sentences[hi + 1][1] - start <= budget:
            cuts.match(*sentences[hi + 1])
            options.append((len(_distinct(matches, *sentences[hi + 1]) - seen), turn == 1, "next"))
        if lo > 0 and end - sentences[lo - 1][0] <= budget:
            cuts.match(*sentences[lo - 1])
            options.append((len(_distinct(matches, *sentences[lo - 1]) - seen), turn == 0, "previous"))
        if not options:
            return start, end
        _, _, side = max(options)
        if side == "next":
            hi, end, turn = hi + 1, sentences[hi + 1][1], 0
        else:
            lo, start, turn = lo - 1, sentences[lo - 1][0], 1
        seen |= _distinct(matches, start, end)


class _Cuts:
    """Where text may be cut (anywhere but strictly inside a word the analyzer found), and the query's matches.

    Segmenting a whole passage, Thai above all, was most of a results page's
    time. The text is analyzed piece by piece (the given sentences and what
    lies between them), each piece only when needed: to find its matches, if it
    may hold a query term at all (`Analyzer.may_hold`, a substring test), or
    where an excerpt is cut inside it.
    """

    def __init__(self, text: str, sentences: list[tuple[int, int]], analyzer: Analyzer, query_terms: set[str]) -> None:
        self.text, self.size, self.analyzer, self.query_terms = text, len(text), analyzer, query_terms
        self.inside = bytearray(self.size + 1)
        self.pieces = _pieces(self.size, sentences)
        self.starts = [a for a, _ in self.pieces]
        self.terms: list[list[Term] | None] = [None] * len(self.pieces)  # a piece's terms, once analyzed
        self.matched = [False] * len(self.pieces)
        self.matches: list[Term] = []  # of the matched pieces, in order of position
        form = analyzer.match_form(text) if query_terms else ""
        aligned = len(form) == self.size and is_folded(text)
        self.bounds = [analyzer.may_hold(text[a:b], query_terms, form[a:b] if aligned else None) for a, b in self.pieces]
        self.possible = any(self.bounds)

    def bound(self, a: int, b: int) -> int:
        """At most how many distinct query terms [a, b) holds."""
        return sum(self.bounds[i] for i in self._overlapping(a, b))

    def match(self, lo: int, hi: int) -> None:
        """Find the matches in the pieces overlapping [lo, hi] that may hold a query term."""
        added = False
        for i in self._overlapping(lo, hi):
            if self.bounds[i] and not self.matched[i]:
                a = self.pieces[i][0]
                self.matches.extend(Term(t.text, a + t.start, a + t.end)
                                    for t in self._analyze(i) if t.text in self.query_terms)
                self.matched[i] = added = True
        if added:
            self.matches.sort(key=lambda t: (t.start, -t.end))

    def _overlapping(self, lo: int, hi: int) -> range:
        first = max(0, bisect_right(self.starts, max(lo, 0)) - 1)
        last = bisect_right(self.starts, hi)
        return range(first, max(first, last))

    def _analyze(self, i: int) -> list[Term]:
        terms = self.terms[i]
        if terms is None:
            a, b = self.pieces[i]
            terms, words = self.analyzer.analyze(self.text[a:b])
            for w in words:
                if w.end - w.start > 1:
                    self.inside[a + w.start + 1 : a + w.end] = b"\x01" * (w.end - w.start - 1)
            self.terms[i] = terms
        return terms

    def _ready(self, lo: int, hi: int) -> None:
        """Analyze the pieces that overlap [lo, hi] and are not analyzed yet."""
        for i in self._overlapping(lo, hi):
            self._analyze(i)

    def before(self, limit: int, floor: int) -> int:
        """The last cut in [floor, limit]; `limit` itself if a single word fills the range."""
        limit = min(limit, self.size)
        self._ready(floor, limit)
        position = limit
        while position > floor and self.inside[position]:
            position -= 1
        return limit if self.inside[position] else position

    def after(self, position: int, ceiling: int) -> int:
        """The first cut in [position, ceiling]; `ceiling` if there is none."""
        self._ready(position, ceiling)
        while position < ceiling and self.inside[position]:
            position += 1
        return position

    def word_start(self, position: int) -> int:
        self._ready(position - 1, position)  # a word never crosses pieces
        while position > 0 and self.inside[position]:
            position -= 1
        return position

    def word_end(self, position: int) -> int:
        self._ready(position - 1, position)
        while position < self.size and self.inside[position]:
            position += 1
        return position


def _pieces(size: int, sentences: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """[0, size) cut into the sentences and the stretches between them, in order (the whole without sentences)."""
    pieces, position = [], 0
    for a, b in sorted(sentences):
        a, b = max(a, position), min(b, size)
        if a > position:
            pieces.append((position, a))
        if b > a:
            pieces.append((a, b))
            position = b
    if position < size or not pieces:
        pieces.append((position, size))
    return pieces


def _render(text: str, start: int, end: int, whole: tuple[int, int], spans: list[tuple[int, int]]) -> Snippet:
    """Collapse whitespace runs to one space, add ellipses, move and merge the highlight spans."""
    prefix = ELLIPSIS if start > whole[0] else ""
    out: list[str] = [prefix] if prefix else []
    length = len(prefix)
    position_of = [0] * (end - start + 1)  # chunk offset -> excerpt offset
    in_space = False
    for i in range(start, end):
        position_of[i - start] = length
        char = text[i]
        if char.isspace():
            if not in_space:
                out.append(" ")
                length += 1
            in_space = True
        else:
            out.append(char)
            length += 1
            in_space = False
    position_of[end - start] = length
    if end < whole[1]:
        out.append(ELLIPSIS)
    merged = merge_spans((position_of[a - start], position_of[b - start]) for a, b in spans)
    return Snippet("".join(out), merged, start, end)


def merge_spans(spans) -> list[tuple[int, int]]:
    """(start, end) spans sorted, with overlapping or touching ones joined: one mark each."""
    merged: list[tuple[int, int]] = []
    for a, b in sorted(spans):
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged
