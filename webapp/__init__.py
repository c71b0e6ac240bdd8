"""The Flask portal and JSON API: `create_app(config)` builds one, `kb serve` runs it under gunicorn.

Each process holds one open `KnowledgeBase`; every request that reads the
indexes first follows changes other processes made (`KnowledgeBase.refresh`,
two aggregate queries when nothing changed), so a document added through one
gunicorn worker is found through all of them on their next request.
"""

from __future__ import annotations

import logging
import time

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from kb.config import Settings
from kb.knowledge_base import KnowledgeBase
from kb.services import searches
from webapp.current import get_kb

__all__ = ["create_app", "get_kb", "warm_up"]

log = logging.getLogger(__name__)

# Largest upload accepted (the whole request).
DEFAULT_MAX_UPLOAD_BYTES = 50 * 1024 * 1024


def create_app(config: dict | None = None) -> Flask:
    """The portal for the knowledge base described by `config["KB_SETTINGS"]` or the `KB_` environment.

    Other keys of `config` are Flask settings. The embedding model is loaded
    and warmed up here, so the first query after start is as fast as any.
    """
    app = Flask(__name__)
    app.config.update(
        MAX_CONTENT_LENGTH=DEFAULT_MAX_UPLOAD_BYTES,
        KB_WARM_UP=True,
        JSON_SORT_KEYS=False,
    )
    config = config or {}
    settings: Settings = config.get("KB_SETTINGS") or Settings.from_env()
    kb = config.get("KB_INSTANCE") or KnowledgeBase.open(settings)
    app.extensions["kb"] = kb
    searches.prune(kb.store)  # the search log keeps half a year

    from webapp import (
        admin,
        api,
        apispec,
        auth,
        cases,
        collections,
        errors,
        i18n,
        jobs,
        pages,
        security,
        topics,
    )

    app.config.update(auth.config_defaults(kb.settings))
    app.config.update(config)
    # Under test every API response is checked against its documented schema (webapp.apispec).
    app.config.setdefault("KB_CHECK_RESPONSES", bool(app.config.get("TESTING")))
    if kb.settings.trusted_proxies > 0:
        # The client's address (what sign-in throttling counts) as the proxies in front of us saw it;
        # without proxies X-Forwarded-For is anyone's to write, so it is never read.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=kb.settings.trusted_proxies)
    i18n.init_app(app)
    errors.init_app(app)
    auth.init_app(app)
    security.init_app(app)
    apispec.init_app(app)
    for blueprint in (pages.bp, cases.bp, collections.bp, topics.bp, admin.bp, jobs.bp,
                      api.bp, cases.api, collections.api, topics.api, admin.api, api.health):
        app.register_blueprint(blueprint)
    apispec.describe(app)
    if app.config["KB_WARM_UP"]:
        warm_up(kb)
    return app


def warm_up(kb: KnowledgeBase) -> None:
    """Load the model, the segmenters and the indexes now rather than on the first query."""
    started = time.perf_counter()
    kb.refresh()
    kb.embedder.encode_queries(["warm up"])
    kb.analyzer.term_texts("warm up ลูกค้า 客户")
    from kb.text.chunking import warm_up_text_tools

    warm_up_text_tools()
    log.info("knowledge base ready in %.1f s", time.perf_counter() - started)
