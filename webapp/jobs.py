"""Ingest jobs in the portal: what was handed to the queue (KB_QUEUE_URL) and how far each file got."""

from __future__ import annotations

from flask import Blueprint, abort, render_template

from indexer.jobs import recent_jobs
from indexer.queue import visible_job
from webapp.auth import current_viewer, require
from webapp.current import get_kb

bp = Blueprint("jobs", __name__)
RECENT = 30


@bp.route("/jobs")
@require("edit")
def jobs():
    viewer = current_viewer()
    owner = None if viewer.role == "admin" else viewer.username
    return render_template("jobs.html", jobs=recent_jobs(get_kb().engine, owner=owner, limit=RECENT))


@bp.route("/jobs/<job_id>")
@require("edit")
def job(job_id: str):
    view = visible_job(get_kb().engine, job_id, current_viewer())
    if view is None:
        abort(404)
    return render_template("job.html", job=view)
