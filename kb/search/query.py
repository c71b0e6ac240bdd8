"""The query as the retrievers take it: cleaned and cut, its language, its keyword terms.

Both retrievers and the answers start from the same cleaned text; doing it
once, here, keeps keyword terms, the query's language (which centers its
vector) and what the response reports as the query in agreement.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kb.search.types import EmptyQueryError
from kb.text.cleaning import normalize_text
from kb.text.languages import detect_language

if TYPE_CHECKING:
    from kb.engine import Engine

MAX_QUERY_CHARS = 4000  # a pasted complaint; the model reads its first 512 tokens


def clean_query(query: str) -> str:
    """Normalized, trimmed, and cut (at a space if there is one) to MAX_QUERY_CHARS."""
    text = " ".join(normalize_text(query or "").split())
    if not text:
        raise EmptyQueryError("the query is empty: type a few words to search for")
    if len(text) > MAX_QUERY_CHARS:
        cut = text.rfind(" ", 0, MAX_QUERY_CHARS)
        text = text[: cut if cut > MAX_QUERY_CHARS // 2 else MAX_QUERY_CHARS]
    return text


def query_language(query: str) -> str:
    """The language of a cleaned query: its vector is centered for it, and the response reports it."""
    return detect_language(query)


def query_terms(engine: Engine, query: str) -> list[str]:
    """The keyword terms of a cleaned query, each once, in the order they come."""
    return list(dict.fromkeys(engine.analyzer.term_texts(query)))
