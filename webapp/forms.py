"""The portal's HTML forms: one Flask-WTF class for each, with its fields and the checks the server makes.

Every <form> in webapp/templates posts (or, for GET, links) to a view that
validates it through its class here. The templates write the inputs
themselves, so the markup is what it was; field names are the request
parameters (`from` and `to` are Python keywords, hence `name=`).

* A `PostForm` changes something and carries the session's CSRF token. The
  guard in webapp.auth checks the token of every cookie-authenticated request
  before the view runs (Flask-WTF then does not check it twice); a program
  calling with a bearer token needs none: it sends no cookie another site
  could ride on. A `SessionForm` (signing in, tokens, password) checks it
  even then, so a bearer token cannot be used to make tokens or change the
  password.
* A `QueryForm` (search, filters) is a GET form: its values are in the URL,
  read from `request.args`, and it has no CSRF token.

The checks are those the server made before these classes existed, no more
(an input's `maxlength` stays in the markup, where the browser applies it).
Messages the forms add are Flask-Babel lazy strings. A value refused by a
check the JSON API shares (webapp.params, the services) keeps that check's
message, the same on a page as in the API.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import current_app, g, request

# Lazy: these messages are made once, with the classes, and translated when shown.
from flask_babel import lazy_gettext as _
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired, MultipleFileField
from werkzeug.datastructures import MultiDict
from werkzeug.utils import cached_property
from wtforms import Field, PasswordField, StringField, TextAreaField
from wtforms.validators import AnyOf, DataRequired, Length, ValidationError

from kb.documents import NOTE_FIELDS
from kb.errors import InvalidInput
from kb.search.query import MAX_QUERY_CHARS
from kb.services import accounts
from kb.services.cases import CaseFilters
from kb.services.collections import MAX_ANNOTATION_CHARS, MAX_DESCRIPTION_CHARS, MAX_NAME_CHARS, clean_lang
from webapp.params import SearchParams, case_filters, number_in_range, search_params, whole_number

MOVES = ("up", "down", "top", "bottom")
AUDIT_PAGES = 100_000


class PostForm(FlaskForm):
    """A form that changes something; its CSRF token is checked unless the call is token-authenticated."""

    class Meta:
        @cached_property
        def csrf(self) -> bool:
            return current_app.config.get("WTF_CSRF_ENABLED", True) and not g.get("token_authenticated", False)


class SessionForm(PostForm):
    """A form only a signed-in browser may send: signing in, making a token, changing the password.

    Its CSRF token is checked on every call, so a program holding a bearer
    token cannot make more tokens or change the password with it.
    """

    class Meta:
        @cached_property
        def csrf(self) -> bool:
            return current_app.config.get("WTF_CSRF_ENABLED", True)


class QueryForm(FlaskForm):
    """A GET form: values from the URL (`request.args`), no CSRF token (it changes nothing)."""

    class Meta:
        csrf = False

    def __init__(self, formdata=None, **kwargs) -> None:
        super().__init__(formdata=request.args if formdata is None else formdata, **kwargs)


def first_error(form: FlaskForm) -> str | None:
    """The first message of the first refused field, in the form's order, else the form's own."""
    for field in form:
        if field.errors:
            return str(field.errors[0])
    return str(form.form_errors[0]) if form.form_errors else None


def _refuse(form: FlaskForm, exc: InvalidInput) -> bool:
    """Put the message of a shared check on the field it names (else on the form); False, for `validate`."""
    field = next((f for f in form if f.name == getattr(exc, "name", None)), None)
    (field.errors if field is not None else form.form_errors).append(str(exc))
    return False


class Checked:
    """A field checked by a function the JSON API uses too (`check(value, name)`), refused with its message."""

    def __init__(self, check: Callable[[str | None, str], object]) -> None:
        self.check = check

    def __call__(self, form: FlaskForm, field: Field) -> None:
        try:
            self.check(field.data, field.name)
        except InvalidInput as exc:
            raise ValidationError(str(exc)) from None


def _required_number(raw: str | None, name: str) -> int | None:
    return whole_number(raw, name, required=True)


def number(field: Field) -> int | None:
    """A checked whole-number field's value (None when it was left empty)."""
    return whole_number(field.data, field.name)


class MultiStringField(Field):
    """Every value of a repeated parameter (`tag=a&tag=b`)."""

    def process_formdata(self, valuelist) -> None:
        self.data = list(valuelist)


def _collapse_spaces(value):
    return " ".join(value.split()) if isinstance(value, str) else value


# -- signing in and the account page (webapp.auth) -------------------------------------

# The message each of these forms shows, whatever was wrong (its CSRF token included).
SIGN_IN = _("Type your user name and password.")
TOKEN_NAME = _("Give the token a name that says where it is used.")
NEW_PASSWORD = _("The new password needs at least %(num)d characters.", num=accounts.MIN_PASSWORD_CHARS)


