"""Support agents' pages and API: the case list, one case, similar past cases, "this helped", note import.

Each view is one call into `kb.services.cases` or `indexer.note_import`. Every page
works without JavaScript: "this helped" is a form that posts and comes back
to the same results (`static/cases.js` does the same through the API in place).
"""

from __future__ import annotations

import json

from flask import Blueprint, abort, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _
from werkzeug.datastructures import MultiDict

from indexer.note_import import (
    FORMATS,
    BadMapping,
    ImportProblem,
    ImportReport,
    check_import,
    clean_mapping,
    discard_pending,
    find_pending,
    guess_mapping,
    import_notes,
    read_table,
    save_pending,
    stored_path,
)
from kb.documents import NOTE_FIELDS, ReadError
from kb.search.types import EmptyQueryError
from kb.services import audit
from kb.services.cases import (
    case_filter_values,
    get_case,
    list_cases,
    mark_helped,
    similar_cases,
    unmark_helped,
    voter_marks,
)
from webapp import case_schemas
from webapp.apispec import Answers, errors, spec
from webapp.auth import current_actor as actor_id
from webapp.auth import current_viewer, record, require
from webapp.current import get_kb
from webapp.errors import error_response
from webapp.forms import (
    CaseFilterForm,
    HelpedForm,
    ImportCheckForm,
    ImportConfirmForm,
    ImportUploadForm,
    SimilarForm,
    column_mapping,
    first_error,
)
from webapp.params import BadParameter, case_filters
from webapp.redirects import local_path

bp = Blueprint("cases", __name__)
api = Blueprint("cases_api", __name__, url_prefix="/api/v1/cases")

PAGE_SIZE = 20
SIMILAR_ON_PAGE = 10
FILTER_FIELDS = ("product", "channel", "status", "from", "to")


def _page_number(raw: str | None) -> int:
    try:
        return max(1, min(int(raw or 1), 10_000))
    except ValueError:
        return 1


@bp.before_request
@api.before_request
@require("notes")
def only_with_access_to_notes():
    """Cases are customer notes: value-chain partners never reach them."""
    return None


# -- pages ------------------------------------------------------------------------


@bp.route("/cases")
def cases():
    kb = get_kb()
    form = CaseFilterForm()
    page = _page_number(form.page.data)
    error, items, total = None, [], 0
    if form.validate():
        items, total = list_cases(kb.engine, form.filters, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE,
                                  viewer=current_viewer())
        record(audit.SEARCH, "case list", **form.filters.to_dict())
    else:
        error = first_error(form)
    filters = form.filters
    return render_template("cases.html", cases=items, total=total, page=page, page_size=PAGE_SIZE,
                           filters=filters, options=case_filter_values(kb.engine), error=error), 400 if error else 200


@bp.route("/cases/<int:doc_id>")
def case(doc_id: int):
    kb = get_kb()
    found = get_case(kb.engine, doc_id, current_viewer())
    if found is None:
        abort(404)
    record(audit.VIEW, f"case {doc_id}", note_id=found.note_id)
    marked = doc_id in voter_marks(kb.engine, actor_id(), [doc_id])
    return render_template("case.html", case=found, marked=marked)


@bp.route("/cases/similar", methods=["GET", "POST"])
def similar():
    kb = get_kb()
    if request.method == "POST":
        form = SimilarForm()
    else:  # a link ("similar to this case") or the filters in the URL
        form = SimilarForm(formdata=request.args, meta={"csrf": False})
    text = form.q.data
    source_case = None
    if form.case.data.isdigit():  # "similar to this case": its complaint, itself left out
        source_case = get_case(kb.engine, int(form.case.data), current_viewer())
        if source_case and not text.strip():
            text = source_case.complaint
    error, results = None, None
    if not form.validate():
        error = first_error(form)
    elif text.strip():
        exclude = (source_case.doc_id,) if source_case else ()
        try:
            results = similar_cases(kb.engine, text, k=SIMILAR_ON_PAGE, filters=form.filters, exclude=exclude,
                                    viewer=current_viewer())
        except EmptyQueryError:
            error = _("Paste or type the customer's complaint.")
        else:
            record(audit.SIMILAR, text[:200], results=len(results))
    elif request.method == "POST":
        error = _("Paste or type the customer's complaint.")
    filters = form.filters
    marks = voter_marks(kb.engine, actor_id(), [c.doc_id for c in results or []])
    return render_template("similar.html", text=text, results=results, filters=filters, marks=marks,
                           options=case_filter_values(kb.engine), error=error), 400 if error else 200


