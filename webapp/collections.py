"""Trainers' collections: pages and API to gather, order, annotate, share and export workshop passages."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("collections", __name__)
api = Blueprint("collections_api", __name__, url_prefix="/api/v1/collections")


@bp.route("/collections")
def collections():
    return "collections: to be written"
