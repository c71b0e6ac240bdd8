"""Answers with citations: the one or two sentences of our own knowledge that answer a question.

Nothing is generated. Hybrid search finds the best passages; each is split
into sentences (per language; Thai clauses joined into sentences); every run
of one or two consecutive sentences is scored (`score_run`) by how much of
the question's keyword weight (BM25 idf) it holds, how close its OWN
sentences are in meaning to the question (the model's vector of those
sentences alone, language-centered: keywords pick the neighbour that repeats
the question's words, and cannot cross languages), how close its passage is,
the passage's rank, and whether it has the shape the question asks for (a
duration for "how long", a role for "who": `kb.search.cues`). The best run is
the answer, quoted exactly, with the character offsets of each sentence in
its document. The confidence is the chance that answer is right, a logistic
function of the evidence fitted on the fit half of our own staff questions
(bench/answer_fit.py); below its threshold the answer is "not in the
knowledge base" and the closest passages are shown instead.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy import select

from kb.access import OPERATOR, Viewer
from kb.documents import GUIDANCE, short_source
from kb.search import weights
from kb.search.cues import has_shape, question_kind
from kb.search.pipeline import search_text
from kb.search.types import SearchResponse, SearchResult
from kb.storage.models import Chunk, Document
from kb.text.languages import SUPPORTED_LANGUAGES
from kb.text.sentences import join_thai_clauses, split_sentences

if TYPE_CHECKING:
    from kb.engine import Engine

# Sentences longer than this are not an answer of "one or two sentences" (a table row, a list).
MAX_ANSWER_CHARS = 600
_LIST_OR_TABLE = re.compile(r"\s*([-*•]|\d{1,3}[.)])\s|\s*\|")
_TABLE_ROW = re.compile(r"[ \t]*\|")


@dataclass
class Citation:
    doc_id: int
    chunk_id: int
    title: str
    source: str
    start: int  # offsets of the quoted text in the document's cleaned text
    end: int
    text: str
    lang: str
    heading_path: list[str] = field(default_factory=list)  # document title > section > subsection

    def to_dict(self) -> dict:
        return {"doc_id": self.doc_id, "chunk_id": self.chunk_id, "title": self.title, "source": short_source(self.source),
                "start": self.start, "end": self.end, "text": self.text, "lang": self.lang,
                "heading_path": self.heading_path}


@dataclass
class Answer:
    question: str
    question_lang: str
    answer: str | None
    lang: str | None  # the language the answer is written in
    confidence: float
    citations: list[Citation]  # the answer's source first, then the other passages consulted
    in_question_language: Citation | None = None  # the best passage in the asker's language, when the answer is not
    timings: dict[str, float] = field(default_factory=dict)
    evidence: dict[str, float] = field(default_factory=dict)  # what the confidence was computed from

    def to_dict(self) -> dict:
        return {
            "answer": self.answer, "lang": self.lang, "confidence": round(self.confidence, 4),
            "question_lang": self.question_lang,
            "citations": [c.to_dict() for c in self.citations],
            "in_question_language": self.in_question_language.to_dict() if self.in_question_language else None,
            "evidence": {name: round(value, 4) for name, value in self.evidence.items()},
        }


@dataclass
class _Run:
    result: SearchResult
    rank: int
    start: int  # offsets in the chunk text
    end: int
    sentences: tuple[int, int]  # the passage's sentences that say the answer (a leading context sentence left out)
    coverage: float  # of the question's keyword weight, by the run
    passage_coverage: float  # by the whole passage
    cosine: float  # of the question and the passage (language-centered vectors)
    sem: float = 0.0  # of the question and the run's own sentences: what the run says, not its neighbours
    cue: float = 0.0  # 1 when the run has the shape the question asks for (a duration for "how long"...)
    score: float = 0.0
    parallels: frozenset[int] = frozenset()  # candidate passages in other languages that say its passage again

    @property
    def doc_span(self) -> tuple[int, int, int]:
        """The run's place in its document (document id, start, end): chunks overlap, documents do not."""
        offset = self.result.best.start
        return self.result.doc_id, offset + self.start, offset + self.end


@dataclass
class Candidates:
    """What an answer is chosen from: the search behind it, the passages read, and every scored run of them."""

    response: SearchResponse
    runs: list[_Run]
    timings: dict[str, float]
    passages: list[SearchResult] = field(default_factory=list)


