"""Admins' pages: the audit log (read and export; nobody can change it here)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, render_template, request

from kb.services import audit
from webapp import schemas
from webapp.apispec import Answers, errors, spec
from webapp.auth import record, require
from webapp.current import get_kb
from webapp.errors import error_page
from webapp.forms import AuditFilterForm, first_error
from webapp.params import BadParameter, unknown_value

bp = Blueprint("admin", __name__)
api = Blueprint("admin_api", __name__, url_prefix="/api/v1")
PAGE_SIZE = 50


@bp.route("/admin/audit")
@require("audit")
def audit_log():
    form = AuditFilterForm()
    if not form.validate():
        return error_page(400, first_error(form))
    page = form.page_number()
    entries, total = audit.entries(get_kb().store, PAGE_SIZE, (page - 1) * PAGE_SIZE,
                                   actor=form.actor.data.strip() or None, action=form.action.data.strip() or None)
    return render_template("audit.html", entries=entries, total=total, page=page, page_size=PAGE_SIZE)


@bp.route("/admin/audit/export")
@require("audit")
def audit_export():
    fmt = request.args.get("format", "csv")
    if fmt not in ("csv", "jsonl"):
        raise BadParameter("format", unknown_value(fmt, ("csv", "jsonl")))
    record(audit.EXPORT, "audit log", format=fmt)
    mimetype = "text/csv" if fmt == "csv" else "application/x-ndjson"
    return Response(audit.export(get_kb().store, fmt), mimetype=f"{mimetype}; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="audit-log.{fmt}"'})


@api.get("/audit")
@require("audit")
@spec.validate(query=schemas.AuditQuery, resp=Answers(HTTP_200=schemas.AuditLog, **errors(400)), tags=["admin"])
def api_audit():
    """The audit log, newest first (admins only; nobody can change it)."""
    query = request.context.query
    limit, offset = query.limit, query.offset
    entries, total = audit.entries(get_kb().store, limit, offset, actor=query.actor, action=query.action)
    return jsonify({"entries": [e.to_dict() for e in entries], "total": total, "limit": limit, "offset": offset})
