"""Ingest files and folders into a knowledge base, reporting every problem by file.

A bad file (or a bad row in a notes file) is reported with its path and the
reason, and everything else still goes in. Documents are embedded in batches
across files, because one encode call over many passages is much faster than
one per file, and each batch is committed on its own, so an interrupted run
keeps what it finished and the next run carries on.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

import pathspec
from tqdm import tqdm

from indexer.prepare import TextPreparer
from indexer.readers import is_supported, read_file
from indexer.writer import (
    IngestPlan,
    commit,
    delete_documents,
    preparer_for,
    sources_from_file,
    triage,
)
from kb.config import Settings
from kb.documents import GUIDANCE, DocumentInput, ReadError
from kb.embed.embedder import map_large_blocks
from kb.engine import Engine
from kb.services.originals import keep_original
from kb.services.topics import topics_from_folders
from kb.text.chunking import warm_up_text_tools

# Flush a batch to the embedder once it holds about this much text (~60
# chunks); the first batch is small so that embedding starts early and the
# next batches are prepared while it runs.
FIRST_BATCH_CHARS = 10_000
BATCH_CHARS = 40_000
BATCH_DOCS = 128
# Batches planned (cleaned and chunked) ahead of the one being embedded.
PLAN_AHEAD = 2
# prctl(2) option: the signal this process gets when its parent dies.
PR_SET_PDEATHSIG = 1
# How often a worker checks that its parent is still alive (where prctl is missing or refused).
PARENT_CHECK_SECONDS = 1.0
# Ingests of at least this many bytes of files prepare text in a worker process.
WORKER_MIN_BYTES = 200_000


@dataclass
class IngestReport:
    added: int = 0
    updated: int = 0
    skipped: int = 0
    removed: int = 0
    failed: list[dict] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    files: int = 0
    # Topics of files found inside ingested folders, from the folders between (see kb.services.topics).
    folder_topics: dict[str, list[str]] = field(default_factory=dict)
    # Files read from a copy (a queued job's bytes on a worker): copy path -> the source_file they are known by.
    copied_from: dict[str, str] = field(default_factory=dict)
    # Given by an uploader for every document read (None / []: what each file says).
    visibility: str | None = None
    topics: list[str] = field(default_factory=list)
    # Documents read per file (the source_file they are stored under): {"added": n, "updated": n, "skipped": n}.
    by_file: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def documents_read(self) -> int:
        return self.added + self.updated + self.skipped

    def fail(self, path: str, error: str) -> None:
        self.failed.append({"path": path, "error": error})

    def to_dict(self) -> dict:
        return {
            "added": self.added, "updated": self.updated, "skipped": self.skipped,
            "removed": self.removed, "failed": self.failed, "ignored": self.ignored,
            "files": self.files,
        }


IGNORE_FILE = ".kbignore"


def _ignore_spec(folder: Path) -> pathspec.GitIgnoreSpec | None:
    """Patterns from a `.kbignore` at the top of an ingested folder (gitignore syntax)."""
    ignore = folder / IGNORE_FILE
    if not ignore.is_file():
        return None
    return pathspec.GitIgnoreSpec.from_lines(ignore.read_text(encoding="utf-8").splitlines())


def find_files(paths: Iterable[str | Path], report: IngestReport) -> list[Path]:
    """Files named directly, plus supported files found (recursively) in folders.

    Hidden files and folders, and paths matched by the folder's `.kbignore`,
    are left out; unsupported files inside folders are listed as ignored,
    while an unsupported file named directly is a failure. The folders between
    an ingested folder and a file are its topics when the file names none.
    """
    found: dict[Path, None] = {}
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_file():
            found[path.resolve()] = None
        elif path.is_dir():
            spec = _ignore_spec(path)
            for child in sorted(path.rglob("*")):
                rel = child.relative_to(path)
                if any(part.startswith(".") for part in rel.parts) or not child.is_file():
                    continue
                if spec is not None and spec.match_file(rel.as_posix()):
                    continue
                if is_supported(child):
                    found[child.resolve()] = None
                    topics = topics_from_folders(rel.parent)
                    if topics:
                        report.folder_topics[str(child.resolve())] = topics
                else:
                    report.ignored.append(str(child))
        else:
            report.fail(str(raw), "no such file or folder")
    return list(found)


def ingest_paths(
    engine: Engine, paths: Iterable[str | Path], progress: bool | None = None,
    worker: IngestWorker | None = None, owner: str = "", copied_from: dict[str, str] | None = None,
    topics: dict[str, list[str]] | None = None, visibility: str | None = None, added_topics: list[str] | None = None,
) -> IngestReport:
    """Read, clean, chunk, embed and store everything under `paths`, as documents of `owner`.

    While one batch is embedded the next ones are cleaned and chunked, in
    `worker` when given (see `IngestWorker`), else in this process.
    `copied_from` names files that are copies (resolved path -> the source_file
    their documents are stored under), and `topics` gives files their folder topics
    (resolved path -> topics), for a file ingested away from where it was found.
    `visibility` replaces, and `added_topics` add to, what each document's file says (an upload form's choice).
    """
    report = IngestReport(copied_from=dict(copied_from or {}), folder_topics=dict(topics or {}),
                          visibility=visibility, topics=list(added_topics or []))
    files = find_files(paths, report)
    report.files = len(files)
    if progress is None:
        progress = sys.stderr.isatty() and len(files) > 5
    planner = _Planner(engine, worker)
    for batch in _batches(engine, files, report, progress, owner):
        planner.submit(batch)
        while planner.backlog > PLAN_AHEAD:
            _commit_next(engine, planner, report)
    while planner.backlog:
        _commit_next(engine, planner, report)
    engine.save_index()
    return report


def worth_a_worker(paths: Iterable[str | Path]) -> bool:
    """Whether an ingest of `paths` is large enough to pay for a worker process."""
    total = 0
    for raw in paths:
        path = Path(raw)
        if path.is_file():
            total += path.stat().st_size
        elif path.is_dir():
            total += sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        if total >= WORKER_MIN_BYTES:
            return True
    return False


class IngestWorker:
    """A worker process that cleans and chunks documents while this process embeds.

    Cleaning and chunking are CPU-bound Python. In a thread they would hold the
    GIL that the model needs between its operations; in a process they only
    share the CPU. Start it early (before the model loads) so that its own
    start-up, about as long as the model's, overlaps it.
    """

    def __init__(self, settings: Settings) -> None:
        self.pool = ProcessPoolExecutor(
            max_workers=1, mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker, initargs=(settings, os.getpid()),
        )
        self._ready = self.pool.submit(_prepare_in_worker, [])

    @classmethod
    def start(cls, settings: Settings) -> IngestWorker | None:
        try:
            return cls(settings)
        except (OSError, ValueError):  # no process support here: prepare in-process
            return None

    def wait_until_ready(self) -> None:
        self._ready.result()

    def submit(self, docs: list[DocumentInput]) -> Future:
        return self.pool.submit(_prepare_in_worker, docs)

    def close(self) -> None:
        self.pool.shutdown(cancel_futures=True)

    def __enter__(self) -> IngestWorker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Planner:
    """Batches prepared ahead of the one being embedded, in the worker when there is one."""

    def __init__(self, engine: Engine, worker: IngestWorker | None) -> None:
        self.engine = engine
        self.worker = worker
        self.queue: deque[tuple[IngestPlan, Future | None]] = deque()

    @property
    def backlog(self) -> int:
        return len(self.queue)

    def submit(self, batch: list[DocumentInput]) -> None:
        plan = triage(self.engine, batch)
        docs = [doc for _, doc in plan.waiting]
        if self.worker is not None and docs:
            try:
                self.queue.append((plan, self.worker.submit(docs)))
                return
            except BrokenProcessPool:  # the worker died before its failure was seen: prepare here from now on
                self.worker = None
        self.queue.append((plan.complete(preparer_for(self.engine).prepare_all(docs)), None))

    def next_plan(self) -> IngestPlan:
        plan, future = self.queue.popleft()
        if future is None:
            return plan
        try:
            results = future.result()
        except BrokenProcessPool:  # the worker died: carry on here
            self.worker = None
            results = preparer_for(self.engine).prepare_all([doc for _, doc in plan.waiting])
        return plan.complete(results)


_worker_preparer: TextPreparer | None = None


def _start_worker(settings: Settings, parent_pid: int) -> None:
    """Worker process set-up: tied to its parent's life, the tokenizer and warm text tools, then idle priority."""
    global _worker_preparer
    _die_with_parent(parent_pid)
    map_large_blocks()
    _worker_preparer = TextPreparer.from_settings(settings)
    warm_up_text_tools()
    _idle_priority()