def candidate_answers(engine: Engine, question: str, viewer: Viewer = OPERATOR) -> Candidates:
    """Search for `question` and score every run of one or two sentences of the best passages (best first)."""
    started = time.perf_counter()
    # Passages, not documents: the sentence that answers is often in the second passage of the best document.
    # Guidance first: a customer note tells what happened once, guidance what we do; notes answer only
    # when no guidance is about the question.
    kind: str | None = GUIDANCE
    response = search_text(engine, question, k=weights.PASSAGES + 2, kind=kind, group=False, viewer=viewer,
                           snippets=False)
    if not response.results:
        kind = None
        response = search_text(engine, question, k=weights.PASSAGES + 2, group=False, viewer=viewer, snippets=False)
    passages = list(enumerate(response.results[:weights.PASSAGES]))
    passages += _other_language_passages(engine, question, response, kind, viewer)
    timings = {"search": time.perf_counter() - started}
    query_vector = _query_vector(engine, response.query, response.query_lang)
    runs, split = _candidate_runs(engine, response, passages, query_vector)
    _mark_parallels(engine, runs)
    timings["sentences"] = time.perf_counter() - started - timings["search"]
    if runs:
        _measure_meaning(engine, runs, split, query_vector, question_kind(response.query))
        for run in runs:
            run.score = score_run(run)
        runs.sort(key=lambda run: (-run.score, run.rank, run.start))
    timings["meaning"] = time.perf_counter() - started - timings["search"] - timings["sentences"]
    return Candidates(response, runs, timings, [result for _, result in passages])


def answer_question(engine: Engine, question: str, min_confidence: float | None = None,
                    viewer: Viewer = OPERATOR) -> Answer:
    """The best one or two sentences for `question` from what `viewer` may see, or no answer below the threshold."""
    candidates = candidate_answers(engine, question, viewer)
    response, runs, timings = candidates.response, candidates.runs, candidates.timings
    results = response.results
    consulted = [_citation(r, r.best.start, r.best.end, r.text) for r in _consulted(candidates)]
    in_own_language = next((c for c in consulted if c.lang == response.query_lang), None)
    if not runs:
        return Answer(question, response.query_lang, None, None, 0.0, consulted, None, timings)
    best = runs[0]
    evidence = evidence_for(best, runs, results, response.query_lang)
    confidence = confidence_of(evidence)
    threshold = weights.MIN_CONFIDENCE if min_confidence is None else min_confidence
    if confidence < threshold:
        return Answer(question, response.query_lang, None, None, confidence, consulted, None, timings, evidence)
    quoted = best.result.text[best.start : best.end]
    offset = best.result.best.start
    cited = _citation(best.result, offset + best.start, offset + best.end, quoted)
    others = [c for c in consulted if c.chunk_id != cited.chunk_id]
    own = in_own_language if cited.lang != response.query_lang else None
    return Answer(question, response.query_lang, quoted, cited.lang, confidence, [cited, *others], own, timings,
                  evidence)


def prepare_sentences(engine: Engine, batch: int = 256) -> int:
    """Embed and keep the sentences of every passage as answers split them; returns how many sentences there are.

    Answers embed the sentences of the passages they read on first use and keep
    them in the database (`Embedder.encode_sentences`), so a first question
    about a subject waits for them (median 1.4 s against 0.11 s on the bundled
    corpus). Run after a large ingest (`kb prepare-answers`), no first answer waits.
    """
    total, last_id = 0, 0
    while True:
        with engine.store.session() as session:
            rows = session.execute(select(Chunk.id, Chunk.text, Chunk.lang).where(Chunk.id > last_id)
                                   .order_by(Chunk.id).limit(batch)).all()
        if not rows:
            return total
        texts = [text[a:b] for _, text, lang in rows for a, b in _split(text, lang)]
        engine.embedder.encode_sentences(texts, shared=engine.store)
        total += len(texts)
        last_id = rows[-1].id


def _consulted(candidates: Candidates) -> list[SearchResult]:
    """The passages to show beside an answer, or instead of one: the search's best, with the best passage of each
    other language that was read inserted after the first weights.PASSAGES.

    Keywords cannot cross languages, so a question asked in Chinese whose
    answer is written in English finds the English passage only when each
    language is searched alone; shown, it lets the reader judge it even when
    no sentence was sure enough to quote.
    """
    results = candidates.response.results
    shown = list(results[:weights.PASSAGES])
    seen = {result.chunk_id for result in results}
    langs = {candidates.response.query_lang}
    for result in candidates.passages[len(shown):]:
        if result.lang not in langs and result.chunk_id not in seen:
            shown.append(result)
            langs.add(result.lang)
    return shown + list(results[weights.PASSAGES:])


