"""The JSON API under /api/v1 (a stable contract, described by /api/v1/openapi.json) and the health checks."""

from __future__ import annotations

from flask import Blueprint, abort, jsonify, request, url_for

from indexer.queue import queue_uploads, visible_job
from indexer.uploads import add_pasted_text, ingest_upload, split_topics, upload_choices
from kb.documents import short_source
from kb.errors import InvalidInput, KBError
from kb.search.answer import answer_question
from kb.services import audit
from kb.services.catalog import get_document, list_documents, related_documents
from webapp import schemas
from webapp.apispec import Answers, errors, openapi_document, spec
from webapp.auth import current_viewer, record, record_note_answer, record_note_search, require
from webapp.current import get_kb
from webapp.downloads import original_response
from webapp.errors import error_response

bp = Blueprint("api", __name__, url_prefix="/api/v1")
health = Blueprint("health", __name__)

@bp.get("/openapi.json")
@spec.validate(resp=Answers("HTTP_200"), tags=["meta"])
def openapi():
    """This document (OpenAPI 3.1)."""
    return jsonify(openapi_document())


SEARCHED = Answers(HTTP_200=schemas.SearchResponse, **errors(400))


@bp.get("/search")
@spec.validate(query=schemas.SearchFields, resp=SEARCHED, tags=["search"])
def search():
    """Hybrid search across languages, best first (an empty list when nothing is relevant)."""
    return _search(request.context.query)


@bp.post("/search")
@spec.validate(json=schemas.SearchFields, resp=SEARCHED, tags=["search"])
def search_by_body():
    """The same search with its fields in a JSON body, for long queries such as a pasted complaint."""
    return _search(request.context.json)


def _search(fields: schemas.SearchFields):
    response = get_kb().search(fields.q, k=fields.k, mode=fields.mode, filters=fields.filters(),
                               offset=fields.offset, facets=fields.facets, viewer=current_viewer())
    record_note_search(response)
    return jsonify(response.to_dict())


@bp.post("/ask")
@spec.validate(json=schemas.AskRequest, resp=Answers(HTTP_200=schemas.AskResponse, **errors(400)), tags=["search"])
def ask():
    """Ask a question; the answer quotes its source, which comes first among the citations."""
    question = request.context.json.question
    result = answer_question(get_kb().engine, question, viewer=current_viewer())
    record_note_answer(get_kb(), result)
    return jsonify(result.to_dict())


@bp.get("/documents")
@spec.validate(query=schemas.DocumentQuery, resp=Answers(HTTP_200=schemas.DocumentList, **errors(400)),
               tags=["documents"])
def documents():
    """Documents, most recently updated first."""
    query = request.context.query
    docs, total = list_documents(get_kb().engine, limit=query.limit, offset=query.offset, kind=query.kind,
                                 lang=query.lang, viewer=current_viewer())
    return jsonify({"documents": [d.to_dict() for d in docs], "total": total, "limit": query.limit,
                    "offset": query.offset})


def _document_or_404(kb, doc_id: int):
    """The document as the caller may see it; 404 alike for a missing one and a forbidden one."""
    view = get_document(kb.engine, doc_id, current_viewer())
    if view is None:
        abort(error_response(404, "not_found", f"no document with id {doc_id}"))
    return view


@bp.get("/documents/<int:doc_id>")
@spec.validate(resp=Answers(HTTP_200=schemas.Document, **errors(404)), tags=["documents"])
def document(doc_id: int):
    """One document whole, with its passages and related documents."""
    kb = get_kb()
    view = _document_or_404(kb, doc_id)
    if view.note is not None:
        record(audit.VIEW, f"document {doc_id}", note_id=view.note["note_id"])
    body = view.to_dict()
    if body["original"]:
        body["original"]["url"] = url_for("api.original", doc_id=doc_id)
    body["related"] = [r.to_dict() for r in related_documents(kb.engine, doc_id, k=5, viewer=current_viewer())]
    return jsonify(body)


@bp.get("/documents/<int:doc_id>/original")
@spec.validate(resp=Answers("HTTP_200", **errors(403, 404)), tags=["documents"])
def original(doc_id: int):
    """The file the document was read from, byte for byte (403 when it holds documents or personal data that
    are not yours to see; 404 when none is kept, as for pasted text)."""
    return original_response(doc_id)


