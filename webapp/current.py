"""The knowledge base of the app answering the current request (each process holds one open; see webapp)."""

from __future__ import annotations

from flask import current_app, url_for

from kb.knowledge_base import KnowledgeBase


def get_kb() -> KnowledgeBase:
    return current_app.extensions["kb"]


def public_url_for(endpoint: str, **values) -> str:
    """An absolute link to a portal page for use outside it (handouts, share links), under KB_PUBLIC_URL when set.

    Without it the link uses the address of the request, which behind a proxy may
    be an internal one (127.0.0.1) that readers of a handout cannot open.
    """
    base = get_kb().settings.public_url
    if not base:
        return url_for(endpoint, _external=True, **values)
    return base.rstrip("/") + url_for(endpoint, **values)
