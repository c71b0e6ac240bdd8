"""Cut a cleaned document into chunks the embedder can take whole.

A chunk is a run of whole sentences of one language, at most `max_tokens`
model tokens, so nothing the embedder sees is truncated and every hit can be
cited as an exact span of the document. Consecutive chunks of a run share
their boundary sentence(s), so a fact split across two chunks is still whole
in one of them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

from kb.text.analyzer import warm_up as warm_up_keywords
from kb.text.sentences import language_runs, split_sentences, text_windows, trim_span

CountTokens = Callable[[list[str]], list[int]]

# Pieces of an over-long sentence are sized by estimate (its token count shared
# out by characters), so they aim a little under the limit.
_PIECE_TARGET = 0.9
_MAX_REPACKS = 4
_NON_SPACE = re.compile(r"\S")
_LATIN_WORD = re.compile(r"\S+")
_HAN_OR_WORD = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]|[^\s\u3400-\u9fff\uf900-\ufaff]+")
# Where an over-long sentence is best cut: after clause punctuation.
_CLAUSE_END = frozenset(",;:、，；：)）]】」』")
# A text longer than this is chunked a window at a time (see `iter_chunks`), so a huge file costs
# memory for one window, not for all of it, and a file past the chunk limit stops early. Every
# document of the bundled corpus is shorter, so none is chunked differently for it.
CHUNK_WINDOW_CHARS = 100_000


@dataclass(frozen=True)
class ChunkSpec:
    """`text[start:end]` is the chunk; `token_count` is what the embedder will see.

    `sentences` are the spans (in the document's text) of the sentences, or
    pieces of over-long sentences, the chunk is made of: found once here, so a
    search result's snippet need not segment the chunk again.
    """

    start: int
    end: int
    lang: str
    token_count: int
    sentences: tuple[tuple[int, int], ...] = ()

    def relative_sentences(self) -> list[tuple[int, int]]:
        """The sentence spans as offsets into the chunk's own text."""
        return [(s - self.start, e - self.start) for s, e in self.sentences]


@dataclass
class _Unit:
    """A sentence, or a piece of a sentence too long for one chunk."""

    start: int
    end: int
    tokens: int  # estimated tokens without the fixed overhead


def _word_bounds(text: str, start: int, end: int, lang: str) -> list[int]:
    """Offsets inside text[start:end] where a long sentence may be cut, in order."""
    if lang == "th":
        from pythainlp.tokenize import word_tokenize

        bounds, position = [], start
        for word in word_tokenize(text[start:end], engine="newmm", keep_whitespace=True):
            position += len(word)
            bounds.append(position)
        if position != end:  # newmm changed the text: fall back to characters
            return list(range(start + 1, end + 1))
        return bounds
    pattern = _HAN_OR_WORD if lang in ("zh", "ja") else _LATIN_WORD
    return [m.end() for m in pattern.finditer(text, start, end)] or [end]


def _split_long(text: str, unit: _Unit, lang: str, budget: int) -> list[_Unit]:
    """Cut one over-long sentence at word boundaries into pieces of about `budget` tokens.

    A piece's tokens are estimated as the sentence's tokens shared out by
    non-space characters (the final count checks the estimate). Within the
    last half of a piece, a cut after clause punctuation (or, in Thai, at a
    space, which is where Thai puts its commas) is preferred to any word end.
    """
    start, end = unit.start, unit.end
    prefix = [0]  # non-space characters in text[start:start+i]
    for char in text[start:end]:
        prefix.append(prefix[-1] + (not char.isspace()))
    per_char = unit.tokens / max(prefix[-1], 1)
    limit = max(1, int(budget * _PIECE_TARGET / per_char))  # non-space characters per piece
    bounds = _word_bounds(text, start, end, lang)

    def chars(a: int, b: int) -> int:
        return prefix[b - start] - prefix[a - start]

    def soft(bound: int) -> bool:
        return text[bound - 1] in _CLAUSE_END or (lang == "th" and bound < end and text[bound].isspace())

    pieces: list[_Unit] = []
    piece_start, j = start, 0
    while chars(piece_start, end) > limit:
        best = best_soft = None
        while j < len(bounds) and chars(piece_start, bounds[j]) <= limit:
            if bounds[j] > piece_start:
                best = bounds[j]
                if soft(best) and chars(piece_start, best) * 2 >= limit:
                    best_soft = best
            j += 1
        cut = best_soft or best
        if cut is None:  # a single word longer than a chunk: cut it by characters
            cut = piece_start
            while chars(piece_start, cut) < limit:
                cut += 1
        pieces.append(_piece(text, piece_start, cut, per_char))
        piece_start = cut
        while piece_start < end and text[piece_start].isspace():
            piece_start += 1
        while j > 0 and bounds[j - 1] > piece_start:
            j -= 1
    pieces.append(_piece(text, piece_start, end, per_char))
    return [p for p in pieces if p.end > p.start]


def _piece(text: str, start: int, end: int, per_char: float) -> _Unit:
    start, end = trim_span(text, start, end) or (start, start)
    return _Unit(start, end, max(1, round(len(_NON_SPACE.findall(text, start, end)) * per_char)))


def _pack(units: list[_Unit], budget: int, overlap: int) -> list[tuple[int, int]]:
    """Greedy: as many whole units per chunk as fit; the next chunk repeats the last `overlap`.

    Returns (first, last) unit indexes, inclusive. The overlap shrinks, down to
    none, when repeating it would leave no room for a new unit.
    """
    chunks: list[tuple[int, int]] = []
    first = 0
    while first < len(units):
        used, last = units[first].tokens, first
        while last + 1 < len(units) and used + units[last + 1].tokens <= budget:
            last += 1
            used += units[last].tokens
        chunks.append((first, last))
        if last + 1 >= len(units):
            break
        next_first = last + 1
        for keep in range(min(overlap, last - first), 0, -1):
            shared = sum(u.tokens for u in units[last + 1 - keep : last + 1])
            if shared + units[next_first].tokens <= budget:
                next_first = last + 1 - keep
                break
        first = next_first
    return chunks


def _units_for_run(text: str, sentences: list[tuple[int, int, int]], lang: str, budget: int) -> list[_Unit]:
    units: list[_Unit] = []
    for start, end, tokens in sentences:
        unit = _Unit(start, end, tokens)
        units.extend(_split_long(text, unit, lang, budget) if tokens > budget else [unit])
    return units


def iter_chunks(
    text: str, count_tokens: CountTokens, max_tokens: int = 256, window_chars: int = CHUNK_WINDOW_CHARS,
) -> Iterator[ChunkSpec]:
    """`chunk_text`'s chunks of a text of any length, made one window of at most `window_chars` at a time.

    A window ends at a paragraph break, a sentence end or a space (see
    `text_windows`); chunks never cross it, and the two beside it share no sentence.
    """
    for start, end in text_windows(text, 0, len(text), window_chars):
        for chunk in chunk_text(text[start:end], count_tokens, max_tokens):
            yield _shifted(chunk, start)


def _shifted(chunk: ChunkSpec, offset: int) -> ChunkSpec:
    if not offset:
        return chunk
    return replace(chunk, start=chunk.start + offset, end=chunk.end + offset,
                   sentences=tuple((s + offset, e + offset) for s, e in chunk.sentences))


def chunk_text(
    text: str,
    count_tokens: CountTokens,
    max_tokens: int = 256,
    overlap_sentences: int = 1,
) -> list[ChunkSpec]:
    """Chunks of whole sentences, one language each, none over `max_tokens`.

    `count_tokens` maps a batch of strings to the number of tokens the embedder
    will feed for each (special tokens and "passage: " prefix included), so
    `count_tokens([""])[0]` is the fixed overhead. It is called once for the
    language runs (a run that fits is one chunk), once for the sentences of the
    longer runs and once to verify their chunks; only chunks that turn out over
    the limit (estimates are sums of sentence counts) cost another call.
    """
    if not text.strip():
        return []
    runs = language_runs(text)
    # Probes, in the same call: "" is the fixed overhead; "a" and "a a" show what
    # a sentence costs after another one rather than first (e5's tokenizer spends
    # one more token on it: the space after "passage:" merges with the first word).
    counts = count_tokens(["", "a", "a a"] + [text[r.start : r.end] for r in runs])
    overhead, one, two = counts[:3]
    run_tokens = counts[3:]
    follow = max(two - 2 * one + overhead, 0)
    if max_tokens <= overhead:
        raise ValueError(
            f"max_tokens={max_tokens} leaves no room: every chunk costs {overhead} tokens of overhead"
        )
    # A run that fits in one chunk is that chunk (most customer notes and short
    # documents): its sentences are found for snippets, but need no token counts.
    run_spans = [split_sentences(text, run.lang, run.start, run.end) for run in runs]
    results: list[list[ChunkSpec] | None] = [
        [ChunkSpec(run.start, run.end, run.lang, tokens, tuple(spans))] if tokens <= max_tokens else None
        for run, tokens, spans in zip(runs, run_tokens, run_spans, strict=True)
    ]
    # Only the longer runs' sentences need token counts, to be packed into chunks.
    per_run = [[] if results[i] is not None else spans for i, spans in enumerate(run_spans)]
    flat = [span for spans in per_run for span in spans]
    sentence_counts = count_tokens([text[s:e] for s, e in flat]) if flat else []
    sentence_tokens = iter(max(c - overhead, 0) + follow for c in sentence_counts)
    run_sentences = [[(s, e, next(sentence_tokens)) for s, e in spans] for spans in per_run]

    # A chunk costs overhead + its sentences' tokens - `follow` (its first sentence is first).
    budgets = [max_tokens - overhead + follow] * len(runs)
    for _ in range(_MAX_REPACKS):
        todo = [i for i, result in enumerate(results) if result is None]
        if not todo:
            break
        candidates: dict[int, list[tuple[_Unit, ...]]] = {}
        for i in todo:
            units = _units_for_run(text, run_sentences[i], runs[i].lang, budgets[i])
            candidates[i] = [tuple(units[a : b + 1]) for a, b in _pack(units, budgets[i], overlap_sentences)]
        spans = [(group[0].start, group[-1].end) for i in todo for group in candidates[i]]
        verified = iter(count_tokens([text[s:e] for s, e in spans]))
        for i in todo:
            chunks = [
                ChunkSpec(group[0].start, group[-1].end, runs[i].lang, next(verified),
                          tuple((u.start, u.end) for u in group))
                for group in candidates[i]
            ]
            worst = max(c.token_count for c in chunks)
            if worst <= max_tokens:
                results[i] = chunks
            else:  # estimates ran short (tokens merge differently when joined): retry tighter
                budgets[i] = max(1, budgets[i] - (worst - max_tokens) - 1)
    for i, result in enumerate(results):
        if result is None:
            results[i] = _force_fit(text, runs[i].lang, run_sentences[i], count_tokens, max_tokens)
    return [chunk for result in results for chunk in result]


def _force_fit(
    text: str, lang: str, sentences: list[tuple[int, int, int]], count_tokens: CountTokens, max_tokens: int
) -> list[ChunkSpec]:
    """Last resort for a run whose estimates keep failing: one sentence (or piece) per chunk,
    halving any piece still over the limit. Several count calls, but always fits."""
    spans = [(s, e) for s, e, _ in sentences]
    done: list[ChunkSpec] = []
    while spans:
        counts = count_tokens([text[s:e] for s, e in spans])
        retry = []
        for (s, e), count in zip(spans, counts, strict=True):
            if count <= max_tokens:
                done.append(ChunkSpec(s, e, lang, count, ((s, e),)))
            elif e - s <= 1:
                raise ValueError(f"max_tokens={max_tokens} cannot hold even {text[s:e]!r} ({count} tokens)")
            else:
                middle = _middle_cut(text, s, e)
                retry.extend(p for p in ((s, middle), (middle, e)) if p[1] > p[0])
        spans = [trim_span(text, s, e) for s, e in retry]
        spans = [span for span in spans if span is not None]
    return sorted(done, key=lambda c: c.start)


def _middle_cut(text: str, start: int, end: int) -> int:
    middle = (start + end) // 2
    space = text.rfind(" ", start + 1, middle + 1)
    return space if space > start else middle


def warm_up_text_tools() -> None:
    """Load the segmenters' and detectors' data now rather than on the first document.

    pythainlp's dictionary and sentence model, pysbd's rules, langdetect's
    profiles and jieba's dictionary take about 2.5 s to load; running this in a thread while the
    embedding model loads takes that off the first ingest batch and the first
    Thai query.
    """
    samples = {
        "en": "Customer complaints must reach every agent. Leaders must support the change.",
        "th": "ข้อมูลการร้องเรียนต้องเปิดให้พนักงานทุกคนเห็น ผู้บริหารต้องสนับสนุนการเปลี่ยนแปลง",
        "zh": "客户投诉的细节应该让所有员工看到。领导必须支持变革。",
    }
    for lang, sample in samples.items():
        split_sentences(sample, lang)
    language_runs(samples["en"] * 3)
    warm_up_keywords()
