"""Employees' topics: browse guidance by topic in each language, and edit a document's topics."""

from __future__ import annotations

from flask import Blueprint, abort, jsonify, redirect, render_template, request, url_for

from kb.services.catalog import get_document
from kb.services.topics import TopicError, list_topics, set_document_topics, topic_documents
from webapp.auth import current_viewer, require
from webapp.current import get_kb
from webapp.errors import error_response
from webapp.forms import TopicsForm
from webapp.i18n import CONTENT_LANGUAGE, select_locale
from webapp.pages import render_document
from webapp.params import LANGUAGES, BadParameter

bp = Blueprint("topics", __name__)
api = Blueprint("topics_api", __name__, url_prefix="/api/v1")


def _languages_first(langs) -> list[str]:
    """The reader's content language first, then the others in the usual order."""
    mine = CONTENT_LANGUAGE[select_locale()]
    return sorted(langs, key=lambda lang: (lang != mine, LANGUAGES.index(lang) if lang in LANGUAGES else 9))


def _lang_arg() -> str | None:
    lang = request.args.get("lang") or None
    if lang is not None and lang not in LANGUAGES:
        raise BadParameter("lang", f"unknown value {lang!r} (expected one of: {', '.join(LANGUAGES)})")
    return lang


@bp.route("/topics")
def topics():
    return render_template("topics.html", topics=list_topics(get_kb().engine, viewer=current_viewer()),
                           order=_languages_first(LANGUAGES))


@bp.route("/topics/<tag>")
def topic(tag: str):
    kb = get_kb()
    lang = request.args.get("lang") if request.args.get("lang") in LANGUAGES else None
    viewer = current_viewer()
    by_lang = topic_documents(kb.engine, tag, lang, viewer=viewer)
    if not by_lang and not lang:
        abort(404)
    counts = {t.tag: t for t in list_topics(kb.engine, viewer=viewer)}.get(tag)
    return render_template("topic.html", tag=tag, by_lang=by_lang, order=_languages_first(by_lang),
                           lang=lang, counts=counts)


@bp.post("/documents/<int:doc_id>/topics")
@require("edit")
def edit_topics(doc_id: int):
    kb = get_kb()
    if get_document(kb.engine, doc_id, current_viewer()) is None:
        abort(404)
    form = TopicsForm()
    if not form.validate_on_submit():
        abort(400)
    raw = [t for t in form.topics.data.replace(";", ",").split(",") if t.strip()]
    try:
        saved = set_document_topics(kb.engine, doc_id, raw)
    except TopicError as exc:  # shown next to the field, with what was typed
        return render_document(doc_id, 400, topics_error=str(exc), topics_value=form.topics.data)
    if saved is None:
        abort(404)
    return redirect(url_for("pages.document", doc_id=doc_id, saved="topics"), code=303)


@api.get("/topics")
def api_topics():
    return jsonify({"topics": [t.to_dict() for t in list_topics(get_kb().engine, viewer=current_viewer())]})


@api.get("/topics/<tag>")
def api_topic(tag: str):
    by_lang = topic_documents(get_kb().engine, tag, _lang_arg(), viewer=current_viewer())
    if not by_lang and not request.args.get("lang"):
        return error_response(404, "not_found", f"no guidance has the topic {tag!r}")
    return jsonify({"tag": tag, "documents": {lang: [d.to_dict() for d in docs] for lang, docs in by_lang.items()}})


@api.put("/documents/<int:doc_id>/topics")
@require("edit")
def api_set_topics(doc_id: int):
    if get_document(get_kb().engine, doc_id, current_viewer()) is None:
        return error_response(404, "not_found", f"no document with id {doc_id}")
    payload = request.get_json(silent=True)
    topics = payload.get("topics") if isinstance(payload, dict) else None
    if not isinstance(topics, list) or not all(isinstance(t, str) for t in topics):
        return error_response(400, "bad_parameter", 'topics: send {"topics": ["a-topic", ...]}')
    try:
        saved = set_document_topics(get_kb().engine, doc_id, topics)
    except TopicError as exc:
        return error_response(400, "bad_parameter", f"topics: {exc}")
    if saved is None:
        return error_response(404, "not_found", f"no document with id {doc_id}")
    return jsonify({"doc_id": doc_id, "topics": saved})