@bp.post("/cases/<int:doc_id>/helped")
def helped(doc_id: int):
    """The "this helped" form: mark (or with `undo`, unmark), then back to where it was clicked."""
    kb = get_kb()
    form = HelpedForm()
    if not form.validate_on_submit():
        abort(400)
    change = unmark_helped if form.undo.data else mark_helped
    if change(kb.engine, doc_id, actor_id()) is None:
        abort(404)
    if form.back.data == "similar":
        # 307 repeats the same POST (the complaint and filters ride along), so the agent
        # sees the same results again with the new count, without a long URL.
        return redirect(url_for("cases.similar") + f"#case-{doc_id}", code=307)
    return redirect(local_path(form.next.data) or url_for("cases.case", doc_id=doc_id), code=303)


@bp.route("/cases/import", methods=["GET", "POST"])
def import_upload():
    """Step 1: upload a .csv or .jsonl file; it is kept under a random token until imported."""
    form = ImportUploadForm()
    if not form.is_submitted():
        return render_template("import_notes.html", step="upload", error=None)
    if not form.validate():
        return render_template("import_notes.html", step="upload", error=first_error(form)), 400
    upload = form.file.data
    data = upload.read()
    try:
        read_table(upload.filename, data)  # refuse what cannot be read before keeping it
        pending = save_pending(get_kb().settings.data_dir, upload.filename, data)
    except ReadError as exc:
        return render_template("import_notes.html", step="upload", error=str(exc)), 400
    return redirect(url_for("cases.import_mapping", token=pending.token), code=303)


def _form_mapping(form: ImportCheckForm | ImportConfirmForm, values: MultiDict, columns: list[str]) -> dict[str, str]:
    """The mapping chosen in the form (`map_<field>`), or the best guess when none was sent yet."""
    if not any(key.startswith("map_") for key in values):
        return guess_mapping(columns)
    return column_mapping(form)


@bp.route("/cases/import/<token>", methods=["GET", "POST"])
def import_mapping(token: str):
    """Step 2 (GET): map the columns and check every row. Step 3 (POST): import them all or none, or (when
    chosen) the rows that pass, reporting the others."""
    kb = get_kb()
    pending = find_pending(kb.settings.data_dir, token)
    if pending is None:
        abort(404)
    data = pending.read()
    try:
        table = read_table(pending.name, data)
    except ReadError as exc:
        discard_pending(pending)
        return render_template("import_notes.html", step="upload", error=str(exc)), 400
    if request.method == "POST":
        form, values = ImportConfirmForm(), request.form
    else:
        form, values = ImportCheckForm(), request.args
    if not form.validate():
        abort(400)
    mapping = _form_mapping(form, values, table.columns)
    report = None
    if request.method == "POST" or form.check.data:
        importer = current_viewer().username
        # A check counts the rows that pass even when others do not, to offer importing just those.
        valid_only = request.method != "POST" or values.get("valid_only") in ("1", "on", "true")
        report = check_import(table, mapping, str(stored_path(kb.settings.data_dir, pending.name, importer)),
                              valid_only=valid_only)
        report = import_notes(kb.engine, report, data, dry_run=request.method != "POST", owner=importer)
        if request.method == "POST" and report.ok:
            discard_pending(pending)
            return render_template("import_notes.html", step="done", report=report, error=None)
    status = 422 if report is not None and report.problems else 200
    return render_template("import_notes.html", step="map", token=token, name=pending.name, table=table,
                           mapping=mapping, report=report, fields=NOTE_FIELDS, error=None), status


# -- API --------------------------------------------------------------------------



def _not_found(doc_id: int):
    return error_response(404, "not_found", f"no case with id {doc_id} (only customer notes are cases)")


@api.get("")
@spec.validate(query=case_schemas.CaseQuery, resp=Answers(HTTP_200=case_schemas.CaseList, **errors(400)),
               tags=["cases"])
def api_list():
    """Customer notes as cases, newest first."""
    args = request.args
    limit, offset = request.context.query.limit, request.context.query.offset
    items, total = list_cases(get_kb().engine, case_filters(args), limit=limit, offset=offset, viewer=current_viewer())
    record(audit.SEARCH, "case list", **case_filters(args).to_dict())
    return jsonify({"cases": [c.to_dict() for c in items], "total": total, "limit": limit, "offset": offset})