@bp.post("/documents")
@require("edit")
@spec.validate(json=schemas.PastedText, form=schemas.UploadForm,
               resp=Answers(HTTP_201=schemas.UploadResults, HTTP_200=schemas.UploadResults,
                             HTTP_202=schemas.UploadResults, HTTP_403=schemas.UploadResults,
                             HTTP_422=schemas.UploadResults, **errors(400, 413, 503)),
               tags=["documents"])
def upload():
    """Upload files (multipart field `files`, several allowed) or add pasted text (JSON).

    201: something was added or updated; 200: nothing changed; 403: every file was refused (it would replace a
    document you may not change, or asks for a visibility you may not give); 422: nothing could be read. Each
    result says why. With a queue (KB_QUEUE_URL) files are not ingested here: 202 with `job_id`, files marked
    `queued`, and `GET /api/v1/jobs/{job_id}` follows them; 503 when the queue cannot be reached.
    """
    kb = get_kb()
    if request.context.json is not None:
        pasted = request.context.json
        outcomes = [add_pasted_text(kb.engine, pasted.text, pasted.title, pasted.lang, pasted.tags,
                                    uploader=current_viewer(), visibility=pasted.visibility)]
    else:
        files = [f for f in request.files.getlist("files") if f and f.filename]
        if not files:
            return error_response(400, "no_files", "send one or more files in the multipart field 'files'")
        form = request.context.form
        visibility, topics = form.visibility, split_topics(form.topics)
        try:
            upload_choices(visibility, topics)
        except InvalidInput as exc:
            return error_response(400, "bad_parameter", str(exc))
        if kb.engine.settings.queue_url:
            return _queue_uploads(kb, files, visibility, topics)
        outcomes = [ingest_upload(kb.engine, f.filename, f.read(), current_viewer(), visibility, topics)
                    for f in files]
    results = [o.to_dict() for o in outcomes]
    ok = any(o.status != "failed" for o in outcomes)
    status = 201 if any(o.status in ("added", "updated") for o in outcomes) else 200 if ok else 422
    if all(o.forbidden for o in outcomes):
        status = 403
    return jsonify({"results": results}), status


def _queue_uploads(kb, files, visibility: str | None, topics: list[str]):
    try:
        outcomes, job = queue_uploads(kb.engine, [(f.filename, f.read()) for f in files], current_viewer(),
                                      visibility, topics)
    except KBError as exc:
        return error_response(503, "queue_unavailable", str(exc))
    body = {"results": [o.to_dict() for o in outcomes], "job_id": job.id if job else None,
            "job": job.to_dict() if job else None}
    status = 202 if job else 403 if all(o.forbidden for o in outcomes) else 422
    return jsonify(body), status


@bp.get("/jobs/<job_id>")
@require("edit")
@spec.validate(resp=Answers(HTTP_200=schemas.Job, **errors(404)), tags=["documents"])
def job(job_id: str):
    """An ingest job and each file's outcome (its submitter's, or any for an admin)."""
    view = visible_job(get_kb().engine, job_id, current_viewer())
    if view is None:
        return error_response(404, "not_found", f"no job {job_id!r}")
    return jsonify(view.to_dict())


@bp.delete("/documents/<int:doc_id>")
@require("edit")
@spec.validate(resp=Answers(HTTP_200=schemas.Deleted, **errors(404)), tags=["documents"])
def delete(doc_id: int):
    """Delete a document from the database and both indexes (its owner or an admin)."""
    kb = get_kb()
    view = _document_or_404(kb, doc_id)
    if not current_viewer().can_change(view.owner, view.visibility):
        return error_response(403, "forbidden", f"document {doc_id} is not yours: only its owner "
                                                "(who uploaded it) or an admin may delete it")
    removed = kb.delete([view.summary.source])
    return jsonify({"deleted": [short_source(source) for source in removed]})


@health.get("/healthz")
@spec.validate(resp=Answers(HTTP_200=schemas.Health), tags=["meta"])
def healthz():
    """The process is alive."""
    return jsonify({"status": "ok"})


@health.get("/readyz")
@spec.validate(resp=Answers(HTTP_200=schemas.Ready, HTTP_503=schemas.NotReady), tags=["meta"])
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
