"""The portal's pages: home, search, document, ask, add knowledge. Server-rendered, one call into `kb` each."""

from __future__ import annotations

from dataclasses import dataclass, replace

from flask import Blueprint, abort, make_response, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from markupsafe import Markup, escape

from indexer.queue import queue_uploads
from indexer.uploads import add_pasted_text, ingest_upload, split_topics, upload_choices
from kb.documents import GUIDANCE, NOTE, short_source
from kb.errors import Forbidden, InvalidInput, KBError
from kb.search.answer import answer_question
from kb.search.parallel import also_in
from kb.search.snippets import merge_spans
from kb.search.types import EmptyQueryError
from kb.services import audit, searches
from kb.services.accounts import ADMIN, AGENT, TRAINER
from kb.services.catalog import PassageSpan, counts, get_document, list_documents, related_documents
from kb.services.topics import list_topics
from webapp import labels
from webapp.auth import current_viewer, record, record_note_answer, record_note_search, require
from webapp.current import get_kb
from webapp.downloads import original_response
from webapp.errors import error_page
from webapp.forms import AddForm, AskForm, SearchForm, first_error
from webapp.i18n import CONTENT_LANGUAGE, select_locale
from webapp.params import LANGUAGES
from webapp.rendering import Mark, structured_html

bp = Blueprint("pages", __name__)

PAGE_SIZE = 10
RECENT = 8
# Names of the knowledge's languages, in each interface language's words are in the catalogs.
LANGUAGE_NAMES = {"th": "ไทย", "zh": "中文", "en": "English"}


bp.add_app_template_filter(short_source, "short_source")


@bp.app_template_filter("marked")
def marked(text: str, spans: list) -> Markup:
    """`text` escaped, with the given (start, end) spans inside <mark>."""
    out, last = [], 0
    for start, end in spans or []:
        out += [escape(text[last:start]), Markup("<mark>"), escape(text[start:end]), Markup("</mark>")]
        last = end
    out.append(escape(text[last:]))
    return Markup("").join(out)


@bp.app_template_filter("structured")
def structured(text: str) -> Markup:
    """A passage with its lists and tables as HTML (escaped text, see webapp.rendering)."""
    return structured_html(text or "")


@bp.app_template_filter("crumbs")
def crumbs(path: list) -> str:
    """A heading path as one line: "Returns guide › Refunds › Store credit"."""
    return " › ".join(part for part in path or [] if part)


@bp.app_context_processor
def page_helpers():
    def url_with(**changes) -> str:
        """This page's URL with some query arguments changed (None removes one)."""
        args = request.args.to_dict(flat=False)
        for name, value in changes.items():
            if value is None:
                args.pop(name, None)
            else:
                args[name] = value if isinstance(value, list) else [value]
        return url_for(request.endpoint or "pages.home", **(request.view_args or {}), **args)

    return {"url_with": url_with, "language_names": LANGUAGE_NAMES, "kind_names": kind_names()}


def kind_names() -> dict[str, str]:
    return {kind: str(name) for kind, name in labels.KINDS.items()}


@bp.route("/")
def home():
    kb = get_kb()
    viewer = current_viewer()
    kb.refresh()
    stats = counts(kb.engine, viewer)
    recent, total = list_documents(kb.engine, limit=RECENT, viewer=viewer)
    role = current_user.account.role
    return render_template(
        "home.html", stats=stats, recent=recent, total=total, role=role,
        my_searches=searches.recent_searches(kb.store, current_user.account.username),
        popular_topics=list_topics(kb.engine, viewer=viewer)[:POPULAR_TOPICS],
        gaps=searches.knowledge_gaps(kb.store) if role in (TRAINER, ADMIN) else None,
    )


POPULAR_TOPICS = 8
KIND_COOKIE = "results_kind"
KIND_COOKIE_MAX_AGE = 365 * 24 * 3600


@bp.route("/search")
def search():
    kb = get_kb()
    form = SearchForm(page_size=PAGE_SIZE)
    scope = "mine" if form.scope.data == "mine" else "all"
    error, response, params, tabs, also = None, None, None, None, {}
    if not form.validate():
        error = first_error(form)
    else:
        params = form.params
        if scope == "mine" and not params.filters.lang:
            params.filters = replace(params.filters, lang=CONTENT_LANGUAGE[select_locale()])
        if params.query.strip():
            try:
                tabs = _kind_tabs(kb, params) if current_user.can("notes") else None
                if tabs is not None:
                    params.filters = replace(params.filters, kind=tabs.current)
                response = kb.search(params.query, k=params.k, mode=params.mode, filters=params.filters,
                                     offset=params.offset, facets=True, viewer=current_viewer())
            except EmptyQueryError:
                error = _("Type a few words to search for.")
            else:
                record_note_search(response)
                if params.offset == 0:
                    searches.record_search(kb.store, current_user.account.username, params.query, searches.SEARCH,
                                           len(response.results), response.query_lang)
                also = also_in(kb.engine, [hit.chunk_id for hit in response.results], current_viewer().role)
    status = 400 if error and form.q.data.strip() else 200
    page = render_template("search.html", response=response, params=params, error=error, page=form.page_number(),
                           scope=scope, languages=LANGUAGES, tabs=tabs, also=also)
    reply = make_response(page, status)
    if tabs is not None and tabs.chosen:
        reply.set_cookie(KIND_COOKIE, tabs.current, max_age=KIND_COOKIE_MAX_AGE, samesite="Lax", httponly=True,
                         secure=request.is_secure)
    return reply


@dataclass
class KindTabs:
    """Guidance and customer notes apart: how many of each match, and which one is shown."""

    counts: dict[str, int]
    current: str
    chosen: bool  # picked by the reader now (a tab, a link with kind=): remembered for their next searches