def _other_language_passages(engine: Engine, question: str, response: SearchResponse, kind: str | None,
                             viewer: Viewer) -> list[tuple[int, SearchResult]]:
    """The best passages of each language the question is not in, searched in that language alone.

    Keywords cannot cross languages, so an unfiltered hybrid search fills its
    first places with passages in the question's language that share its
    words, while the one that answers may exist only in another language
    (measured on bench/realq: the gold document was among the unfiltered
    candidates for 7 of 73 cross-language questions, among the first three of
    its own language for 54). Searched by language, the passages compete by
    meaning with passages in their own language only. Each keeps its rank
    in its own language's list.
    """
    if not response.results:
        return []
    seen = {result.chunk_id for result in response.results[:weights.PASSAGES]}
    extra: list[tuple[int, SearchResult]] = []
    for lang in SUPPORTED_LANGUAGES:
        if lang == response.query_lang:
            continue
        searched = search_text(engine, question, k=weights.OTHER_LANGUAGE_PASSAGES, lang=lang, kind=kind, group=False,
                               viewer=viewer, snippets=False)
        extra += [(rank, result) for rank, result in enumerate(searched.results) if result.chunk_id not in seen]
    return extra


def _candidate_runs(engine: Engine, response, passages: list[tuple[int, SearchResult]],
                    query_vector) -> tuple[list[_Run], dict]:
    """Every run of one or two consecutive sentences of the best passages that could answer, with its keyword evidence.

    A heading, or a sentence that only repeats the question, is context: it
    may lead a pair, never stand alone; a heading never ends a pair (it names
    the next section, and its words made the wrong sentence win). A second sentence joins only when it
    adds keyword weight, or when the first is short (a sentence that names the
    subject is often followed by the one that answers).
    """
    question_terms = response.query_terms
    idf = engine.indexes.keywords.idf(question_terms)
    total_weight = sum(idf.values())
    asked = set(question_terms)
    runs: list[_Run] = []
    seen: set[tuple[int, int, int]] = set()
    split: dict[int, tuple] = {}  # chunk id -> sentence spans
    marked = _heading_spans(engine, {result.doc_id for _, result in passages})
    for rank, result in passages:
        sentences, sentence_terms = _sentences(engine, result)
        headings = [_is_heading(result, span, marked.get(result.doc_id)) or _is_table_header(result, span)
                    for span in sentences]
        split[result.chunk_id] = sentences
        cosine = _cosine(engine, query_vector, result)
        passage_coverage = _coverage(set().union(*sentence_terms), idf, total_weight)
        for i in range(len(sentences)):
            for size in range(1, weights.MAX_SENTENCES + 1):
                if i + size > len(sentences):
                    break
                context = headings[i] or len(sentence_terms[i] - asked) < weights.MIN_NEW_TERMS
                if context and size == 1 or size > 1 and headings[i + size - 1]:
                    continue  # a heading names what follows it: it never ends an answer
                terms = set().union(*sentence_terms[i : i + size])
                coverage = _coverage(terms, idf, total_weight)
                if size > 1 and not context:
                    alone = max(_coverage(sentence_terms[j], idf, total_weight) for j in range(i, i + size))
                    short = (sentences[i][1] - sentences[i][0] < weights.SHORT_SENTENCE
                             and sentences[i + size - 1][1] - sentences[i][0] <= weights.SHORT_PAIR)
                    if coverage - alone < weights.EXTEND_MIN_GAIN and not short:
                        continue
                first = i + int(context)
                start, end = sentences[first][0], sentences[i + size - 1][1]
                if end - start > MAX_ANSWER_CHARS or not (set().union(*sentence_terms[first : i + size]) - asked):
                    continue
                if context and headings[i]:
                    coverage = _coverage(set().union(*sentence_terms[first : i + size]), idf, total_weight)
                run = _Run(result, rank, start, end, (first, i + size), coverage, passage_coverage, cosine)
                if run.doc_span in seen:  # the sentence a passage shares with its neighbour (chunks overlap)
                    continue
                seen.add(run.doc_span)
                runs.append(run)
    return runs, split


def _mark_parallels(engine: Engine, runs: list[_Run]) -> None:
    """Mark each run with the candidate passages in other languages that say its passage again.

    Now that every language is read, the answer's own translation is the
    closest rival of a right answer: it must corroborate the answer, not count
    against its lead. Passages (not sentences) are compared: on XQuAD
    translated paragraphs score 0.41 and more, unrelated ones at most 0.38
    (see weights.PARALLEL_MIN_SIMILARITY), while single sentences of e5-small
    do not separate (translated gold sentences of bench/realq: median 0.39;
    any two candidate sentences in different languages: 99th percentile 0.43).
    """
    if engine.indexes.vectors is None or engine.indexes.centroids.overall is None or not runs:
        return
    passages = {run.result.chunk_id: run.result.lang for run in runs}
    ids = np.asarray(list(passages), np.int64)
    vectors = engine.indexes.vectors.reconstruct_many(ids)
    close = vectors @ vectors.T >= weights.PARALLEL_MIN_SIMILARITY
    langs = np.asarray(list(passages.values()))
    parallel = close & (langs[:, None] != langs[None, :])
    of = {int(chunk_id): frozenset(ids[row].tolist()) for chunk_id, row in zip(ids.tolist(), parallel, strict=True)}
    for run in runs:
        run.parallels = of[run.result.chunk_id]


