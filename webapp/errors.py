"""Errors in the shape each side expects: JSON `{"error": {"code", "message"}}` under /api, a page elsewhere.

Everything the knowledge base refuses is a `KBError` (kb/errors.py) and is
answered here, once, with its `status` and `code`; views catch one only to do
something else with it (show the message next to a form, for example).
"""

from __future__ import annotations

from flask import Flask, Response, jsonify, render_template, request
from flask_babel import gettext as _
from werkzeug.exceptions import HTTPException

from kb.errors import KBError

CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "too_large",
         415: "unsupported_media_type", 500: "internal_error", 503: "not_ready"}


def error_response(status: int, code: str, message: str) -> Response:
    response = jsonify({"error": {"code": code, "message": message}})
    response.status_code = status
    return response


def wants_json() -> bool:
    return request.path.startswith("/api/") or request.path in ("/healthz", "/readyz")


def error_page(status: int, message: str):
    return render_template("error.html", code=status, message=message), status


def init_app(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        status = exc.code or 500
        if wants_json():
            message = {404: "no such resource", 413: "the upload is larger than the limit"}.get(
                status, exc.description or exc.name)
            return error_response(status, CODES.get(status, "error"), message)
        messages = {400: _("This request could not be used. Go back and try again."),
                    404: _("This page does not exist."), 413: _("The upload is too large."),
                    405: _("This page cannot be used that way."),
                    403: _("Your role cannot use this page.")}
        # Werkzeug's own names ("Bad Request") are English only: any other status gets a sentence of ours.
        return error_page(status, messages.get(status) or _("This request could not be completed."))

    @app.errorhandler(KBError)
    def refused(exc: KBError):
        if wants_json():
            return error_response(exc.status, exc.code, str(exc))
        if exc.status == 404:
            # A page says nothing about what is missing: one that is not there and one that the
            # reader may not see look the same.
            return error_page(404, _("This page does not exist."))
        return error_page(exc.status, str(exc))

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        app.logger.exception("unexpected error on %s", request.path)
        if wants_json():
            return error_response(500, "internal_error", "something went wrong on our side; it has been logged")
        return error_page(500, _("Something went wrong on our side."))
