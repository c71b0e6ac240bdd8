"""One family of errors for everything the knowledge base refuses, each with its HTTP status.

Adapters catch `KBError` once (the portal maps `status` to a response in
webapp/errors.py, the command line prints the message); the message always
says what was wrong and, where it can, what to do instead.
"""

from __future__ import annotations


class KBError(Exception):
    """Something the knowledge base refuses to do; `str(exc)` is the message for the user."""

    status = 400
    code = "bad_request"


class InvalidInput(KBError, ValueError):
    """A value given by the caller that cannot be used (an empty query, a bad field)."""

    status = 400
    code = "bad_parameter"


class NotFound(KBError, LookupError):
    """What was asked for does not exist, or the caller may not see it (same answer for both)."""

    status = 404
    code = "not_found"


class Forbidden(KBError, PermissionError):
    """The caller is known but may not do this."""

    status = 403
    code = "forbidden"


class Conflict(KBError, RuntimeError):
    """The request clashes with the stored state (another model's vectors, a taken name)."""

    status = 409
    code = "conflict"
