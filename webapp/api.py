"""The JSON API under /api/v1 (a stable contract, described by /api/v1/openapi.json) and the health checks."""

from __future__ import annotations

from flask import Blueprint, abort, jsonify, request

from indexer.uploads import add_pasted_text, ingest_upload
from kb.documents import KINDS
from kb.search.answer import answer_question
from kb.services import audit
from kb.services.catalog import get_document, list_documents, related_documents
from webapp.auth import current_viewer, record, record_note_answer, record_note_search, require
from webapp.current import get_kb
from webapp.errors import error_response
from webapp.openapi import openapi_document
from webapp.params import LANGUAGES, BadParameter, int_param, search_params

bp = Blueprint("api", __name__, url_prefix="/api/v1")
health = Blueprint("health", __name__)

MAX_LIST = 200


@bp.get("/openapi.json")
def openapi():
    return jsonify(openapi_document())


@bp.get("/search")
def search():
    params = search_params(request.args)
    response = get_kb().search(params.query, k=params.k, mode=params.mode, filters=params.filters,
                               offset=params.offset, facets=request.args.get("facets") == "1",
                               viewer=current_viewer())
    record_note_search(response)
    return jsonify(response.to_dict())


@bp.post("/ask")
def ask():
    payload = request.get_json(silent=True)
    if not isinstance(payload, dict):
        return error_response(400, "bad_json", 'send a JSON object such as {"question": "..."}')
    question = payload.get("question")
    if not isinstance(question, str):
        return error_response(400, "bad_parameter", "question: a string is required")
    result = answer_question(get_kb().engine, question, viewer=current_viewer())
    record_note_answer(get_kb(), result)
    return jsonify(result.to_dict())


@bp.get("/documents")
def documents():
    args = request.args
    kind = args.get("kind") or None
    lang = args.get("lang") or None
    if kind is not None and kind not in KINDS:
        raise BadParameter("kind", f"unknown value {kind!r} (expected one of: {', '.join(KINDS)})")
    if lang is not None and lang not in LANGUAGES:
        raise BadParameter("lang", f"unknown value {lang!r} (expected one of: {', '.join(LANGUAGES)})")
    limit = int_param(args, "limit", 20, 1, MAX_LIST)
    offset = int_param(args, "offset", 0, 0, 10**9)
    docs, total = list_documents(get_kb().engine, limit=limit, offset=offset, kind=kind, lang=lang,
                                 viewer=current_viewer())
    return jsonify({"documents": [d.to_dict() for d in docs], "total": total, "limit": limit, "offset": offset})


def _document_or_404(kb, doc_id: int):
    """The document as the caller may see it; 404 alike for a missing one and a forbidden one."""
    view = get_document(kb.engine, doc_id, current_viewer())
    if view is None:
        abort(error_response(404, "not_found", f"no document with id {doc_id}"))
    return view


@bp.get("/documents/<int:doc_id>")
def document(doc_id: int):
    kb = get_kb()
    view = _document_or_404(kb, doc_id)
    if view.note is not None:
        record(audit.VIEW, f"document {doc_id}", note_id=view.note["note_id"])
    body = view.to_dict()
    body["related"] = [r.to_dict() for r in related_documents(kb.engine, doc_id, k=5, viewer=current_viewer())]
    return jsonify(body)


@bp.post("/documents")
@require("edit")
def upload():
    """Multipart files (field `files`, several allowed) or JSON {"text", "title", "lang", "tags"}."""
    kb = get_kb()
    if request.mimetype == "application/json":
        payload = request.get_json(silent=True)
        if not isinstance(payload, dict) or not isinstance(payload.get("text"), str):
            return error_response(400, "bad_json", 'send a JSON object such as {"title": "...", "text": "..."}')
        lang = payload.get("lang")
        if lang is not None and lang not in LANGUAGES:
            raise BadParameter("lang", f"unknown value {lang!r} (expected one of: {', '.join(LANGUAGES)})")
        tags = payload.get("tags") or []
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise BadParameter("tags", "a list of strings is required")
        outcomes = [add_pasted_text(kb.engine, payload["text"], str(payload.get("title") or ""), lang, tags,
                                    uploader=current_viewer())]
    else:
        files = [f for f in request.files.getlist("files") if f and f.filename]
        if not files:
            return error_response(400, "no_files", "send one or more files in the multipart field 'files'")
        outcomes = [ingest_upload(kb.engine, f.filename, f.read(), current_viewer()) for f in files]
    results = [o.to_dict() for o in outcomes]
    ok = any(o.status != "failed" for o in outcomes)
    status = 201 if any(o.status in ("added", "updated") for o in outcomes) else 200 if ok else 422
    if all(o.forbidden for o in outcomes):
        status = 403
    return jsonify({"results": results}), status


@bp.delete("/documents/<int:doc_id>")
@require("edit")
def delete(doc_id: int):
    kb = get_kb()
    view = _document_or_404(kb, doc_id)
    if not current_viewer().can_change(view.owner, view.visibility):
        return error_response(403, "forbidden", f"document {doc_id} is not yours: only its owner "
                                                "(who uploaded it) or an admin may delete it")
    removed = kb.delete([view.summary.source])
    return jsonify({"deleted": removed})


@health.get("/healthz")
def healthz():
    return jsonify({"status": "ok"})


@health.get("/readyz")
def readyz():
    """Ready when the database answers and the indexes hold exactly the database's chunks."""
    kb = get_kb()
    try:
        stats = kb.stats()  # follows the database first
    except Exception as exc:  # noqa: BLE001 - any failure here means "not ready", with the reason
        return error_response(503, "not_ready", f"the database cannot be read: {exc.__class__.__name__}")
    keyword = len(kb.indexes.keywords)
    body = {"status": "ready", "documents": stats.documents, "chunks": stats.chunks,
            "vectors": stats.vectors, "keyword_chunks": keyword}
    if not stats.chunks == stats.vectors == keyword:
        body["status"] = "not_ready"
        return jsonify(body), 503
    return jsonify(body)