class LoginForm(SessionForm):
    username = StringField(validators=[DataRequired(SIGN_IN), Length(max=64, message=SIGN_IN)])
    password = PasswordField(validators=[DataRequired(SIGN_IN), Length(max=1000, message=SIGN_IN)])


class LogoutForm(PostForm):
    """The "Sign out" button on every page."""


class TokenForm(SessionForm):
    name = StringField(validators=[DataRequired(TOKEN_NAME), Length(max=100, message=TOKEN_NAME)])


class RevokeTokenForm(PostForm):
    """A token's "Revoke" button."""


class PasswordForm(SessionForm):
    current = PasswordField(validators=[DataRequired(NEW_PASSWORD)])
    new = PasswordField(validators=[DataRequired(NEW_PASSWORD),
                                    Length(min=accounts.MIN_PASSWORD_CHARS, max=1000, message=NEW_PASSWORD)])


class SignOutEverywhereForm(PostForm):
    """The "Sign out everywhere" button."""


# -- search, ask, add (webapp.pages) and topics (webapp.topics) ---------------------------


# Past this a query gets a message, never a "414 URI Too Long" (`kb serve` takes request lines of any length).
TOO_LONG = _("The text is too long: at most %(max)d characters.", max=MAX_QUERY_CHARS)


class SearchForm(QueryForm):
    """The search box (search page, home page) and the search page's date filter; `params` once valid."""

    q = StringField(default="", validators=[Length(max=MAX_QUERY_CHARS, message=TOO_LONG)])
    scope = StringField(default="all")
    page = StringField()
    lang = StringField()
    kind = StringField()
    tag = MultiStringField(default=list)
    product = StringField()
    status = StringField()
    channel = StringField()
    date_from = StringField(name="from")
    date_to = StringField(name="to")
    source = StringField()
    mode = StringField()

    def __init__(self, page_size: int = 10, **kwargs) -> None:
        super().__init__(**kwargs)
        self.page_size = page_size
        self.params: SearchParams | None = None

    def page_number(self) -> int:
        try:
            return max(1, min(int(self.page.data or 1), 1000))
        except ValueError:
            return 1

    def validate(self, extra_validators=None) -> bool:
        """Checked by `webapp.params.search_params`, as the API's search is; this page's paging."""
        if not super().validate(extra_validators):
            return False
        args = MultiDict([(f.name, f.data) for f in self if f.name != "tag" and f.data])
        args.setlist("tag", self.tag.data or [])
        args["k"], args["offset"] = str(self.page_size), str((self.page_number() - 1) * self.page_size)
        try:
            self.params = search_params(args, self.page_size)
        except InvalidInput as exc:
            return _refuse(self, exc)
        return True


class AskForm(QueryForm):
    q = StringField(default="", validators=[Length(max=MAX_QUERY_CHARS, message=TOO_LONG)])


class AddForm(PostForm):
    """Files to upload, or a text to paste (with its title, language and topics)."""

    files = MultipleFileField()
    title = StringField(default="")
    text = TextAreaField(default="")
    lang = StringField(default="")  # anything but th, zh or en means "detect it"
    tags = StringField(default="")
    visibility = StringField(default="")  # who may read what is added ("" : what each file says)
    topics = StringField(default="")  # topics for the uploaded files, separated by commas

    def uploads(self) -> list:
        return [f for f in self.files.data or [] if f and f.filename]

    def validate(self, extra_validators=None) -> bool:
        if not super().validate(extra_validators):
            return False
        if not self.uploads() and not (self.text.data or "").strip():
            self.form_errors.append(_("Choose a file or paste some text."))
            return False
        return True


class TopicsForm(PostForm):
    """A document's topics, separated by commas (checked by kb.services.topics when saved)."""

    topics = StringField(default="")


# -- collections (webapp.collections) --------------------------------------------------


class CollectForm(PostForm):
    """The one-click "Add to collection": a passage (or a whole document) and where to add it."""

    doc_id = StringField(validators=[Checked(_required_number)])
    chunk_id = StringField(validators=[Checked(whole_number)])
    start = StringField(validators=[Checked(whole_number)])
    end = StringField(validators=[Checked(whole_number)])
    collection = StringField(default="", validators=[
        Checked(lambda raw, name: raw == "new" or _required_number(raw, name))])
    new_name = StringField(default="")
    next = StringField(default="")
    anchor = StringField(default="")


