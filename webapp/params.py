"""Reading request parameters (search, case filters, whole numbers) the same way for the pages and the JSON API.

The pages' forms (webapp/forms.py) check their values with these same
functions, so a value is refused with the same message on a page as in the API,
in the reader's language (gettext; English where no request chose another).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from flask_babel import gettext as _
from werkzeug.datastructures import MultiDict

from kb.documents import KINDS
from kb.errors import InvalidInput
from kb.index.chunk_table import SearchFilters
from kb.search.types import MODES
from kb.services.cases import STATES, CaseFilters

MAX_K = 100
LANGUAGES = ("th", "zh", "en")


class BadParameter(InvalidInput):
    """A request parameter that cannot be used; the message names it."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name


class BadJson(InvalidInput):
    """A body that is not the JSON object the operation takes."""

    code = "bad_json"


@dataclass
class SearchParams:
    query: str
    k: int
    offset: int
    mode: str
    filters: SearchFilters


def int_param(args: MultiDict, name: str, default: int, low: int, high: int) -> int:
    """A whole number between `low` and `high`, or `default` when the argument is absent."""
    return number_in_range(args.get(name, ""), name, default, low, high)


def number_in_range(raw: str | None, name: str, default: int, low: int, high: int) -> int:
    """`raw` as a whole number between `low` and `high`, or `default` when it is empty."""
    raw = (raw or "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadParameter(name, _("%(value)s is not a whole number", value=repr(raw))) from None
    if not low <= value <= high:
        raise BadParameter(name, _("must be between %(low)d and %(high)d", low=low, high=high))
    return value


def whole_number(raw: str | None, name: str, required: bool = False) -> int | None:
    """A form's whole number (0 or more), or None when it is empty and not required."""
    raw = (raw or "").strip()
    if not raw:
        if required:
            raise BadParameter(name, _("is required"))
        return None
    if not raw.isdigit():
        raise BadParameter(name, _("%(value)s is not a whole number", value=repr(raw)))
    return int(raw)


def _date(args: MultiDict, name: str) -> dt.date | None:
    raw = args.get(name, "").strip()
    if not raw:
        return None
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise BadParameter(name, _not_a_date(raw)) from None


def _not_a_date(raw: str) -> str:
    return _("%(value)s is not a date (expected YYYY-MM-DD)", value=repr(raw))


def unknown_value(raw: str, choices) -> str:
    """The message for a value outside `choices`, naming them."""
    return _("unknown value %(value)s (expected one of: %(choices)s)", value=repr(raw), choices=", ".join(choices))


def _choice(args: MultiDict, name: str, choices: tuple[str, ...], default: str | None = None) -> str | None:
    raw = args.get(name, "").strip()
    if not raw:
        return default
    if raw not in choices:
        raise BadParameter(name, unknown_value(raw, choices))
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
        raise BadParameter("from", _("the start date is after the end date"))
    return SearchParams(
        query=args.get("q", ""),
        k=int_param(args, "k", default_k, 1, MAX_K),
        offset=int_param(args, "offset", 0, 0, 10_000),
        mode=_choice(args, "mode", MODES, "hybrid"),
        filters=filters,
    )


def case_filters(values: MultiDict | dict) -> CaseFilters:
    """Product, channel, status, resolved/open (`state`) and a date range (from/to, YYYY-MM-DD).

    From a form, query or JSON body; `state` empty or "all" means resolved and open cases alike.
    """
    text = {}
    for name in ("product", "channel", "status", "state"):
        value = values.get(name)
        if value is not None and not isinstance(value, str):
            raise BadParameter(name, _("text is required"))
        text[name] = (value or "").strip() or None
    if text["state"] == "all":
        text["state"] = None
    if text["state"] not in (None, *STATES):
        raise BadParameter("state", unknown_value(text["state"], ("all", *STATES)))
    dates = {name: _case_date(values.get(name), name) for name in ("from", "to")}
    if dates["from"] and dates["to"] and dates["from"] > dates["to"]:
        raise BadParameter("from", _("the start date is after the end date"))
    return CaseFilters(**text, date_from=dates["from"], date_to=dates["to"])


def _case_date(raw, name: str) -> dt.date | None:
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    if not isinstance(raw, str):
        raise BadParameter(name, _("a date as text (YYYY-MM-DD) is required"))
    try:
        return dt.date.fromisoformat(raw.strip())
    except ValueError:
        raise BadParameter(name, _not_a_date(raw)) from None
