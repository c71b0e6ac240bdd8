"""Trainers' collections: pages and API to gather, order, annotate, share and export workshop passages.

Every page works without JavaScript: each change is a small POST form that
redirects back (303) to where it was made. Until accounts exist, everyone may
edit every collection; a collection is shown read-only to anyone holding its
share link (`/shared/<token>`), which stops working when sharing is turned off.
"""

from __future__ import annotations

import base64
import hashlib
import re

from flask import (
    Blueprint,
    Response,
    abort,
    g,
    jsonify,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import force_locale
from flask_babel import gettext as _
from flask_login import current_user

from kb.services import audit
from kb.services.collections import (
    LANGUAGES,
    MAX_WHOLE_DOCUMENT_CHARS,
    CollectionError,
    CollectionView,
    NotFoundError,
    add_item,
    annotate_item,
    collection_owner,
    create_collection,
    delete_collection,
    get_collection,
    list_collections,
    move_item,
    parallel_passages,
    remove_item,
    reorder_items,
    set_sharing,
    shared_collection,
    update_collection,
)
from kb.services.handouts import HandoutLabels, build_handout, to_docx, to_markdown
from webapp import schemas
from webapp.apispec import Answers, errors, spec
from webapp.auth import current_actor as actor_id
from webapp.auth import current_viewer, record
from webapp.current import get_kb, public_url_for
from webapp.downloads import content_disposition
from webapp.errors import error_page, error_response
from webapp.forms import (
    AnnotationForm,
    CollectForm,
    DeleteCollectionForm,
    EditCollectionForm,
    MoveItemForm,
    NewCollectionForm,
    ParallelPassageForm,
    RemoveItemForm,
    ShareForm,
    first_error,
    number,
)
from webapp.i18n import CONTENT_LANGUAGE, select_locale
from webapp.params import BadParameter, unknown_value
from webapp.redirects import local_path

bp = Blueprint("collections", __name__)
api = Blueprint("collections_api", __name__, url_prefix="/api/v1/collections")

# The last collection something was added to (or opened): the one-click buttons add to it.
CURRENT_COOKIE = "kb_collection"
CURRENT_COOKIE_MAX_AGE = 365 * 24 * 3600
EXPORT_FORMATS = {
    "md": ("text/markdown; charset=utf-8", "md"),
    "html": ("text/html; charset=utf-8", "html"),
    "docx": ("application/vnd.openxmlformats-officedocument.wordprocessingml.document", "docx"),
}
# The interface locale a handout's labels are written in, per workshop language.
HANDOUT_LOCALE = {"th": "th", "zh": "zh_Hans", "en": "en"}


# -- shared by the pages and the API ------------------------------------------------


def export_response(view: CollectionView, fmt: str | None) -> Response:
    """The collection as a Markdown, printable HTML or Word file, named after the collection."""
    if fmt not in EXPORT_FORMATS:
        raise BadParameter("format", unknown_value(fmt, EXPORT_FORMATS))
    content_type, extension = EXPORT_FORMATS[fmt]
    record(audit.EXPORT, f"collection {view.id}", format=fmt, items=len(view.items))
    handout = build_handout(
        view,
        document_url=lambda doc_id: public_url_for("pages.document", doc_id=doc_id),
        passage_url=lambda item: public_url_for("pages.document", doc_id=item.doc_id, start=item.start,
                                                end=item.end) + "#passage",
    )
    with force_locale(_handout_locale(view.lang)):
        labels = HandoutLabels(note=_("Note"), source=_("Source"), sources=_("Sources"),
                               document_gone=_("no longer in the knowledge base"))
        if fmt == "md":
            body: str | bytes = to_markdown(handout, labels)
        elif fmt == "docx":
            body = to_docx(handout, labels)
        else:
            body = render_template("handout.html", handout=handout, labels=labels,
                                   handout_lang=view.lang or CONTENT_LANGUAGE[select_locale()])
    response = Response(body, content_type=content_type)
    if fmt == "html":
        response.headers["Content-Security-Policy"] = handout_policy(body)
    disposition = "inline" if fmt == "html" else "attachment"  # the HTML handout opens ready to print
    response.headers["Content-Disposition"] = content_disposition(disposition, view.name, f"collection-{view.id}", extension)
    return response


def handout_policy(html: str) -> str:
    """A content security policy for the printable handout: its own <style> (by hash) and nothing else.

    The handout carries its style inside it, so that a saved copy prints the
    same; the portal's policy allows only style files, so this page says
    exactly which inline style may apply, and allows no script at all.
    """
    digests = [base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
               for style in re.findall(r"<style>(.*?)</style>", html, re.S)]
    styles = " ".join(f"'sha256-{digest}'" for digest in digests) or "'none'"
    return f"default-src 'none'; style-src {styles}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"


def _handout_locale(lang: str) -> str:
    current = select_locale()
    if not lang or CONTENT_LANGUAGE[current] == lang:
        return current  # keeps Traditional Chinese for a Traditional Chinese reader
    return HANDOUT_LOCALE[lang]


def with_share_url(body: dict, view: CollectionView) -> dict:
    body["share_url"] = (public_url_for("collections.shared", token=view.share_token)
                         if view.share_token else None)
    return body


# -- who may use which collection ------------------------------------------------------

SHARED_ENDPOINTS = {"collections.shared", "collections.shared_export"}


def my_collections_owner() -> str | None:
    """Whose collections this user works on: their own; an admin's, everyone's (None)."""
    return None if current_user.can("users") else actor_id()


def owns(collection_id: int) -> bool:
    owner = my_collections_owner()
    if owner is None:
        return True
    return collection_owner(get_kb().engine, collection_id) == owner


@bp.before_request
@api.before_request
def check_access():
    """Collections are for roles with the `collections` permission, each working on their own.

    A share link is the one way to let someone else read one (any signed-in
    user; they see only the items their role may see). Anyone else's
    collection answers 404, as a missing one does.
    """
    if not current_user.is_authenticated or request.endpoint in SHARED_ENDPOINTS:
        return None
    if not current_user.can("collections"):
        if request.blueprint == api.name:
            return error_response(403, "forbidden", "your role cannot make collections; open a share link instead")
        abort(403)
    collection_id = (request.view_args or {}).get("collection_id")
    if collection_id is None and request.endpoint == "collections.add_from_page":
        raw = request.form.get("collection", "")
        collection_id = int(raw) if raw.isdigit() else None
    if collection_id is not None and not owns(collection_id):
        if request.blueprint == api.name:
            return error_response(404, "not_found", f"no collection with id {collection_id}")
        abort(404)
    return None


# -- the one-click "Add to collection" control (search, answers, documents) -----------


@bp.app_context_processor
def collection_helpers():
    return {"collection_choices": collection_choices, "max_whole_document_chars": MAX_WHOLE_DOCUMENT_CHARS}


class CollectionChoices:
    """The collections an "Add" button can add to, which one it adds to, and what that one holds.

    It adds to the collection last added to or opened in this browser (a
    cookie), else to this actor's most recently changed one, else to a new one.
    """

    def __init__(self) -> None:
        kb = get_kb()
        self.collections = list_collections(kb.engine, my_collections_owner())
        remembered = request.cookies.get(CURRENT_COOKIE, "")
        self.current = next((c for c in self.collections if str(c.id) == remembered), None)
        if self.current is None:  # this browser's most recently changed one; else "New collection"
            self.current = next((c for c in self.collections if c.owner == actor_id()), None)
        items = get_collection(kb.engine, self.current.id, current_viewer()).items if self.current else []
        self._held = {(i.doc_id, i.start, i.end) for i in items}

    def holds(self, doc_id: int, start: int | None, end: int | None) -> bool:
        return (doc_id, start, end) in self._held


def collection_choices() -> CollectionChoices:
    if "collection_choices" not in g:
        g.collection_choices = CollectionChoices()
    return g.collection_choices


@bp.post("/collections/add")
def add_from_page():
    """Add a passage from a search result, an answer or a document, then go back there."""
    form = CollectForm()
    if not form.validate_on_submit():
        return error_page(400, first_error(form))
    kb = get_kb()
    doc_id, chunk_id, start, end = number(form.doc_id), number(form.chunk_id), number(form.start), number(form.end)
    try:
        if form.collection.data == "new":
            name = form.new_name.data.strip()[:200] or _("New collection")
            collection_id = create_collection(kb.engine, name, lang=CONTENT_LANGUAGE[select_locale()],
                                              owner=actor_id()).id
            try:
                add_item(kb.engine, collection_id, doc_id, chunk_id, start, end, viewer=current_viewer())
            except (CollectionError, NotFoundError):
                delete_collection(kb.engine, collection_id)  # nothing is left behind by a failed add
                raise
        else:
            collection_id = number(form.collection)
            add_item(kb.engine, collection_id, doc_id, chunk_id, start, end, viewer=current_viewer())
    except NotFoundError as exc:  # says what is missing (the document, the passage), unlike a missing page
        return error_page(404, str(exc))
    anchor = re.sub(r"[^A-Za-z0-9_-]", "", form.anchor.data)
    back = local_path(form.next.data) or url_for("collections.collection", collection_id=collection_id)
    response = redirect(back + (f"#{anchor}" if anchor else ""), code=303)
    remember_current(response, collection_id)
    return response


def remember_current(response: Response, collection_id: int) -> None:
    response.set_cookie(CURRENT_COOKIE, str(collection_id), max_age=CURRENT_COOKIE_MAX_AGE, samesite="Lax",
                        httponly=True)


# -- pages --------------------------------------------------------------------------


@bp.route("/collections", methods=["GET", "POST"])
def collections():
    kb = get_kb()
    form = NewCollectionForm()
    error, values = None, {}
    if form.is_submitted():
        values = request.form  # shown again as typed
        if not form.validate():
            error = first_error(form)
        else:
            view = create_collection(kb.engine, form.name.data, form.description.data, form.lang.data,
                                     owner=actor_id())
            response = redirect(url_for("collections.collection", collection_id=view.id), code=303)
            remember_current(response, view.id)
            return response
    return render_template("collections.html", collections=list_collections(kb.engine, my_collections_owner()), error=error, values=values,
                           languages=LANGUAGES), 400 if error else 200


def _collection(collection_id: int) -> CollectionView:
    return get_collection(get_kb().engine, collection_id, current_viewer())


def render_collection(view: CollectionView, editable: bool, error: str | None = None, status: int = 200):
    kb = get_kb()
    parallels = parallel_passages(kb.engine, view.items, viewer=current_viewer())
    held = {(i.doc_id, i.start, i.end) for i in view.items}
    if editable:
        exports = {fmt: url_for("collections.export", collection_id=view.id, format=fmt) for fmt in EXPORT_FORMATS}
    else:
        exports = {fmt: url_for("collections.shared_export", token=view.share_token, format=fmt)
                   for fmt in EXPORT_FORMATS}
    share_url = public_url_for("collections.shared", token=view.share_token) if view.share_token else None
    return render_template("collection.html", collection=view, editable=editable, parallels=parallels, held=held,
                           exports=exports, share_url=share_url, error=error, languages=LANGUAGES), status


@bp.get("/collections/<int:collection_id>")
def collection(collection_id: int):
    response = make_response(render_collection(_collection(collection_id), editable=True))
    remember_current(response, collection_id)
    return response


def _back_to(collection_id: int, item_id: int | None = None):
    anchor = f"#item-{item_id}" if item_id else ""
    return redirect(url_for("collections.collection", collection_id=collection_id) + anchor, code=303)


@bp.post("/collections/<int:collection_id>/edit")
def edit(collection_id: int):
    form = EditCollectionForm()
    if not form.validate_on_submit():
        return render_collection(_collection(collection_id), True, first_error(form), 400)
    update_collection(get_kb().engine, collection_id, form.name.data, form.description.data, form.lang.data)
    return _back_to(collection_id)


@bp.post("/collections/<int:collection_id>/delete")
def delete(collection_id: int):
    view = _collection(collection_id)
    form = DeleteCollectionForm()
    if not form.validate_on_submit():
        return render_collection(view, True, first_error(form), 400)
    delete_collection(get_kb().engine, collection_id)
    return redirect(url_for("collections.collections"), code=303)


@bp.post("/collections/<int:collection_id>/items/<int:item_id>/move")
def move(collection_id: int, item_id: int):
    form = MoveItemForm()
    if not form.validate_on_submit():
        abort(400)
    steps = {"up": -1, "down": 1, "top": -10**6, "bottom": 10**6}[form.direction.data]
    move_item(get_kb().engine, collection_id, item_id, steps)
    return _back_to(collection_id, item_id)


@bp.post("/collections/<int:collection_id>/items/<int:item_id>/annotation")
def annotate(collection_id: int, item_id: int):
    form = AnnotationForm()
    if not form.validate_on_submit():
        return render_collection(_collection(collection_id), True, first_error(form), 400)
    annotate_item(get_kb().engine, collection_id, item_id, form.annotation.data)
    return _back_to(collection_id, item_id)


@bp.post("/collections/<int:collection_id>/items/<int:item_id>/remove")
def remove(collection_id: int, item_id: int):
    if not RemoveItemForm().validate_on_submit():
        abort(400)
    remove_item(get_kb().engine, collection_id, item_id)
    return _back_to(collection_id)


@bp.post("/collections/<int:collection_id>/items/<int:item_id>/parallel")
def add_parallel(collection_id: int, item_id: int):
    """Add a parallel passage (the same guidance in another language) right after its item."""
    form = ParallelPassageForm()
    if not form.validate_on_submit():
        return render_collection(_collection(collection_id), True, first_error(form), 400)
    try:
        outcome = add_item(get_kb().engine, collection_id, number(form.doc_id), number(form.chunk_id),
                           after_item_id=item_id)
    except CollectionError as exc:  # shown on the collection's page
        return render_collection(_collection(collection_id), True, str(exc), 400)
    return _back_to(collection_id, outcome.item.id)


@bp.post("/collections/<int:collection_id>/share")
def share(collection_id: int):
    form = ShareForm()
    if not form.validate_on_submit():
        abort(400)
    set_sharing(get_kb().engine, collection_id, form.share.data == "on")
    return redirect(url_for("collections.collection", collection_id=collection_id) + "#sharing", code=303)


@bp.get("/collections/<int:collection_id>/export")
def export(collection_id: int):
    return export_response(_collection(collection_id), request.args.get("format"))


@bp.get("/shared/<token>")
def shared(token: str):
    return render_collection(shared_collection(get_kb().engine, token, current_viewer()), editable=False)


@bp.get("/shared/<token>/export")
def shared_export(token: str):
    return export_response(shared_collection(get_kb().engine, token, current_viewer()), request.args.get("format"))


# -- API ----------------------------------------------------------------------------


def _collection_body(view: CollectionView, parallel: bool = False) -> dict:
    body = with_share_url(view.to_dict(), view)
    if parallel:
        found = parallel_passages(get_kb().engine, view.items, viewer=current_viewer())
        for item in body["items"]:
            item["parallel"] = [p.to_dict() for p in found.get(item["id"], [])]
    return body


COLLECTION = Answers(HTTP_200=schemas.Collection, **errors(400, 404))


@api.post("")
@spec.validate(json=schemas.NewCollection, resp=Answers(HTTP_201=schemas.Collection, **errors(400)),
               tags=["collections"])
def api_create():
    """Create a collection for a workshop."""
    fields = request.context.json
    view = create_collection(get_kb().engine, fields.name, fields.description, fields.lang, owner=actor_id())
    return jsonify(_collection_body(view)), 201


@api.get("")
@spec.validate(resp=Answers(HTTP_200=schemas.CollectionList), tags=["collections"])
def api_list():
    """Collections, the most recently changed first, without their items."""
    return jsonify({"collections": [with_share_url(c.to_dict(items=False), c) for c in list_collections(get_kb().engine, my_collections_owner())]})


@api.get("/<int:collection_id>")
@spec.validate(query=schemas.CollectionQuery, resp=COLLECTION, tags=["collections"])
def api_get(collection_id: int):
    """One collection with its items."""
    parallel = request.context.query.parallel == "1"
    return jsonify(_collection_body(get_collection(get_kb().engine, collection_id, current_viewer()), parallel))


@api.patch("/<int:collection_id>")
@spec.validate(json=schemas.CollectionFields, resp=COLLECTION, tags=["collections"])
def api_edit(collection_id: int):
    """Change a collection's name, description or language (fields left out stay as they are)."""
    fields = request.context.json
    view = update_collection(get_kb().engine, collection_id, fields.name, fields.description, fields.lang)
    return jsonify(_collection_body(view))


@api.delete("/<int:collection_id>")
@spec.validate(resp=Answers(HTTP_200=schemas.CollectionDeleted, **errors(404)), tags=["collections"])
def api_delete(collection_id: int):
    """Delete a collection (its documents stay)."""
    delete_collection(get_kb().engine, collection_id)
    return jsonify({"deleted": collection_id})


@api.post("/<int:collection_id>/items")
@spec.validate(json=schemas.NewItem, resp=Answers(HTTP_201=schemas.CollectionItem, HTTP_200=schemas.CollectionItem,
                                                   **errors(400, 404)), tags=["collections"])
def api_add_item(collection_id: int):
    """Add a passage: a chunk, exact offsets (an answer), or a short document whole.

    The text is copied from the document. A span already in the collection is not added again: the answer is
    that item, with status 200.
    """
    item = request.context.json
    outcome = add_item(get_kb().engine, collection_id, item.doc_id, item.chunk_id, item.start, item.end,
                       item.annotation, viewer=current_viewer())
    return jsonify(outcome.item.to_dict()), 201 if outcome.created else 200


@api.patch("/<int:collection_id>/items/<int:item_id>")
@spec.validate(json=schemas.Annotation, resp=Answers(HTTP_200=schemas.CollectionItem, **errors(400, 404)),
               tags=["collections"])
def api_annotate(collection_id: int, item_id: int):
    """Annotate an item."""
    annotation = request.context.json.annotation
    return jsonify(annotate_item(get_kb().engine, collection_id, item_id, annotation).to_dict())


@api.delete("/<int:collection_id>/items/<int:item_id>")
@spec.validate(resp=COLLECTION, tags=["collections"])
def api_remove_item(collection_id: int, item_id: int):
    """Remove an item."""
    return jsonify(_collection_body(remove_item(get_kb().engine, collection_id, item_id)))


@api.put("/<int:collection_id>/order")
@spec.validate(json=schemas.NewOrder, resp=COLLECTION, tags=["collections"])
def api_reorder(collection_id: int):
    """Put the items in a new order (every item id exactly once)."""
    return jsonify(_collection_body(reorder_items(get_kb().engine, collection_id, request.context.json.items)))


@api.post("/<int:collection_id>/share")
@spec.validate(resp=COLLECTION, tags=["collections"])
def api_share(collection_id: int):
    """Turn the read-only share link on (share_url)."""
    return jsonify(_collection_body(set_sharing(get_kb().engine, collection_id, True)))


@api.delete("/<int:collection_id>/share")
@spec.validate(resp=COLLECTION, tags=["collections"])
def api_unshare(collection_id: int):
    """Turn sharing off: the old link stops working."""
    return jsonify(_collection_body(set_sharing(get_kb().engine, collection_id, False)))


@api.get("/<int:collection_id>/export")
@spec.validate(query=schemas.ExportQuery, resp=Answers("HTTP_200", **errors(400, 404)), tags=["collections"])
def api_export(collection_id: int):
    """The collection as a handout file, md, html or docx (Content-Disposition names it after the collection)."""
    view = get_collection(get_kb().engine, collection_id, current_viewer())
    return export_response(view, request.context.query.format)
