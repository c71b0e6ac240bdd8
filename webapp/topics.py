"""Employees' topics: browse guidance by topic in each language, and edit a document's topics."""

from __future__ import annotations

from flask import Blueprint, abort, jsonify, redirect, render_template, request, url_for

from kb.services.catalog import get_document
from kb.services.topics import TopicError, list_topics, set_document_topics, topic_documents
from webapp import schemas
from webapp.apispec import Answers, errors, spec
from webapp.auth import current_viewer, require
from webapp.current import get_kb
from webapp.errors import error_response
from webapp.forms import TopicsForm
from webapp.i18n import CONTENT_LANGUAGE, select_locale
from webapp.pages import render_document
from webapp.params import LANGUAGES

bp = Blueprint("topics", __name__)
api = Blueprint("topics_api", __name__, url_prefix="/api/v1")


def _languages_first(langs) -> list[str]:
    """The reader's content language first, then the others in the usual order."""
    mine = CONTENT_LANGUAGE[select_locale()]
    return sorted(langs, key=lambda lang: (lang != mine, LANGUAGES.index(lang) if lang in LANGUAGES else 9))


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
@spec.validate(resp=Answers(HTTP_200=schemas.TopicList), tags=["topics"])
def api_topics():
    """Topics of guidance, most documents first, with their documents per language."""
    return jsonify({"topics": [t.to_dict() for t in list_topics(get_kb().engine, viewer=current_viewer())]})


@api.get("/topics/<tag>")
@spec.validate(query=schemas.TopicQuery, resp=Answers(HTTP_200=schemas.TopicDocuments, **errors(400, 404)),
               tags=["topics"])
def api_topic(tag: str):
    """The guidance of one topic, by language."""
    by_lang = topic_documents(get_kb().engine, tag, request.context.query.lang, viewer=current_viewer())
    if not by_lang and not request.args.get("lang"):
        return error_response(404, "not_found", f"no guidance has the topic {tag!r}")
    return jsonify({"tag": tag, "documents": {lang: [d.to_dict() for d in docs] for lang, docs in by_lang.items()}})


@api.put("/documents/<int:doc_id>/topics")
@require("edit")
@spec.validate(json=schemas.TopicsBody, resp=Answers(HTTP_200=schemas.DocumentTopics, **errors(400, 404)),
               tags=["topics"])
def api_set_topics(doc_id: int):
    """Replace a document's topics (kept when its file is ingested again)."""
    if get_document(get_kb().engine, doc_id, current_viewer()) is None:
        return error_response(404, "not_found", f"no document with id {doc_id}")
    topics = request.context.json.topics
    try:
        saved = set_document_topics(get_kb().engine, doc_id, topics)
    except TopicError as exc:
        return error_response(400, "bad_parameter", f"topics: {exc}")
    if saved is None:
        return error_response(404, "not_found", f"no document with id {doc_id}")
    return jsonify({"doc_id": doc_id, "topics": saved})
