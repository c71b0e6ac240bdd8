"""Who is making a request, for the records that need one ("this helped", a collection's owner).

Until accounts exist (issue 7) a browser is known by a random id kept in a
cookie, and an API client by the `X-Client-Id` header it sends (or that same
cookie). One id gives one "this helped" per case, so repeated clicks count once.
"""

from __future__ import annotations

import re
import uuid

from flask import Flask, g, request

COOKIE = "kb_client"
MAX_ID_CHARS = 100
_VALID = re.compile(r"^[A-Za-z0-9._:@-]{1,100}$")


def actor_id() -> str:
    """This request's actor: `client:<id>` from the header, else `browser:<id>` from the cookie (made if missing)."""
    header = request.headers.get("X-Client-Id", "").strip()
    if header and _VALID.match(header):
        return f"client:{header}"
    cookie = request.cookies.get(COOKIE, "")
    if not _VALID.match(cookie):
        cookie = g.get("new_actor_cookie") or uuid.uuid4().hex
        g.new_actor_cookie = cookie
    return f"browser:{cookie}"


def init_app(app: Flask) -> None:
    @app.after_request
    def remember_actor(response):
        new = g.get("new_actor_cookie")
        if new:
            response.set_cookie(COOKIE, new, max_age=5 * 365 * 24 * 3600, httponly=True, samesite="Lax")
        return response
