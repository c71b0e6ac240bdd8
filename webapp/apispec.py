"""One schema per API operation (spectree over the pydantic models of `webapp.schemas`).

Each API view is decorated with `spec.validate(query=..., json=..., resp=...)`:
the same models refuse a bad request (400, the message names the field) and
make the OpenAPI document served at /api/v1/openapi.json, so the two cannot
drift. Why spectree: it decorates the Flask views we have (no new app class or
blueprint type, unlike APIFlask or flask-smorest) and speaks pydantic, which
the stack already has. Responses are checked against their models only when
`KB_CHECK_RESPONSES` is on (the tests), so a production reply is never turned
into a 500 by its own description.
"""

from __future__ import annotations

from copy import deepcopy
from typing import Any

from flask import Flask, current_app
from pydantic import ValidationError
from spectree import Response as Answers  # what an operation answers, per status
from spectree import SpecTree
from spectree.plugins.flask_plugin import FlaskPlugin
from werkzeug.exceptions import NotFound
from werkzeug.routing import IntegerConverter

from webapp.params import BadJson, BadParameter
from webapp.schemas import MAX_ID, Error

__all__ = ["Answers", "errors", "init_app", "openapi_document", "spec"]

TITLE = "CRM knowledge hub"
DESCRIPTION = "Search, ask and manage multilingual (Thai, Chinese, English) CRM knowledge."
# Reached without signing in; everything else needs a token or a session.
PUBLIC_PATHS = {"/api/v1/openapi.json", "/healthz", "/readyz"}
SECURITY_SCHEMES = {
    "token": {"type": "http", "scheme": "bearer",
              "description": "a personal API token, made on the portal's account page"},
    "session": {"type": "apiKey", "in": "cookie", "name": "session",
                "description": "the portal's session; state-changing calls then need an X-CSRFToken header"},
}


class RowId(IntegerConverter):
    """`<int:...>` in a URL: a whole number a database row can have; a larger one is not found (404).

    Raised here rather than refused as a non-match: werkzeug answers a URL that no rule matches but
    another method's rule nearly does with 405, which would say the id was fine.
    """

    def to_python(self, value: str) -> int:
        number = super().to_python(value)
        if number > MAX_ID:
            raise NotFound(f"no such resource: {number} is larger than any id")
        return number


class _Plugin(FlaskPlugin):
    """spectree's Flask plugin, checking responses only where `KB_CHECK_RESPONSES` asks for it."""

    def validate_response(self, resp, resp_model, skip_validation, force_resp_serialize):
        check = bool(current_app.config.get("KB_CHECK_RESPONSES"))
        return super().validate_response(resp, resp_model, skip_validation or not check, force_resp_serialize)


def _refuse(request, response, error: ValidationError | None, instance, model_adapter=None) -> None:
    """A request its schema refuses: our usual 400 naming the field, instead of spectree's own body."""
    if error is None:
        return
    # A misspelt field first: "items: Field required" would hide that the client sent "order".
    problems = sorted(error.errors(), key=lambda e: e.get("type") != "extra_forbidden")
    first = problems[0]
    if not first.get("loc") and first.get("type") in ("model_type", "dict_type", "model_attributes_type"):
        raise BadJson("body", "send a JSON object (see /api/v1/openapi.json for its fields)")
    field = ".".join(str(part) for part in first.get("loc", ()) if part != "__root__") or "body"
    message = first.get("msg", "is not valid").removeprefix("Value error, ")
    if ": " in message and field == "body":
        field, message = message.split(": ", 1)
    raise BadParameter(field, message)


spec = SpecTree(
    "flask", backend=_Plugin, mode="strict", title=TITLE, description=DESCRIPTION, version="1",
    page_templates={}, annotations=False, before=_refuse,
    validation_error_status=400, validation_error_model=Error,
    naming_strategy=lambda model: model.__name__, nested_naming_strategy=lambda parent, child: child,
)


def errors(*statuses: int) -> dict[str, Any]:
    """`resp=Answers(...)` arguments for the error answers an operation can give (all as `Error`)."""
    return {f"HTTP_{status}": Error for status in statuses}


# Operations that answer a file rather than JSON: their media types.
FILES = {
    ("/api/v1/collections/{collection_id}/export", "get"): {
        "text/markdown": "Markdown", "text/html": "a printable HTML page",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "a Word document",
    },
    ("/api/v1/documents/{doc_id}/original", "get"): {
        "*/*": "the file as it was ingested, with its own media type when known",
    },
}


def init_app(app: Flask) -> None:
    """Ids in URLs are bounded before any blueprint adds its rules."""
    app.url_map.converters["int"] = RowId


def describe(app: Flask) -> None:
    """Make the document once the app has every route (it is the same for every app of this code)."""
    with app.app_context():
        spec.spec  # noqa: B018 - generated and cached by spectree


def openapi_document() -> dict:
    """The OpenAPI 3.1 document of the running app: spectree's, plus who may call what."""
    document = deepcopy(spec.spec)
    document["security"] = [{"token": []}, {"session": []}]
    components = document.setdefault("components", {})
    components["securitySchemes"] = SECURITY_SCHEMES
    schemas = components.setdefault("schemas", {})
    schemas.setdefault("Error", Error.model_json_schema(ref_template="#/components/schemas/{model}"))
    error = {"description": "", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "path" and parameter["schema"].get("type") == "integer":
                    # werkzeug's int: 0 up to the largest row id (spectree calls it int32)
                    parameter["schema"] = {"type": "integer", "minimum": 0, "maximum": MAX_ID}
            media = FILES.get((path, method))
            if media:
                operation["responses"]["200"]["content"] = {
                    kind: {"schema": {"type": "string", "description": what}} for kind, what in media.items()}
            if path in PUBLIC_PATHS:
                operation["security"] = []
                continue
            responses = operation.setdefault("responses", {})
            responses.setdefault("401", {**error, "description": "not signed in (no valid token or session)"})
            responses.setdefault("403", {**error, "description": "your role may not do this"})
    return document
