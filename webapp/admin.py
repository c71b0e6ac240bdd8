"""Admins' pages: the people who use the portal, and the audit log (read and export; nobody can change it)."""

from __future__ import annotations

from flask import Blueprint, Response, abort, jsonify, render_template, request
from flask_babel import gettext as _
from flask_login import current_user

from kb.services import accounts, audit
from webapp import schemas
from webapp.apispec import Answers, errors, spec
from webapp.auth import account_locked, record, require
from webapp.current import get_kb
from webapp.errors import error_page
from webapp.forms import AuditFilterForm, NewUserForm, UserActionForm, UserRoleForm, first_error
from webapp.params import BadParameter, unknown_value

bp = Blueprint("admin", __name__)
api = Blueprint("admin_api", __name__, url_prefix="/api/v1")
PAGE_SIZE = 50


@bp.route("/admin/users", methods=["GET", "POST"])
@require("users")
def users():
    """Every account with its state; POST makes a new one and shows its password once."""
    form, done, error, status = NewUserForm(), None, None, 200
    if request.method == "POST":
        if not form.validate():
            error, status = first_error(form), 400
        else:
            try:
                account, password = accounts.add_user(get_kb().store, form.username.data, form.role.data,
                                                      display_name=form.display_name.data or "")
            except accounts.AccountError as exc:
                error, status = str(exc), 400
            else:
                record(audit.USER_ADD, account.username, role=account.role)
                done = {"message": _("User %(name)s created.", name=account.username),
                        "username": account.username, "password": password}
    return _users_page(form, done, error), status


@bp.post("/admin/users/<username>/<action>")
@require("users")
def user_action(username: str, action: str):
    """Change one account: role, reset-password, unlock, disable or enable; each is recorded in the audit log."""
    store = get_kb().store
    account = accounts.find_account(store, username)
    if account is None or action not in ("role", "reset-password", "unlock", "disable", "enable"):
        abort(404)
    form = UserRoleForm() if action == "role" else UserActionForm()
    if not form.validate():
        return _users_page(NewUserForm(formdata=None), None, first_error(form)), 400
    if action in ("role", "disable") and account.username == current_user.account.username:
        return _users_page(NewUserForm(formdata=None), None,
                           _("You cannot take away your own access; ask another admin.")), 400
    done = {"username": account.username}
    if action == "role":
        accounts.set_role(store, account.username, form.role.data)
        record(audit.USER_ROLE, account.username, role=form.role.data, was=account.role)
        done["message"] = _("%(name)s's role changed; they were signed out everywhere.", name=account.username)
    elif action == "reset-password":
        password = accounts.new_password()
        accounts.set_password(store, account.username, password)
        record(audit.USER_PASSWORD, account.username)
        done |= {"message": _("New password for %(name)s (shown only now; they were signed out everywhere).",
                              name=account.username), "password": password}
    elif action == "unlock":
        record(audit.USER_UNLOCK, account.username)
        done["message"] = _("%(name)s may sign in again.", name=account.username)
    else:
        accounts.set_disabled(store, account.username, action == "disable")
        record(audit.USER_DISABLE if action == "disable" else audit.USER_ENABLE, account.username)
        done["message"] = (_("%(name)s is disabled: signed out, sign-ins and tokens refused.", name=account.username)
                           if action == "disable" else _("%(name)s is enabled again.", name=account.username))
    return _users_page(NewUserForm(formdata=None), done, None)


def _users_page(form, done: dict | None, error: str | None) -> str:
    listed = accounts.list_users(get_kb().store)
    locked = {a.username for a in listed if account_locked(a.username)}
    return render_template("users.html", users=listed, locked=locked, form=form, done=done, error=error,
                           roles=accounts.ROLES)


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