def _measure_meaning(engine: Engine, runs: list[_Run], split: dict, query_vector, kind: str | None) -> None:
    """Each run's own sentences' closeness in meaning to the question (`sem`) and whether it has the asked shape (`cue`).

    Keywords alone pick the sentence that repeats the question's words, often
    the neighbour of the one that answers it, and cannot cross languages; the
    meaning of each sentence (the model's vector of that sentence alone,
    language-centered) tells which one answers.
    """
    if query_vector is not None:
        wanted = {(run.result.chunk_id, j) for run in runs for j in range(*run.sentences)}
        keys = sorted(wanted)
        by_chunk = {run.result.chunk_id: run.result for run in runs}
        texts = [by_chunk[c].text[slice(*split[c][j])] for c, j in keys]
        vectors = engine.embedder.encode_sentences(texts, shared=engine.store)
        if engine.indexes.centroids.overall is not None:
            vectors = engine.indexes.centroids.center(vectors, [by_chunk[c].lang for c, _ in keys])
        row = {key: i for i, key in enumerate(keys)}
        for run in runs:
            members = [row[(run.result.chunk_id, j)] for j in range(*run.sentences)]
            mean = vectors[members].sum(axis=0)
            run.sem = float(np.dot(query_vector, mean) / max(float(np.linalg.norm(mean)), 1e-12))
    for run in runs:
        run.cue = float(has_shape(kind, run.result.text[run.start : run.end]))


def score_run(run: _Run) -> float:
    """How well a run answers: keywords, its own meaning, its passage's meaning and rank, its shape (weights.py)."""
    return (weights.COVERAGE_WEIGHT * run.coverage + weights.SENTENCE_MEANING_WEIGHT * run.sem
            + weights.MEANING_WEIGHT * _meaning(run.cosine) + weights.RANK_WEIGHT / (1 + run.rank)
            + weights.CUE_WEIGHT * run.cue)


@lru_cache(maxsize=4096)
def _split(text: str, lang: str) -> tuple[tuple[int, int], ...]:
    """Sentence spans of a passage; Thai clauses joined into sentences (see `join_thai_clauses`)."""
    spans = split_sentences(text, lang)
    if lang == "th":
        spans = join_thai_clauses(text, spans)
    return tuple(spans) or ((0, len(text)),)


def _sentences(engine: Engine, result: SearchResult) -> tuple[tuple[tuple[int, int], ...], list[set[str]]]:
    """Sentence spans of the passage (cached: popular passages come back) and the keyword terms of each."""
    spans = _split(result.text, result.lang)
    return spans, [set(engine.analyzer.term_texts(result.text[a:b])) for a, b in spans]


def _coverage(terms: set[str], idf: dict[str, float], total: float) -> float:
    return sum(w for t, w in idf.items() if t in terms) / total if total else 0.0


def _query_vector(engine: Engine, query: str, query_lang: str) -> np.ndarray | None:
    """The question's vector, language-centered where the knowledge base has centroids; None without vectors."""
    if engine.indexes.vectors is None:
        return None
    return engine.indexes.center_query(engine.embedder.encode_question(query), query_lang)


def _cosine(engine: Engine, query_vector: np.ndarray | None, result: SearchResult) -> float:
    """Cosine of the question's and the passage's language-centered vectors; 0 without centroids.

    Without language centering (a knowledge base too small to have centroids)
    every cosine of this model lies between 0.7 and 0.9 whatever the texts
    say, so meaning then counts for nothing.
    """
    if query_vector is None or engine.indexes.centroids.overall is None:
        return 0.0
    return float(np.dot(query_vector, engine.indexes.vectors.reconstruct(result.chunk_id)))


def _meaning(cosine: float) -> float:
    """How close the passage is in meaning to the question, 0 to 1: the only evidence across languages."""
    return min(1.0, max(0.0, cosine / weights.MEANING_FULL))


