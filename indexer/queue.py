"""The job queue: Dramatiq on Redis or RabbitMQ, whichever `KB_QUEUE_URL` names.

Dramatiq because it speaks to both brokers these sites already run, acknowledges
a message only after its job has run (a worker killed mid-job leaves the message
to be delivered again), retries with back-off out of the box, and needs no
result store: a job's state lives in the database (see `indexer.jobs`), where
every node reads it. A message carries only a job id.
"""

from __future__ import annotations

import logging
import signal
import threading
from urllib.parse import urlsplit

import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import CurrentMessage

from indexer import jobs
from indexer.jobs import FileToIngest, JobView
from indexer.uploads import UploadOutcome, choice_refusal, upload_choices, upload_refusal
from kb.access import ADMIN_ROLE, Viewer
from kb.config import Settings
from kb.engine import Engine
from kb.errors import InvalidInput, KBError

log = logging.getLogger(__name__)

ACTOR_NAME = "kb_ingest_job"
MAX_RETRIES = 3
MIN_BACKOFF_MS = 2_000
JOB_TIME_LIMIT_MS = 6 * 3600 * 1000  # a folder of thousands of files on two cores
# How long a Redis worker may be silent before its unfinished messages go to another (RabbitMQ notices at once).
REDIS_HEARTBEAT_MS = 60_000
# Jobs a worker runs at once, their passage batches side by side on the model's threads: while one
# job's text is cleaned and chunked (one core, Python), the other's passages keep the other cores busy.
# One job at a time left one idle during that part (docs/scaling.md, fifth round).
JOBS_AT_ONCE = 2
# How long an idle worker waits at most between two looks at Redis for a job (Dramatiq's default, 1 s,
# came between most jobs once a worker takes only those it can start).
POLL_MS = 100

_actors: dict[tuple[str, str], dramatiq.Actor] = {}
_engine: Engine | None = None
_engine_lock = threading.Lock()


def broker_for(url: str) -> dramatiq.Broker:
    """A broker for a redis://, rediss://, amqp:// or amqps:// URL; any other is a clear error."""
    scheme = urlsplit(url).scheme.lower()
    if scheme in ("redis", "rediss"):
        broker = RedisBroker(url=url, heartbeat_timeout=REDIS_HEARTBEAT_MS)
    elif scheme in ("amqp", "amqps"):
        broker = RabbitmqBroker(url=url)
    else:
        raise InvalidInput(f"KB_QUEUE_URL: {url!r} is not a queue we speak to; use redis://host:6379/0 "
                           "(Redis) or amqp://user:password@host:5672/ (RabbitMQ)")
    broker.add_middleware(CurrentMessage())
    return broker


def ingest_actor(settings: Settings) -> dramatiq.Actor:
    """The actor that runs ingest jobs on the settings' broker and queue (one of each per process)."""
    key = (settings.queue_url, settings.queue_name)
    if key not in _actors:
        _actors[key] = dramatiq.actor(
            _run, actor_name=ACTOR_NAME, queue_name=settings.queue_name, broker=broker_for(settings.queue_url),
            max_retries=MAX_RETRIES, min_backoff=MIN_BACKOFF_MS, time_limit=JOB_TIME_LIMIT_MS,
        )
    return _actors[key]


class QueueUnavailable(KBError):
    """The queue could not be reached; the job is recorded as failed and nothing was ingested."""


def enqueue(settings: Settings, job_id: str) -> None:
    """Tell the workers about a job already written to the database."""
    ingest_actor(settings).send(job_id)


def submit(engine: Engine, kind: str, files: list[FileToIngest], owner: str = "") -> str:
    """Record `files` as a job and queue it; returns the job id at once (the worker does the rest)."""
    job_id = jobs.create_job(engine, kind, files, owner)
    try:
        enqueue(engine.settings, job_id)
    except Exception as exc:  # the broker is down or refuses us: say so instead of leaving a job nobody runs
        reason = f"the queue at {_redacted(engine.settings.queue_url)} could not be reached ({type(exc).__name__})"
        jobs.finish_job(engine, job_id, jobs.FAILED, reason)
        raise QueueUnavailable(f"{reason}; nothing was ingested, try again later") from exc
    return job_id


