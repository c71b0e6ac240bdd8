"""Signing in and who is asking: sessions (Flask-Login), API tokens, CSRF (Flask-WTF), throttling, the account page.

Every page and API call needs a signed-in user, except signing in itself, the
health checks, the API description and static files. A browser signs in with
a password and gets a session; a program sends `Authorization: Bearer <token>`
with a token made on the account page. Forms and any request that the session
cookie authenticates carry a CSRF token, whatever else they send; only calls
authenticated by a token alone need none (no cookie, so nothing for another
site to ride on). Each session has its own id: "sign out" ends that session on
the server, so a copy of its cookie is refused afterwards.

Failed sign-ins are counted in the audit log, so throttling holds across
every worker process. After THROTTLE_FAILURES failures for one user name in
THROTTLE_WINDOW, that account's sign-ins are refused for the rest of the
window, from anywhere. An address (behind KB_TRUSTED_PROXIES proxies: the
client's, from X-Forwarded-For) is throttled only after many more failures
(THROTTLE_FAILURES_PER_ADDRESS), and then only for accounts that have not
signed in from it lately: a guesser behind an office's NAT never locks out
the colleagues who work there.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
from functools import wraps
from pathlib import Path

from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user
from flask_wtf.csrf import CSRFError, CSRFProtect

from kb.access import Viewer
from kb.config import Settings
from kb.documents import NOTE
from kb.services import accounts, audit
from webapp import labels
from webapp.current import get_kb
from webapp.errors import error_response, wants_json
from webapp.forms import (
    NEW_PASSWORD,
    SIGN_IN,
    TOKEN_NAME,
    LoginForm,
    LogoutForm,
    PasswordForm,
    RevokeTokenForm,
    SignOutEverywhereForm,
    TokenForm,
)
from webapp.redirects import local_path

bp = Blueprint("auth", __name__)
csrf = CSRFProtect()
login_manager = LoginManager()

THROTTLE_WINDOW = dt.timedelta(minutes=15)
THROTTLE_FAILURES = 5
THROTTLE_FAILURES_PER_ADDRESS = 50
# An account that signed in from an address within this long is still let in there when the address is throttled.
KNOWN_ADDRESS_WINDOW = dt.timedelta(days=30)
LOGIN, LOGIN_FAILED = "login", "login_failed"
# Endpoints anyone may reach without signing in.
PUBLIC_ENDPOINTS = {"auth.login", "static", "health.healthz", "health.readyz", "api.openapi"}


class SignedInUser(UserMixin):
    """Flask-Login's user: an account, identified in the session with its epoch and the session's own id
    (see kb.services.accounts); `session_id` is "" for a program signed in with a token."""

    def __init__(self, account: accounts.Account, session_id: str = "") -> None:
        self.account = account
        self.session_id = session_id

    def get_id(self) -> str:
        return f"{self.account.id}:{self.account.session_epoch}:{self.session_id}"

    def can(self, permission: str) -> bool:
        return self.account.can(permission)


def config_defaults(settings: Settings) -> dict:
    """Session and cookie settings (a caller's own config may override them)."""
    secure = settings.cookie_secure
    return {
        "SECRET_KEY": settings.secret_key or _secret_key(settings.data_dir),
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        # Cookies go over HTTPS only, unless KB_COOKIE_SECURE=0 (a demo on http://127.0.0.1).
        "SESSION_COOKIE_SECURE": secure,
        "REMEMBER_COOKIE_SECURE": secure,
        "REMEMBER_COOKIE_HTTPONLY": True,
        "PERMANENT_SESSION_LIFETIME": dt.timedelta(hours=12),
        "WTF_CSRF_TIME_LIMIT": None,  # a form's token is valid as long as its session
    }


def init_app(app: Flask) -> None:
    # CSRF is checked in `guard`, where token-authenticated API calls are told apart.
    app.config["WTF_CSRF_CHECK_DEFAULT"] = False
    csrf.init_app(app)
    login_manager.init_app(app)
    login_manager.session_protection = "basic"
    app.register_blueprint(bp)

    @app.before_request
    def guard():
        # A program's call with a bearer token sends no cookie, so there is nothing for CSRF to protect
        # (webapp.forms reads this too). When the session cookie signs the request in, a bearer header
        # beside it changes nothing: another site's request carries the cookie and could carry any header.
        signed_in = current_user.is_authenticated  # from the session cookie first, else a bearer token
        g.token_authenticated = _bearer_token() is not None and not g.get("session_authenticated", False)
        if not (request.endpoint in PUBLIC_ENDPOINTS or signed_in):
            # Nobody is signed in: that is the answer (401), whatever else is wrong with the request.
            if wants_json():
                return error_response(401, "unauthorized",
                                      "sign in, or send 'Authorization: Bearer <token>' with a token from your account page")
            return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
        if not g.token_authenticated and request.method in ("POST", "PUT", "PATCH", "DELETE"):
            csrf.protect()
        return None

    @app.errorhandler(CSRFError)
    def csrf_refused(exc: CSRFError):
        if wants_json():
            return error_response(400, "csrf_failed", "the CSRF token is missing or wrong: reload the page and try again")
        return render_template("error.html", code=400,
                               message=_("This form has expired or did not come from this site. Reload the page and try again.")), 400

    @app.context_processor
    def account_context():
        user = current_user if current_user.is_authenticated else None
        return {"signed_in": user.account if user else None,
                "can": (lambda permission: bool(user and user.can(permission))),
                "role_names": role_names()}


def role_names() -> dict[str, str]:
    return {role: str(name) for role, name in labels.ROLES.items()}


def _secret_key(data_dir: Path) -> str:
    """A random key kept in the data directory (so every worker and restart shares it), made on first use."""
    path = data_dir / "secret_key"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{secrets.token_hex(4)}.tmp")
        tmp.write_text(secrets.token_hex(32))
        tmp.chmod(0o600)
        try:
            os.link(tmp, path)  # atomic and never overwrites: two workers starting at once agree
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
    return path.read_text().strip()


@login_manager.user_loader
def _load_user(user_key: str) -> SignedInUser | None:
    user_id, epoch, session_id = (user_key.split(":") + ["", ""])[:3]
    if not user_id.isdigit() or not epoch.isdigit():
        return None
    account = accounts.session_account(get_kb().store, int(user_id), int(epoch), session_id)
    if account is None:
        return None  # signed out (here or everywhere), disabled, or the role changed
    g.session_authenticated = True
    return SignedInUser(account, session_id)


@login_manager.request_loader
def _load_user_from_token(_request) -> SignedInUser | None:
    token = _bearer_token()
    if token is None:
        return None
    account = accounts.account_for_token(get_kb().store, token)
    return SignedInUser(account) if account else None


def _bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def current_viewer() -> Viewer:
    """The signed-in user as a reader of documents (their role decides what they see and what is masked)."""
    if not current_user.is_authenticated:
        return Viewer("partner")  # the least trusted reader, should anything run before the guard
    return Viewer(current_user.account.role, current_user.account.username)


def current_actor() -> str:
    return f"user:{current_user.account.username}" if current_user.is_authenticated else "anonymous"


def require(permission: str):
    """A view only users with `permission` may use (403 for the others)."""

    def decorate(view):
        @wraps(view)
        def wrapped(*args, **kwargs):
            if not current_user.is_authenticated or not current_user.can(permission):
                if wants_json():
                    return error_response(403, "forbidden", f"your role does not have the {permission!r} permission")
                abort(403)
            return view(*args, **kwargs)

        return wrapped

    return decorate


def record(action: str, target: str = "", **details) -> None:
    """Add an entry to the audit log for the signed-in user."""
    audit.record(get_kb().store, current_actor(), action, target, details)


def record_note_search(response) -> None:
    """Log a search that looked for or found customer notes (searches of guidance alone are nobody's business)."""
    notes = [r.doc_id for r in response.results if r.kind == NOTE]
    if notes or response.filters.kind == NOTE:
        record(audit.SEARCH, response.query, notes=notes)


def record_note_answer(kb, answer) -> None:
    """Log a question whose answer or consulted passages came from customer notes."""
    table = kb.indexes.table
    notes = [c.doc_id for c in answer.citations
             if (info := table.docs.get(c.doc_id)) is not None and info.kind == NOTE]
    if notes:
        record(audit.ASK, answer.question, notes=notes)


# -- signing in ------------------------------------------------------------------


def account_locked(username: str) -> bool:
    """Whether sign-ins as `username` are refused for now: too many failures since the window began
    or an admin last unlocked the account."""
    store = get_kb().store
    unlocked = audit.last_at(store, audit.USER_UNLOCK, username)
    return audit.count_recent(store, LOGIN_FAILED, THROTTLE_WINDOW, target=username,
                              after=unlocked) >= THROTTLE_FAILURES


def _throttled(username: str, address: str) -> bool:
    """Whether a sign-in as `username` from `address` is refused for now (see the module's description)."""
    store = get_kb().store
    if account_locked(username):
        return True
    by_address = audit.count_recent(store, LOGIN_FAILED, THROTTLE_WINDOW, actor=f"address:{address}")
    if by_address < THROTTLE_FAILURES_PER_ADDRESS:
        return False
    known_here = audit.count_recent(store, LOGIN, KNOWN_ADDRESS_WINDOW, actor=f"user:{username}",
                                    target=f"address:{address}")
    return known_here == 0


def _safe_next(target: str | None) -> str:
    """Only a path on this site: never send someone elsewhere after signing in."""
    return local_path(target) or url_for("pages.home")


@bp.route("/login", methods=["GET", "POST"])
def login():
    form = LoginForm()
    error, status = None, 200
    if request.method == "POST":
        username = (form.username.data or "").strip().lower()
        address = request.remote_addr or "unknown"
        store = get_kb().store
        if _throttled(username, address):
            error, status = _("Too many failed sign-ins. Wait a quarter of an hour and try again."), 429
        elif form.validate_on_submit():
            account = accounts.authenticate(store, username, form.password.data)
            if account is not None:
                session.clear()
                login_user(SignedInUser(account, accounts.new_session_id()))
                session.permanent = True
                audit.record(store, f"user:{account.username}", LOGIN, f"address:{address}", {"address": address})
                return redirect(_safe_next(request.args.get("next")), code=303)
            audit.record(store, f"address:{address}", LOGIN_FAILED, username, {})
            error, status = _("Wrong user name or password."), 401
        else:
            error, status = SIGN_IN, 400
    return render_template("login.html", form=form, error=error), status


@bp.post("/logout")
def logout():
    if not LogoutForm().validate_on_submit():
        abort(400)
    if current_user.is_authenticated and current_user.session_id:
        accounts.end_session(get_kb().store, current_user.session_id,
                             current_app.permanent_session_lifetime)
    logout_user()
    session.clear()
    return redirect(url_for("auth.login"), code=303)


@bp.post("/account/sign-out-everywhere")
def sign_out_everywhere():
    if not SignOutEverywhereForm().validate_on_submit():
        abort(400)
    accounts.sign_out_everywhere(get_kb().store, current_user.account.id)
    logout_user()
    session.clear()
    return redirect(url_for("auth.login"), code=303)


# -- the account page: password and API tokens ----------------------------------------


@bp.route("/account")
def account():
    return _account_page()


def _account_page(new_token: str | None = None, error: str | None = None, status: int = 200):
    store = get_kb().store
    tokens = accounts.list_tokens(store, current_user.account.id)
    return render_template("account.html", tokens=tokens, new_token=new_token, error=error,
                           token_form=TokenForm(formdata=None), password_form=PasswordForm(formdata=None),
                           min_password=accounts.MIN_PASSWORD_CHARS), status


@bp.post("/account/tokens")
def create_token():
    form = TokenForm()
    if not form.validate_on_submit():
        return _account_page(error=TOKEN_NAME, status=400)
    _info, token = accounts.create_token(get_kb().store, current_user.account.id, form.name.data)
    return _account_page(new_token=token, status=201)


@bp.post("/account/tokens/<int:token_id>/revoke")
def revoke_token(token_id: int):
    if not RevokeTokenForm().validate_on_submit():
        abort(400)
    if not accounts.revoke_token(get_kb().store, current_user.account.id, token_id):
        abort(404)
    return redirect(url_for("auth.account"), code=303)


@bp.post("/account/password")
def change_password():
    form = PasswordForm()
    store = get_kb().store
    me = current_user.account
    if not form.validate_on_submit():
        return _account_page(error=NEW_PASSWORD, status=400)
    if accounts.authenticate(store, me.username, form.current.data) is None:
        return _account_page(error=_("The current password is wrong."), status=400)
    updated = accounts.set_password(store, me.username, form.new.data)
    login_user(SignedInUser(updated, current_user.session_id))  # this browser stays signed in; every other session ends
    flash(_("Password changed. Every other session has been signed out."))
    return redirect(url_for("auth.account"), code=303)