def _die_with_parent(parent_pid: int) -> None:
    """End this process when its parent dies, even by SIGKILL, even in the middle of a task.

    Without it a killed `kb ingest` leaves its worker running (holding memory and
    the database). On Linux the kernel sees to it (PR_SET_PDEATHSIG); a thread
    watching the parent's pid does it everywhere, and covers a prctl that is missing or refused.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass
    watch_parent(parent_pid)


def watch_parent(parent_pid: int, every: float = PARENT_CHECK_SECONDS) -> None:
    """Exit at once if `parent_pid` is no longer this process's parent, now or later (checked `every` seconds).

    A process whose parent dies is handed to another (init or a subreaper), so
    a changed parent pid means the parent is gone, whatever killed it.
    """

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(every)
        os._exit(1)

    if os.getppid() != parent_pid:  # the parent died before this process got here
        os._exit(1)
    threading.Thread(target=watch, name="watch-parent", daemon=True).start()


def _idle_priority() -> None:
    """Run only on CPU time the embedding leaves idle.

    With the model keeping every core busy, a worker at normal (or merely
    "nice") priority still preempts the model's threads, which then wait for
    each other and lose more time than the worker saves. Under SCHED_IDLE the
    worker only fills gaps; if it falls behind, the main process waits for it,
    the cores go idle, and it catches up: never slower than doing it in turn.
    """
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        try:
            os.nice(19)
        except (AttributeError, OSError):
            pass


def _prepare_in_worker(docs: list[DocumentInput]) -> list:
    assert _worker_preparer is not None
    return _worker_preparer.prepare_all(docs)


def _batches(
    engine: Engine, files: list[Path], report: IngestReport, progress: bool, owner: str = ""
) -> Iterator[list[DocumentInput]]:
    """Documents read from `files`, in batches sized for one embedding call each."""
    batch: list[DocumentInput] = []
    batch_chars = 0
    limit = FIRST_BATCH_CHARS
    for path in tqdm(files, unit="file", disable=not progress, desc="ingest"):
        try:
            result = read_file(path, max_bytes=engine.settings.max_file_bytes)
        except ReadError as exc:
            report.fail(str(path), str(exc))
            continue
        except Exception as exc:  # a reader bug must not stop the batch
            report.fail(str(path), f"{path}: could not be read ({type(exc).__name__}: {exc})")
            continue
        original = report.copied_from.get(str(path))
        if result.documents:
            keep_original(engine.store, original or str(path), path.read_bytes())
        for problem in result.problems:
            report.fail(problem.path, str(problem))
        for doc in result.documents:
            if original is not None:
                _rename_source(doc, original)
            doc.owner = owner
            if doc.kind == GUIDANCE and not doc.tags:
                doc.tags = list(report.folder_topics.get(str(path), []))
            if report.visibility:
                doc.visibility = report.visibility
            if report.topics:
                doc.tags = list(dict.fromkeys([*doc.tags, *report.topics]))
            batch.append(doc)
            batch_chars += len(doc.text)
            if batch_chars >= limit or len(batch) >= BATCH_DOCS:
                yield batch
                limit = BATCH_CHARS
                batch, batch_chars = [], 0
        if not result.problems:
            # A file read without problems is the full truth about what came
            # from it: notes no longer in it are removed. After any problem we
            # keep them, since a row we could not read may be one of them.
            _remove_vanished(engine, original or str(path), {d.source for d in result.documents}, report)
    if batch:
        yield batch


def _rename_source(doc: DocumentInput, source_file: str) -> None:
    """Store a document read from a copy under the file it is a copy of (notes keep their "#row" ending)."""
    copy = doc.source_file
    doc.source = source_file + doc.source[len(copy):] if doc.source.startswith(copy) else doc.source
    doc.source_file = source_file


def _commit_next(engine: Engine, planner: _Planner, report: IngestReport) -> None:
    plan = planner.next_plan()
    for doc, outcome in zip(plan.docs, commit(engine, plan), strict=True):
        if outcome.status == "failed":
            report.fail(outcome.source, f"{outcome.source}: {outcome.error}")
        else:
            setattr(report, outcome.status, getattr(report, outcome.status) + 1)
            counts = report.by_file.setdefault(doc.source_file, {})
            counts[outcome.status] = counts.get(outcome.status, 0) + 1


def _remove_vanished(engine: Engine, source_file: str, current: set[str], report: IngestReport) -> None:
    vanished = sources_from_file(engine, source_file) - current
    if vanished:
        report.removed += len(delete_documents(engine, sorted(vanished)))