def queue_uploads(
    engine: Engine, files: list[tuple[str, bytes]], uploader: Viewer, visibility: str | None = None,
    topics: list[str] | None = None,
) -> tuple[list[UploadOutcome], JobView | None]:
    """Queue uploaded files as one job; those refused at sight (type, empty, not theirs) are reported at once.

    The outcomes are in the order of `files`: "queued" for those in the job (None when there is none).
    A visibility or topic that cannot be used raises InvalidInput before anything is queued.
    """
    visibility, topics = upload_choices(visibility, topics)
    outcomes, queued = [], []
    for name, data in files:
        refused = upload_refusal(engine, name, data, uploader) or choice_refusal(name, visibility, topics, uploader)[0]
        outcomes.append(refused or UploadOutcome(name, "queued"))
        if refused is None:
            queued.append(FileToIngest(name, data, topics, visibility))
    if not queued:
        return outcomes, None
    job_id = submit(engine, jobs.UPLOAD, queued, uploader.username)
    return outcomes, jobs.get_job(engine, job_id)


def visible_job(engine: Engine, job_id: str, viewer: Viewer) -> JobView | None:
    """The job if `viewer` may follow it (who submitted it, an admin, the operator), else None."""
    view = jobs.get_job(engine, job_id)
    if view is None or viewer.role in (None, ADMIN_ROLE) or view.owner == viewer.username:
        return view
    return None


def _worker_engine() -> Engine:
    global _engine
    with _engine_lock:
        if _engine is None:
            _engine = Engine.open(_worker_settings(Settings.from_env()), searchable=False)
        return _engine


def _worker_settings(settings: Settings) -> Settings:
    """A worker embeds from several jobs at once: passage batches side by side (see `run_worker`)."""
    return settings.with_overrides(passages_side_by_side=True)


def _run(job_id: str) -> None:
    """Run one job; an exception is recorded on the job and left to Dramatiq to retry."""
    engine = _worker_engine()
    engine.refresh()
    try:
        view = jobs.run_job(engine, job_id)
    except Exception as exc:
        message = CurrentMessage.get_current_message()
        retries = message.options.get("retries", 0) if message is not None else MAX_RETRIES
        reason = f"{type(exc).__name__}: {exc}"
        last = retries >= MAX_RETRIES
        jobs.finish_job(engine, job_id, jobs.FAILED if last else jobs.RETRYING, reason)
        log.exception("job %s failed (try %d of %d)", job_id, retries + 1, MAX_RETRIES + 1)
        raise
    if view is not None:
        log.info("job %s %s: %d file(s)", job_id, view.state, len(view.files))


def run_worker(settings: Settings, threads: int | None = None) -> int:
    """Run ingest jobs from the queue, `threads` at once (None: JOBS_AT_ONCE), until SIGINT or SIGTERM;
    returns an exit status.

    The jobs share the model's threads (KB_THREADS, else one per core), each taking the next of
    its passage batches as one comes free, so a job alone still has them all.
    """
    global _engine
    if not settings.queue_url:
        raise InvalidInput("kb worker needs a queue: set KB_QUEUE_URL (e.g. redis://127.0.0.1:6379/0)")
    threads = max(1, threads) if threads is not None else JOBS_AT_ONCE
    settings = _worker_settings(settings)
    # A worker never searches: the nodes that do follow its writes through the database.
    _engine = Engine.open(settings, searchable=False)
    actor = ingest_actor(settings)
    worker = dramatiq.Worker(actor.broker, queues={settings.queue_name}, worker_threads=threads,
                             worker_timeout=POLL_MS)
    # Take a job only when one can start: Dramatiq's default holds twice as many, and a job held
    # here waits while another worker idles (two workers, 11.7 passages/s against 10.7).
    worker.queue_prefetch = threads
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    worker.start()
    log.info("kb worker: waiting for jobs on %s", _redacted(settings.queue_url))
    print(f"kb worker: waiting for jobs on {_redacted(settings.queue_url)}", flush=True)
    while not stop.wait(1.0):
        pass
    worker.stop()
    actor.broker.close()
    return 0


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@", 1)
    return url