def _heading_spans(engine: Engine, doc_ids: set[int]) -> dict[int, list[tuple[int, int]]]:
    """The headings the readers marked in each document (offsets in its text); documents without any are left out."""
    with engine.store.session() as session:
        rows = session.execute(select(Document.id, Document.headings).where(Document.id.in_(doc_ids)))
        return {row.id: [(start, end) for start, end, _ in row.headings] for row in rows if row.headings}


def _is_heading(result: SearchResult, span: tuple[int, int], marked: list[tuple[int, int]] | None) -> bool:
    """A heading names a subject and answers nothing.

    Where the document's reader marked its headings (Markdown, HTML, Word),
    they are the headings: a short list item ("- 不要承诺……；") or a Thai line
    without closing punctuation is not one. Elsewhere (plain text), a short
    line of its own that is neither a list item nor a table row, without
    closing punctuation.
    """
    start, end = span
    if marked is not None:
        offset = result.best.start
        return any(a < offset + end and offset + start < b for a, b in marked)
    text = result.text
    line_ends = end >= len(text.rstrip()) or text[end : end + 1] == "\n"
    line_starts = start == 0 or text[start - 1] == "\n"
    return (line_starts and line_ends and end - start <= 80 and text[end - 1] not in ".!?。！？:："
            and not _LIST_OR_TABLE.match(text, start))


def _is_table_header(result: SearchResult, span: tuple[int, int]) -> bool:
    """The first row of a table names its columns, as a heading names a section: context, never an answer alone.

    A row that opens the passage is taken for a header only where the passage
    opens its document: elsewhere the table may have begun in the passage before.
    """
    text, (start, end) = result.text, span
    line_start = text.rfind("\n", 0, start) + 1
    line_end = text.find("\n", end)
    line_end = len(text) if line_end < 0 else line_end
    if (not _TABLE_ROW.match(text, line_start) or text[line_start:start].strip() or text[end:line_end].strip()
            or "\n" in text[start:end].strip()):
        return False  # not one whole table row
    if line_start == 0:
        above = result.best.start == 0
    else:
        previous = text[text.rfind("\n", 0, line_start - 1) + 1 : line_start - 1]
        above = not _TABLE_ROW.match(previous)
    return above and bool(_TABLE_ROW.match(text, line_end + 1))


def evidence_for(best: _Run, runs: list[_Run], results: list[SearchResult], question_lang: str) -> dict[str, float]:
    """What the confidence is computed from (shown in the JSON as `evidence`).

    Keyword coverage of the answer and of its passage, the passage's and the
    answer's own closeness in meaning to the question, how clearly the answer
    won over the best run that neither shares a sentence with it nor is in a
    passage that says its passage again in another language (`lead`, in
    meaning; `choice_gap`, in score: on bench/realq the best single sign that
    the choice is right, area under the ROC curve 0.70, where cross-language
    agreement of the best runs was 0.49) and how clearly its passage won the
    search (`margin`), whether it
    has the question's shape (`cue`), and whether it crosses languages (no
    keyword can match then, so the other evidence must carry it).
    """
    margin = 1.0
    if len(results) > 1 and results[0].score > 0:
        margin = min(1.0, max(0.0, (results[0].score - results[1].score) / abs(results[0].score)))
    rivals = [run for run in runs if not _overlap(run, best) and run.result.chunk_id not in best.parallels]
    lead = best.sem - max(run.sem for run in rivals) if rivals else best.sem
    gap = score_run(best) - max(score_run(run) for run in rivals) if rivals else score_run(best)
    cross = float(best.result.lang != question_lang)
    return {"coverage": best.coverage, "passage_coverage": best.passage_coverage, "cosine": best.cosine,
            "margin": margin, "sem": best.sem, "lead": lead, "cue": best.cue, "cross_language": cross,
            "choice_gap": gap}


def _overlap(a: _Run, b: _Run) -> bool:
    """Whether two runs share text of their document (chunks overlap by a sentence, so compare document offsets)."""
    (a_doc, a_start, a_end), (b_doc, b_start, b_end) = a.doc_span, b.doc_span
    return a_doc == b_doc and a_start < b_end and b_start < a_end


def confidence_of(evidence: dict[str, float]) -> float:
    """0 to 1, logistic in the evidence; fitted on the fit half of bench/realq (see weights.CONFIDENCE_WEIGHTS)."""
    z = weights.CONFIDENCE_INTERCEPT + sum(
        weight * evidence[name] for name, weight in weights.CONFIDENCE_WEIGHTS.items())
    return float(1.0 / (1.0 + math.exp(-z)))


def _citation(result: SearchResult, start: int, end: int, text: str) -> Citation:
    return Citation(result.doc_id, result.chunk_id, result.title, result.source, start, end, text, result.lang,
                    result.heading_path)
