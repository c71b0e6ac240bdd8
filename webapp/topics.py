"""Employees' topics: browse guidance by topic, in each language; edit a document's topics."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("topics", __name__)


@bp.route("/topics")
def topics():
    return "topics: to be written"