class CollectionForm(PostForm):
    """A collection's name, description and workshop language (the same checks as kb.services.collections)."""

    name = StringField(default="", filters=[_collapse_spaces], validators=[
        DataRequired(_("A collection needs a name.")),
        Length(max=MAX_NAME_CHARS, message=_("name: at most %(max)d characters")),
    ])
    description = TextAreaField(default="", validators=[
        Length(max=MAX_DESCRIPTION_CHARS, message=_("description: at most %(max)d characters"))])
    lang = StringField(default="", validators=[Checked(lambda raw, name: clean_lang(raw))])


class NewCollectionForm(CollectionForm):
    """"New collection" on the collections page."""


class EditCollectionForm(CollectionForm):
    """"Name and description" on a collection's page."""


class AnnotationForm(PostForm):
    annotation = TextAreaField(default="", validators=[
        Length(max=MAX_ANNOTATION_CHARS, message=_("annotation: at most %(max)d characters"))])


class MoveItemForm(PostForm):
    direction = StringField(validators=[AnyOf(MOVES, _("Move the passage up, down, to the top or to the bottom."))])


class RemoveItemForm(PostForm):
    """An item's "Remove" button."""


class ParallelPassageForm(PostForm):
    """"Add after this passage": the same guidance in another language."""

    doc_id = StringField(validators=[Checked(_required_number)])
    chunk_id = StringField(validators=[Checked(_required_number)])


class ShareForm(PostForm):
    share = StringField(default="")  # "on" makes a share link; anything else turns sharing off


class DeleteCollectionForm(PostForm):
    confirm = StringField(validators=[
        AnyOf(("yes",), _("Tick the box to confirm that the collection should be deleted."))])


# -- cases (webapp.cases) and the audit log (webapp.admin) ----------------------------------


class _CaseFilterFields(FlaskForm):
    """Product, channel, status, resolved/open and dates, checked by `webapp.params.case_filters` as the API's are."""

    product = StringField()
    channel = StringField()
    status = StringField()
    state = StringField()
    date_from = StringField(name="from")
    date_to = StringField(name="to")

    def validate(self, extra_validators=None) -> bool:
        self.filters = CaseFilters()
        if not super().validate(extra_validators):
            return False
        try:
            self.filters = case_filters({f.name: f.data for f in
                                         (self.product, self.channel, self.status, self.state, self.date_from,
                                          self.date_to)})
        except InvalidInput as exc:
            return _refuse(self, exc)
        return True


class CaseFilterForm(QueryForm, _CaseFilterFields):
    """The case list's filters; `filters` once valid."""

    page = StringField()


class SimilarForm(PostForm, _CaseFilterFields):
    """A complaint (or a case to start from) and the filters; also read from the URL (GET, no CSRF token)."""

    q = TextAreaField(default="")
    case = StringField(default="")


class HelpedForm(PostForm):
    """"This helped" (or, with `undo`, take it back); `back` and `next` say where to go afterwards."""

    undo = StringField(default="")
    back = StringField(default="")
    next = StringField(default="")


class ImportUploadForm(PostForm):
    file = FileField(validators=[FileRequired(_("Choose a .csv or .jsonl file."))])


class ImportCheckForm(QueryForm):
    """Step 2 of a notes import: which column holds each field (`map_<field>`), then check every row."""

    check = StringField(default="")


class ImportConfirmForm(PostForm):
    """Step 3: import the rows with the checked mapping."""


for _field in NOTE_FIELDS:
    for _form in (ImportCheckForm, ImportConfirmForm):
        setattr(_form, f"map_{_field}", StringField(default=""))
del _field, _form


def column_mapping(form: ImportCheckForm | ImportConfirmForm) -> dict[str, str]:
    """Our field -> their column, for the fields given a column."""
    return {name: form[f"map_{name}"].data for name in NOTE_FIELDS if form[f"map_{name}"].data}


class AuditFilterForm(QueryForm):
    actor = StringField(default="")
    action = StringField(default="")
    page = StringField(validators=[Checked(lambda raw, name: number_in_range(raw, name, 1, 1, AUDIT_PAGES))])

    def page_number(self) -> int:
        return number_in_range(self.page.data, "page", 1, 1, AUDIT_PAGES)


USER_NAME = _("Give the user a user name (3-64 lower-case letters, digits and . _ @ -).")
ROLE = _("Choose one of the roles.")


class NewUserForm(PostForm):
    """An admin makes an account; its password is shown once."""

    username = StringField(validators=[DataRequired(USER_NAME), Length(max=64, message=USER_NAME)])
    display_name = StringField(validators=[Length(max=200)])
    role = StringField(validators=[DataRequired(ROLE), AnyOf(accounts.ROLES, message=ROLE)])


class UserRoleForm(PostForm):
    role = StringField(validators=[DataRequired(ROLE), AnyOf(accounts.ROLES, message=ROLE)])


class UserActionForm(PostForm):
    """Reset a password, unlock, disable or enable (the action is in the URL)."""