@api.get("/<int:doc_id>")
@spec.validate(resp=Answers(HTTP_200=case_schemas.Case, **errors(404)), tags=["cases"])
def api_case(doc_id: int):
    """One case with its customer."""
    found = get_case(get_kb().engine, doc_id, current_viewer())
    if found is None:
        return _not_found(doc_id)
    record(audit.VIEW, f"case {doc_id}", note_id=found.note_id)
    return jsonify(found.to_dict())


@api.post("/similar")
@spec.validate(json=case_schemas.SimilarRequest, resp=Answers(HTTP_200=case_schemas.SimilarCases, **errors(400)),
               tags=["cases"])
def api_similar():
    """Past cases most like a new complaint, in any language, the most similar first."""
    payload = request.get_json(silent=True)
    text, k = request.context.json.text, request.context.json.k
    filters = case_filters(payload)
    results = similar_cases(get_kb().engine, text, k=k, filters=filters, viewer=current_viewer())
    record(audit.SIMILAR, text[:200], results=len(results))
    return jsonify({"results": [c.to_dict() for c in results], "filters": filters.to_dict()})


HELPED = Answers(HTTP_200=case_schemas.CaseHelped, **errors(404))


@api.post("/<int:doc_id>/helped")
@spec.validate(resp=HELPED, tags=["cases"])
def api_mark(doc_id: int):
    """Say the case's resolution helped (once per user)."""
    result = mark_helped(get_kb().engine, doc_id, actor_id())
    return jsonify(result.to_dict()) if result else _not_found(doc_id)


@api.delete("/<int:doc_id>/helped")
@spec.validate(resp=HELPED, tags=["cases"])
def api_unmark(doc_id: int):
    """Take back your "this helped"."""
    result = unmark_helped(get_kb().engine, doc_id, actor_id())
    return jsonify(result.to_dict()) if result else _not_found(doc_id)


@api.post("/import")
@spec.validate(form=case_schemas.ImportForm,
               resp=Answers(HTTP_201=case_schemas.ImportReport, HTTP_200=case_schemas.ImportReport,
                            HTTP_422=case_schemas.ImportReport, **errors(400, 413)),
               tags=["cases"])
def api_import():
    """Import notes from CSV or JSONL with your own column names: all of them or none, or (valid_only) the rows
    that pass, with the others reported.

    201: imported; 200: checked (dry_run) or nothing changed; 422: problems, nothing was written.
    """
    kb = get_kb()
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return error_response(400, "no_file", "send the notes file in the multipart field 'file'")
    chosen = request.form.get("mapping", "").strip()
    try:
        chosen_mapping = json.loads(chosen) if chosen else {}
        if not isinstance(chosen_mapping, dict):
            raise BadMapping('the mapping is an object {"our field": "their column"}')
        clean_mapping(chosen_mapping)
    except (ValueError, BadMapping) as exc:
        raise BadParameter("mapping", str(exc) if isinstance(exc, BadMapping) else "not valid JSON") from None
    dry_run = (request.form.get("dry_run") or request.args.get("dry_run") or "").lower() in ("1", "true", "yes")
    valid_only = (request.form.get("valid_only") or request.args.get("valid_only") or "").lower() in ("1", "true", "yes")
    data = upload.read()
    try:
        table = read_table(upload.filename, data)
    except ReadError as exc:
        fmt = FORMATS.get("." + upload.filename.rsplit(".", 1)[-1].lower(), "")
        report = ImportReport(upload.filename, fmt, [], {}, problems=[ImportProblem(None, None, str(exc))])
        return jsonify(report.to_dict()), 422
    # Fields the client names override the guesses; naming one with "" or null unmaps it.
    mapping = clean_mapping({**guess_mapping(table.columns), **chosen_mapping})
    importer = current_viewer().username
    report = check_import(table, mapping, str(stored_path(kb.settings.data_dir, upload.filename, importer)),
                          valid_only=valid_only)
    report = import_notes(kb.engine, report, data, dry_run=dry_run, owner=importer)
    status = 422 if not report.ok else 201 if report.imported else 200
    return jsonify(report.to_dict()), status
