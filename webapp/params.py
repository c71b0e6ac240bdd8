"""Reading search parameters from a request, the same way for the pages and the JSON API."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from werkzeug.datastructures import MultiDict

from kb.documents import KINDS
from kb.errors import InvalidInput
from kb.index.chunk_table import SearchFilters
from kb.search.pipeline import MODES

MAX_K = 100
LANGUAGES = ("th", "zh", "en")


class BadParameter(InvalidInput):
    """A request parameter that cannot be used; the message names it."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name


@dataclass
class SearchParams:
    query: str
    k: int
    offset: int
    mode: str
    filters: SearchFilters


def int_param(args: MultiDict, name: str, default: int, low: int, high: int) -> int:
    """A whole number between `low` and `high`, or `default` when the argument is absent."""
    raw = args.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadParameter(name, f"{raw!r} is not a whole number") from None
    if not low <= value <= high:
        raise BadParameter(name, f"must be between {low} and {high}")
    return value


def _date(args: MultiDict, name: str) -> dt.date | None:
    raw = args.get(name, "").strip()
    if not raw:
        return None
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise BadParameter(name, f"{raw!r} is not a date (expected YYYY-MM-DD)") from None


def _choice(args: MultiDict, name: str, choices: tuple[str, ...], default: str | None = None) -> str | None:
    raw = args.get(name, "").strip()
    if not raw:
        return default
    if raw not in choices:
        raise BadParameter(name, f"unknown value {raw!r} (expected one of: {', '.join(choices)})")
    return raw


def search_params(args: MultiDict, default_k: int = 10) -> SearchParams:
    """Query, paging, mode and filters from query-string arguments; raises BadParameter."""
    filters = SearchFilters(
        lang=_choice(args, "lang", LANGUAGES),
        kind=_choice(args, "kind", KINDS),
        tags=[t.strip() for t in args.getlist("tag") if t.strip()],
        product=args.get("product", "").strip() or None,
        status=args.get("status", "").strip() or None,
        channel=args.get("channel", "").strip() or None,
        date_from=_date(args, "from"),
        date_to=_date(args, "to"),
        source=args.get("source", "").strip() or None,
    )
    if filters.date_from and filters.date_to and filters.date_from > filters.date_to:
        raise BadParameter("from", "the start date is after the end date")
    return SearchParams(
        query=args.get("q", ""),
        k=int_param(args, "k", default_k, 1, MAX_K),
        offset=int_param(args, "offset", 0, 0, 10_000),
        mode=_choice(args, "mode", MODES, "hybrid"),
        filters=filters,
    )
