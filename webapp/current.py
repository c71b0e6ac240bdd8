"""The knowledge base of the app answering the current request (each process holds one open; see webapp)."""

from __future__ import annotations

from flask import current_app

from kb.knowledge_base import KnowledgeBase


def get_kb() -> KnowledgeBase:
    return current_app.extensions["kb"]
