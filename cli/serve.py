"""`kb serve`: the portal under gunicorn, several worker processes, each with its own open knowledge base.

The master process loads only the language tools' dictionaries (jieba's,
pythainlp's, langdetect's profiles: pure Python, no threads) before the fork,
so the workers share one copy of them instead of holding ~170 MB each. Each
worker loads the model and the indexes itself after the fork (ONNX Runtime
and FAISS are not fork-safe once they run threads), then answers only when
warm. Workers follow each other's changes through the database (see `webapp`).
"""

from __future__ import annotations

import gc
import os

from gunicorn.app.base import BaseApplication

from kb.config import Settings


class PortalServer(BaseApplication):
    def __init__(self, settings: Settings, options: dict) -> None:
        self.settings = settings
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        from webapp import create_app

        return create_app({"KB_SETTINGS": self.settings})


def share_cores(workers: int):
    """A gunicorn `post_fork` hook giving each worker's model its share of the cores (at least one thread).

    Left alone, every worker's model starts one thread per core, so four workers on
    two cores run eight busy threads that spin waiting for each other: under load the
    slowest queries took seconds longer than with one thread each. An operator's
    KB_THREADS wins.
    """
    threads = max(1, (os.cpu_count() or 1) // workers)

    def post_fork(server, _worker) -> None:
        portal = server.app
        if not portal.settings.threads:
            portal.settings = portal.settings.with_overrides(threads=threads)

    return post_fork


def share_language_tools() -> None:
    """Load the segmenters' and detectors' data in the master, to be shared by the forked workers.

    `gc.freeze` keeps the collector from walking (and so writing to, and so copying) those
    objects in every worker. At a million chunks this took the PSS of `kb serve --workers 4`
    from 3,093 MB to the figure in docs/scaling.md.
    """
    from kb.text.chunking import warm_up_text_tools

    warm_up_text_tools()
    gc.freeze()


def serve(settings: Settings, host: str | None = None, port: int | None = None, workers: int | None = None) -> None:
    """Serve until stopped; `host` and `port` default to the settings' (KB_HOST, KB_PORT)."""
    host = settings.host if host is None else host
    port = settings.port if port is None else port
    workers = workers or max(2, min(4, os.cpu_count() or 2))
    share_language_tools()
    PortalServer(settings, {
        "post_fork": share_cores(workers),
        "bind": f"{host}:{port}",
        "workers": workers,
        # Without a queue (KB_QUEUE_URL), uploads are read, embedded and indexed inside the request.
        "timeout": 300,
        # A pasted Thai or Chinese complaint of 4,000 characters is ~36 kB of URL: request lines of any length
        # (gunicorn allows at most 8190 otherwise); the portal itself refuses a query past 4,000 characters.
        "limit_request_line": 0,
        "graceful_timeout": 20,
        "accesslog": "-",
        "worker_tmp_dir": "/dev/shm" if os.path.isdir("/dev/shm") else None,
    }).run()