def _kind_tabs(kb, params) -> KindTabs:
    """Which kind a results page shows: the one asked for, else the reader's last choice, else their role's.

    Agents start on customer notes (cases), everyone else on guidance, so a guidance
    question never finds its answer pushed off the first screen by notes. A kind that
    matches nothing gives way to the other when the reader did not ask for it.
    """
    asked = params.filters.kind
    overview = kb.search(params.query, k=1, mode=params.mode, filters=replace(params.filters, kind=None),
                         facets=True, viewer=current_viewer(), snippets=False)
    found = (overview.facets or {}).get("kind", {}) if overview.results else {}
    counts = {kind: int(found.get(kind, 0)) for kind in (GUIDANCE, NOTE)}
    if asked in counts:
        return KindTabs(counts, asked, True)
    remembered = request.cookies.get(KIND_COOKIE)
    current = remembered if remembered in counts else NOTE if current_user.account.role == AGENT else GUIDANCE
    other = NOTE if current == GUIDANCE else GUIDANCE
    if counts[current] == 0 and counts[other] > 0:
        current = other
    return KindTabs(counts, current, False)


@bp.route("/documents/<int:doc_id>")
def document(doc_id: int):
    return render_document(doc_id)


@bp.route("/documents/<int:doc_id>/original")
def original(doc_id: int):
    try:
        return original_response(doc_id)
    except Forbidden:
        return error_page(403, _("The original file holds documents or personal data that your role may not see. "
                                 "Read the document on this page instead."))


def render_document(doc_id: int, status: int = 200, **extra):
    """The document page (404 when there is no such document); `extra` goes to the template."""
    kb = get_kb()
    viewer = current_viewer()
    view = get_document(kb.engine, doc_id, viewer)
    if view is None:
        abort(404)
    if view.note is not None:
        record(audit.VIEW, f"document {doc_id}", note_id=view.note["note_id"])
    chunk_id = request.args.get("passage", type=int)
    passage = next((p for p in view.passages if p.chunk_id == chunk_id), None)
    start, end = request.args.get("start", type=int), request.args.get("end", type=int)
    if start is not None and end is not None and 0 <= start < end <= len(view.text):
        passage = PassageSpan(chunk_id or 0, start, end, view.summary.lang)  # an answer's exact sentences
    marks = _document_marks(kb, view.text, passage, request.args.get("q", ""))
    doc_html = structured_html(view.text, view.headings, marks, passage_label=_("The passage that matched"),
                               title=view.summary.title)
    related = related_documents(kb.engine, doc_id, k=5, viewer=viewer)
    return render_template("document.html", doc=view, doc_html=doc_html, passage=passage, related=related,
                           **extra), status


def _document_marks(kb, text: str, passage, query: str) -> list[Mark]:
    """The matched passage, and the query's words marked inside it (exact spans of the text as written)."""
    if passage is None:
        return []
    inside = text[passage.start : passage.end]
    terms = set(kb.analyzer.term_texts(query)) if query.strip() else set()
    merged = merge_spans((t.start, t.end) for t in kb.analyzer.terms(inside) if t.text in terms)
    return [Mark(passage.start, passage.end, passage=True),
            *(Mark(passage.start + a, passage.start + b) for a, b in merged)]


@bp.route("/ask")
def ask():
    kb = get_kb()
    form = AskForm()
    question = form.q.data
    result, error = None, None
    if not form.validate():
        return render_template("ask.html", question=question[:200], result=None, error=first_error(form)), 400
    if question.strip():
        try:
            result = answer_question(kb.engine, question, viewer=current_viewer())
            record_note_answer(kb, result)
            searches.record_search(kb.store, current_user.account.username, question, searches.ASK,
                                   int(result.answer is not None), result.question_lang)
        except EmptyQueryError:
            error = _("Type a question.")
    return render_template("ask.html", question=question, result=result, error=error)


@bp.route("/add", methods=["GET", "POST"])
@require("edit")
def add():
    kb = get_kb()
    form = AddForm()
    outcomes, job = [], None
    if form.is_submitted():
        if not form.validate():
            return _add_page(kb, [], None, first_error(form)), 400
        uploads = [(upload.filename, upload.read()) for upload in form.uploads()]
        visibility, topics = form.visibility.data or None, split_topics(form.topics.data)
        try:
            upload_choices(visibility, topics)
        except InvalidInput as exc:
            return _add_page(kb, [], None, str(exc)), 400
        if uploads and kb.engine.settings.queue_url:
            try:
                outcomes, job = queue_uploads(kb.engine, uploads, current_viewer(), visibility, topics)
            except KBError as exc:
                return _add_page(kb, [], None, str(exc)), 503
        else:
            outcomes = [ingest_upload(kb.engine, name, data, current_viewer(), visibility, topics)
                        for name, data in uploads]
        text = form.text.data
        if text.strip():
            lang = form.lang.data if form.lang.data in LANGUAGES else None
            tags = split_topics(form.tags.data)
            outcomes.append(add_pasted_text(kb.engine, text, form.title.data, lang, tags,
                                            uploader=current_viewer(), visibility=visibility))
    return _add_page(kb, outcomes, job, None)


# What the Add page offers as "who may read it" (each shown only to those who may give it).
VISIBILITY_CHOICES = ("internal", "partner", "agent,admin", "trainer,admin", "admin")


def _add_page(kb, outcomes, job, error: str | None) -> str:
    viewer = current_viewer()
    return render_template("add.html", outcomes=outcomes, job=job, error=error,
                           queued=bool(kb.engine.settings.queue_url),
                           visibility_choices=[v for v in VISIBILITY_CHOICES if viewer.can_grant(v)])
