"""Support agents' pages and API: the case list, one case, similar past cases, "this helped", note import."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("cases", __name__)
api = Blueprint("cases_api", __name__, url_prefix="/api/v1/cases")


@bp.route("/cases")
def cases():
    return "cases: to be written"
