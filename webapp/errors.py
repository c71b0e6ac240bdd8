"""Errors in the shape each side expects: JSON `{"error": {"code", "message"}}` under /api, a page elsewhere."""

from __future__ import annotations

from flask import Flask, Response, jsonify, render_template, request
from flask_babel import gettext as _
from werkzeug.exceptions import HTTPException

from webapp.params import BadParameter

CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "too_large",
         415: "unsupported_media_type", 500: "internal_error", 503: "not_ready"}


def error_response(status: int, code: str, message: str) -> Response:
    response = jsonify({"error": {"code": code, "message": message}})
    response.status_code = status
    return response


def wants_json() -> bool:
    return request.path.startswith("/api/") or request.path in ("/healthz", "/readyz")


def init_app(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        status = exc.code or 500
        if wants_json():
            message = {404: "no such resource", 413: "the upload is larger than the limit"}.get(
                status, exc.description or exc.name)
            return error_response(status, CODES.get(status, "error"), message)
        messages = {404: _("This page does not exist."), 413: _("The upload is too large."),
                    405: _("This page cannot be used that way.")}
        return render_template("error.html", code=status, message=messages.get(status, exc.name)), status

    @app.errorhandler(BadParameter)
    def bad_parameter(exc: BadParameter):
        if wants_json():
            return error_response(400, "bad_parameter", str(exc))
        return render_template("error.html", code=400, message=str(exc)), 400

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        app.logger.exception("unexpected error on %s", request.path)
        if wants_json():
            return error_response(500, "internal_error", "something went wrong on our side; it has been logged")
        return render_template("error.html", code=500, message=_("Something went wrong on our side.")), 500
