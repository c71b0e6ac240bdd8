"""Ingest as jobs: files handed over now and ingested by a worker, on this machine or another.

A job and its files, bytes included, are rows in the database, written before
the queue hears of the job; the queue message carries only the job id. So any
node can show a job's progress, any worker can run it, and running it twice
does no harm: files already done are not run again, and a file run again after
its worker died is skipped by its content hash or finished where it stopped
(documents are keyed by their source). The queue (see `indexer.queue`) only
decides who runs a job and when.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import tempfile
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import func, select

from indexer.pipeline import IngestReport, find_files, ingest_paths
from indexer.uploads import UploadOutcome, ingest_upload
from indexer.writer import document_ids_from_file
from kb.access import OPERATOR, Viewer
from kb.engine import Engine
from kb.errors import KBError
from kb.services.accounts import find_account
from kb.storage.models import IngestJob, IngestJobFile

UPLOAD, FILES = "upload", "files"
QUEUED, RUNNING, RETRYING, DONE, FAILED = "queued", "running", "retrying", "done", "failed"
FINISHED = (DONE, FAILED)
# Files of a `kb ingest --queue` job ingested together (see `_run_files`): about 60 passages, several
# embedding batches, and a few seconds between two updates of the job's progress.
GROUP_BYTES = 64_000
# Groups of one job ingested at once where the model runs passage batches side by side on several
# threads (`kb worker`): one group's text is prepared while the other's passages are embedded.
GROUPS_AT_ONCE = 2


@dataclass
class FileToIngest:
    name: str  # an upload's name (with its folders), or a file's resolved path
    content: bytes
    topics: list[str] = field(default_factory=list)  # its folders' (kb ingest) or its uploader's (upload)
    visibility: str | None = None  # the uploader's choice, if any


@dataclass
class JobFile:
    name: str
    state: str  # queued, added, updated, skipped or failed
    error: str | None
    doc_ids: list[int]

    def to_dict(self) -> dict:
        return {"name": self.name, "state": self.state, "error": self.error, "doc_ids": self.doc_ids}


@dataclass
class JobView:
    id: str
    kind: str
    owner: str
    state: str
    attempts: int
    error: str | None
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    files: list[JobFile]

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    @property
    def files_done(self) -> int:
        return sum(f.state != QUEUED for f in self.files)

    def to_dict(self) -> dict:
        def when(value: dt.datetime | None) -> str | None:
            return value.isoformat() if value else None

        return {
            "id": self.id, "kind": self.kind, "state": self.state, "attempts": self.attempts,
            "error": self.error, "created_at": when(self.created_at), "started_at": when(self.started_at),
            "finished_at": when(self.finished_at), "files_done": self.files_done, "files_total": len(self.files),
            "files": [f.to_dict() for f in self.files],
        }


def create_job(engine: Engine, kind: str, files: list[FileToIngest], owner: str = "") -> str:
    """Keep `files` as a queued job of `owner` ("" the operator) and return its id; nothing runs yet."""
    job_id = uuid.uuid4().hex
    with engine.store.session() as s:
        s.add(IngestJob(id=job_id, kind=kind, owner=owner, state=QUEUED, attempts=0, files=[
            IngestJobFile(position=i, name=f.name, content=f.content, topics=list(f.topics), visibility=f.visibility,
                          content_hash=hashlib.sha256(f.content).hexdigest(), state=QUEUED, doc_ids=[])
            for i, f in enumerate(files)
        ]))
    return job_id


def files_for_queue(paths: list[str | Path]) -> tuple[list[FileToIngest], IngestReport]:
    """The files `kb ingest` would read under `paths`, with their bytes and folder topics, for a job."""
    report = IngestReport()
    found = []
    for path in find_files(paths, report):
        try:
            content = path.read_bytes()
        except OSError as exc:
            report.fail(str(path), f"{path}: cannot open the file ({exc.strerror or exc})")
            continue
        found.append(FileToIngest(str(path), content, report.folder_topics.get(str(path), [])))
    return found, report


def get_job(engine: Engine, job_id: str) -> JobView | None:
    with engine.store.session() as s:
        job = s.get(IngestJob, job_id)
        return _view(job) if job is not None else None


def recent_jobs(engine: Engine, owner: str | None = None, limit: int = 20) -> list[JobView]:
    """The newest jobs, of `owner` only when given."""
    query = select(IngestJob).order_by(IngestJob.created_at.desc()).limit(limit)
    if owner is not None:
        query = query.where(IngestJob.owner == owner)
    with engine.store.session() as s:
        return [_view(job) for job in s.scalars(query)]


def _view(job: IngestJob) -> JobView:
    files = [JobFile(f.name, f.state, f.error, list(f.doc_ids or [])) for f in job.files]
    return JobView(job.id, job.kind, job.owner, job.state, job.attempts, job.error, job.created_at,
                   job.started_at, job.finished_at, files)


def run_job(engine: Engine, job_id: str) -> JobView | None:
    """Ingest the files of a job that are not done yet, recording each outcome as it comes.

    A finished job is left alone (a message delivered twice); None for a job
    that does not exist (removed since it was queued).
    """
    with engine.store.session() as s:
        job = s.get(IngestJob, job_id)
        if job is None:
            return None
        if job.state in FINISHED:
            return _view(job)
        job.state, job.attempts, job.error = RUNNING, job.attempts + 1, None
        job.started_at = job.started_at or dt.datetime.now(dt.UTC)
        kind, owner = job.kind, job.owner
        pending = [f.id for f in job.files if f.state == QUEUED]
    uploader = _uploader(engine, owner) if kind == UPLOAD else OPERATOR
    with engine.writes_batched():  # the indexes follow once per job, not once per file
        _run_files(engine, pending, kind, owner, uploader)
    return finish_job(engine, job_id, DONE)


def _run_files(engine: Engine, pending: list[int], kind: str, owner: str, uploader: Viewer | None) -> None:
    """Ingest the files of a job, recording each outcome as soon as it is known.

    Files queued by `kb ingest --queue` go in groups of up to GROUP_BYTES, as
    `kb ingest` reads a folder: one embedding call per batch across files (a
    call for one small file's few chunks leaves the cores half used). Uploads
    go one by one, each checked against its uploader's rights.
    """
    if kind == FILES:  # ingested as the operator (run_job)
        groups = _groups(engine, pending)
        at_once = min(GROUPS_AT_ONCE, engine.embedder.passage_lanes, len(groups))
        if at_once == 1:  # in this thread, inside the caller's run of writes (see Engine.writes_batched)
            for group in groups:
                _run_group(engine, group)
            return
        stop = threading.Event()

        def run(group: list[int]) -> None:
            if stop.is_set():  # left queued, for the job's retry
                return
            try:
                _run_group(engine, group)
            except BaseException:
                stop.set()
                raise

        with ThreadPoolExecutor(at_once, thread_name_prefix="kb-group") as pool:
            try:
                for done in [pool.submit(run, group) for group in groups]:
                    done.result()
            finally:  # a group failed, or the job ran out of time: start no further group
                stop.set()
        return
    for file_id in pending:
        with engine.store.session() as s:
            row = s.get(IngestJobFile, file_id)
            name, content, topics, visibility = row.name, row.content, list(row.topics or []), row.visibility
        if uploader is None:
            outcome = UploadOutcome(name, "failed", error=f"{name}: the account {owner!r} no longer exists or is disabled")
        else:
            outcome = ingest_upload(engine, name, content, uploader, visibility, topics)
        _record(engine, [(file_id, outcome)])


def _run_group(engine: Engine, group: list[int]) -> None:
    """Ingest a group of a job's files together and record their outcomes; the indexes follow once."""
    with engine.store.session() as s:
        rows = [s.get(IngestJobFile, file_id) for file_id in group]
        files = [(row.name, row.content, list(row.topics or [])) for row in rows]
    with engine.writes_batched():
        outcomes = _ingest_copies(engine, files)
    _record(engine, zip(group, outcomes, strict=True))


def _record(engine: Engine, outcomes) -> None:
    """Keep each (job file id, outcome) on the job's file rows."""
    with engine.store.session() as s:
        for file_id, outcome in outcomes:
            row = s.get(IngestJobFile, file_id)
            row.state, row.error, row.doc_ids = outcome.status, outcome.error, outcome.doc_ids


def _groups(engine: Engine, file_ids: list[int]) -> list[list[int]]:
    """The files in order, in runs of at most GROUP_BYTES (a larger file alone)."""
    with engine.store.session() as s:
        sizes = dict(s.execute(select(IngestJobFile.id, func.length(IngestJobFile.content))
                               .where(IngestJobFile.id.in_(file_ids))).all())
    groups: list[list[int]] = []
    total = 0
    for file_id in file_ids:
        size = int(sizes.get(file_id) or 0)
        if not groups or total + size > GROUP_BYTES:
            groups.append([])
            total = 0
        groups[-1].append(file_id)
        total += size
    return groups


def finish_job(engine: Engine, job_id: str, state: str, error: str | None = None) -> JobView | None:
    """Record how a job ended (or, with RETRYING, why its last try did not)."""
    with engine.store.session() as s:
        job = s.get(IngestJob, job_id)
        if job is None:
            return None
        job.state, job.error = state, error
        if state in FINISHED:
            job.finished_at = dt.datetime.now(dt.UTC)
        if state == FAILED:
            for f in job.files:
                if f.state == QUEUED:
                    f.state, f.error = FAILED, f"{f.name}: not ingested ({error})"
        return _view(job)


def _uploader(engine: Engine, owner: str) -> Viewer | None:
    """Whom an upload is ingested as: its uploader with the role they have now (None: the account is gone)."""
    if not owner:
        return OPERATOR
    account = find_account(engine.store, owner)
    return Viewer(account.role, account.username) if account is not None and not account.disabled else None


def _ingest_copies(engine: Engine, files: list[tuple[str, bytes, list[str]]]) -> list[UploadOutcome]:
    """Ingest the bytes of files queued by `kb ingest --queue` (name, bytes, folder topics) as if each were
    read where it was found, together; an outcome per file."""
    with tempfile.TemporaryDirectory(prefix="kb-job-") as folder:
        copies: dict[str, str] = {}  # copy path -> name
        topics: dict[str, list[str]] = {}
        for i, (name, content, file_topics) in enumerate(files):
            copy = (Path(folder) / f"file{i}{Path(name).suffix}").resolve()
            copy.write_bytes(content)
            copies[str(copy)] = name
            if file_topics:
                topics[str(copy)] = file_topics
        try:
            report = ingest_paths(engine, list(copies), progress=False, copied_from=copies, topics=topics or None)
        except KBError as exc:
            return [UploadOutcome(name, "failed", error=f"{name}: {exc}") for name, _, _ in files]
    outcomes = []
    for copy, name in copies.items():
        read = report.by_file.get(name, {})
        problems = "; ".join(f["error"].replace(copy, name) for f in report.failed
                             if f["path"] == copy or _file_of(f["path"], copies.values()) == name) or None
        if problems and not sum(read.values()):
            outcomes.append(UploadOutcome(name, "failed", error=problems))
            continue
        status = "added" if read.get("added") else "updated" if read.get("updated") else "skipped"
        outcomes.append(UploadOutcome(name, status, document_ids_from_file(engine, name), problems))
    return outcomes


def _file_of(source: str, names) -> str | None:
    """Which of the files a document source came from (the file itself, or a row of it: "file#row")."""
    found = [name for name in names if source == name or source.startswith(name + "#")]
    return max(found, key=len) if found else None
