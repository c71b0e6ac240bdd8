"""Answers with citations: the one or two sentences of our own knowledge that answer a question.

Nothing is generated. Hybrid search finds the best passages; each is split
into sentences (per language; Thai clauses joined into sentences); every run
of one or two consecutive sentences is scored by how much of the question's
keyword weight (BM25 idf) it holds, how close its passage is in meaning to
the question (the only evidence across languages, where keywords cannot
match), and the rank of its passage. The best run is the answer, quoted
exactly, with the character offsets of each sentence in its document. The
confidence is a logistic function of the evidence, fitted on XQuAD against
questions whose own paragraph was removed (bench/answers.py --fit); below its
threshold the answer is "not in the knowledge base" and the closest passages
are shown instead.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from kb.access import OPERATOR, Viewer
from kb.search import weights
from kb.search.pipeline import search_text
from kb.search.types import SearchResult
from kb.text.sentences import join_thai_clauses, split_sentences

if TYPE_CHECKING:
    from kb.engine import Engine

# Sentences longer than this are not an answer of "one or two sentences" (a table row, a list).
MAX_ANSWER_CHARS = 600


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
        return {"doc_id": self.doc_id, "chunk_id": self.chunk_id, "title": self.title, "source": self.source,
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
    coverage: float  # of the question's keyword weight, by the run
    passage_coverage: float  # by the whole passage
    cosine: float  # of the question and the passage (language-centered vectors)
    score: float


def answer_question(engine: Engine, question: str, min_confidence: float | None = None,
                    viewer: Viewer = OPERATOR) -> Answer:
    """The best one or two sentences for `question` from what `viewer` may see, or no answer below the threshold."""
    started = time.perf_counter()
    response = search_text(engine, question, k=weights.PASSAGES + 2, viewer=viewer, snippets=False)
    timings = {"search": time.perf_counter() - started}
    results = response.results
    question_terms = response.query_terms
    idf = engine.indexes.keywords.idf(question_terms)
    total_weight = sum(idf.values())
    runs: list[_Run] = []
    asked = set(question_terms)
    query_vector = _query_vector(engine, response.query, response.query_lang)
    split: dict[int, tuple] = {}  # chunk id -> (sentence spans, their terms, which are headings)
    for rank, result in enumerate(results[:weights.PASSAGES]):
        sentences, sentence_terms = _sentences(engine, result)
        headings = [_is_heading(result.text, span) for span in sentences]
        split[result.chunk_id] = (sentences, sentence_terms, headings)
        cosine = _cosine(engine, query_vector, result)
        meaning = _meaning(cosine)
        passage_coverage = _coverage(set().union(*sentence_terms), idf, total_weight)
        for i in range(len(sentences)):
            for size in range(1, weights.MAX_SENTENCES + 1):
                if i + size > len(sentences):
                    break
                # A heading (or a sentence that only repeats the question) is context, not an answer.
                context = headings[i] or len(sentence_terms[i] - asked) < weights.MIN_NEW_TERMS
                if context and size == 1:
                    continue
                terms = set().union(*sentence_terms[i : i + size])
                coverage = _coverage(terms, idf, total_weight)
                if size > 1 and not context:
                    alone = max(_coverage(sentence_terms[j], idf, total_weight) for j in range(i, i + size))
                    short = (sentences[i][1] - sentences[i][0] < weights.SHORT_SENTENCE
                             and sentences[i + size - 1][1] - sentences[i][0] <= weights.SHORT_PAIR)
                    if coverage - alone < weights.EXTEND_MIN_GAIN and not short:
                        continue
                start = sentences[i + 1][0] if context else sentences[i][0]
                end = sentences[i + size - 1][1]
                if end - start > MAX_ANSWER_CHARS or not (set().union(*sentence_terms[i + int(context) : i + size]) - asked):
                    continue
                score = coverage + weights.MEANING_WEIGHT * meaning + weights.RANK_WEIGHT / (1 + rank)
                runs.append(_Run(result, rank, start, end, coverage, passage_coverage, cosine, score))
    timings["sentences"] = time.perf_counter() - started - timings["search"]
    consulted = [_citation(r, r.best.start, r.best.end, r.text) for r in results]
    in_own_language = next((c for c in consulted if c.lang == response.query_lang), None)
    if not runs:
        return Answer(question, response.query_lang, None, None, 0.0, consulted, None, timings)
    best = max(runs, key=lambda run: (run.score, -run.rank, -run.start))
    if best.result.lang != response.query_lang and best.coverage < weights.EXTEND_MIN_GAIN and query_vector is not None:
        sentences, _, headings = split[best.result.chunk_id]
        closest = _closest_sentences(engine, query_vector, best.result, sentences, headings)
        if closest:
            best.start, best.end = closest
    evidence = _evidence(best, results)
    confidence = _confidence(evidence, cross_language=best.result.lang != response.query_lang)
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
    return engine.indexes.center_query(engine.embedder.encode_query(query), query_lang)


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


def _closest_sentences(engine: Engine, query_vector: np.ndarray, result: SearchResult,
                       spans, headings) -> tuple[int, int] | None:
    """The sentence of a passage in another language closest in meaning to the question (keywords cannot tell)."""
    candidates = [span for span, heading in zip(spans, headings, strict=True)
                  if not heading and span[1] - span[0] <= MAX_ANSWER_CHARS]
    if not candidates:
        return None
    vectors = engine.embedder.encode_passages([result.text[a:b] for a, b in candidates])
    vectors = engine.indexes.centroids.center(vectors, [result.lang] * len(candidates))
    return candidates[int(np.argmax(vectors @ query_vector))]


def _is_heading(text: str, span: tuple[int, int]) -> bool:
    """A short line of its own without closing punctuation: it names a subject, it answers nothing."""
    start, end = span
    line_ends = end >= len(text.rstrip()) or text[end : end + 1] == "\n"
    line_starts = start == 0 or text[start - 1] == "\n"
    return line_starts and line_ends and end - start <= 80 and text[end - 1] not in ".!?。！？:："


def _evidence(best: _Run, results: list[SearchResult]) -> dict[str, float]:
    """What the confidence is computed from: keyword coverage of the answer and of its passage, the passage's
    cosine with the question, and how clearly the best passage won (its lead over the second, relative)."""
    margin = 1.0
    if len(results) > 1 and results[0].score > 0:
        margin = min(1.0, max(0.0, (results[0].score - results[1].score) / abs(results[0].score)))
    return {"coverage": best.coverage, "passage_coverage": best.passage_coverage, "cosine": best.cosine,
            "margin": margin}


def _confidence(evidence: dict[str, float], cross_language: bool) -> float:
    """0 to 1, logistic in the evidence; weights.MIN_CONFIDENCE (0.5) is the calibrated threshold.

    Across languages keywords cannot match, so such answers have weights of their own (meaning and lead).
    """
    coefficients, intercept = ((weights.CROSS_LANGUAGE_WEIGHTS, weights.CROSS_LANGUAGE_INTERCEPT) if cross_language
                               else (weights.CONFIDENCE_WEIGHTS, weights.CONFIDENCE_INTERCEPT))
    z = intercept + sum(weight * evidence[name] for name, weight in coefficients.items())
    return float(1.0 / (1.0 + math.exp(-z)))


def _citation(result: SearchResult, start: int, end: int, text: str) -> Citation:
    return Citation(result.doc_id, result.chunk_id, result.title, result.source, start, end, text, result.lang,
                    result.heading_path)
