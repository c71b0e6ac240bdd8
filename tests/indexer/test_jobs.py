"""Ingest as jobs: in-process, and through real `kb worker` processes on the real Redis and RabbitMQ.

The queue tests skip cleanly unless KB_TEST_REDIS_URL / KB_TEST_RABBITMQ_URL name a broker (.ci/run sets
them); each test uses a queue of its own, so runs that share a broker cannot take each other's jobs.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import func, select

from indexer import jobs
from indexer.jobs import DONE, FILES, UPLOAD, FileToIngest, create_job, get_job, run_job
from kb.config import Settings
from kb.embed.embedder import Embedder
from kb.knowledge_base import KnowledgeBase
from kb.storage.models import Chunk, Document
from tests.conftest import REPO
from tests.portal_client import ensure_user, signed_in
from tests.webapp.test_api import check
from webapp import create_app

GUIDE = "# Callbacks\n\nCall a customer back within {hours} hours when a complaint stays open.\n"


def _broker(name: str) -> str:
    url = os.environ.get(name)
    if not url:
        pytest.skip(f"{name} is not set; queue tests skipped")
    return url


def _count_documents(kb: KnowledgeBase, source_file: str) -> int:
    with kb.store.session() as s:
        return s.scalar(select(func.count()).select_from(Document).where(Document.source_file == source_file))


def test_a_job_ingests_its_files_once_and_running_it_again_changes_nothing(make_kb, tmp_path):
    kb = make_kb()
    original = (tmp_path / "guides" / "callbacks.md").resolve()
    files = [FileToIngest(str(original), GUIDE.format(hours=24).encode(), ["service"]),
             FileToIngest(str(tmp_path / "broken.docx"), b"not a zip at all")]
    job_id = create_job(kb.engine, FILES, files)
    assert get_job(kb.engine, job_id).state == "queued"

    view = run_job(kb.engine, job_id)
    assert view.state == DONE and view.attempts == 1 and view.files_done == 2
    good, bad = view.files
    assert good.state == "added" and good.doc_ids and good.error is None
    assert bad.state == "failed" and "broken.docx" in bad.error and "kb-job-" not in bad.error
    # Stored under the path it was found at, with the topics of its folder, not under the worker's copy.
    doc = kb.get_document(good.doc_ids[0])
    assert doc.source == str(original) and "service" in [t.tag for t in doc.tags]

    again = run_job(kb.engine, job_id)  # a message delivered twice
    assert again.attempts == 1 and again.files == view.files
    assert _count_documents(kb, str(original)) == 1


def test_files_ingested_together_each_get_their_own_outcome_and_problems(make_kb, tmp_path):
    kb = make_kb()
    note = {"id": "N-1", "date": "2025-01-07", "complaint": "The router reboots every night.",
            "resolution": "Firmware updated.", "status": "resolved"}
    notes = (json.dumps(note) + "\n{not json\n").encode()
    files = [FileToIngest(str(tmp_path / "guides" / "callbacks.md"), GUIDE.format(hours=2).encode()),
             FileToIngest(str(tmp_path / "notes" / "notes.jsonl"), notes),
             FileToIngest(str(tmp_path / "broken.docx"), b"not a zip at all"),
             FileToIngest(str(tmp_path / "guides" / "callbacks-copy.md"), GUIDE.format(hours=2).encode())]
    view = run_job(kb.engine, create_job(kb.engine, FILES, files))
    guide, table, broken, copy = view.files
    assert guide.state == "added" and guide.error is None and len(guide.doc_ids) == 1
    # The good row goes in; the bad one is named, under this file, not under the worker's copy.
    assert table.state == "added" and len(table.doc_ids) == 1
    assert "notes.jsonl" in table.error and "kb-job-" not in table.error and "line 2" in table.error
    assert broken.state == "failed" and broken.doc_ids == [] and "broken.docx" in broken.error
    assert "notes.jsonl" not in broken.error and "kb-job-" not in broken.error
    assert copy.state == "added" and copy.error is None and copy.doc_ids != guide.doc_ids


@pytest.fixture
def worker_kb(tmp_path, models_dir, database_url, monkeypatch):
    """A knowledge base that embeds passage batches side by side, as `kb worker` does, with a group per file."""
    monkeypatch.setattr(jobs, "GROUP_BYTES", 100)
    settings = Settings(data_dir=tmp_path / "data", models_dir=models_dir, database_url=database_url, threads=2,
                        passages_side_by_side=True)
    kb = KnowledgeBase.open(settings, embedder=Embedder(settings))
    yield kb
    kb.close()


def _guides(tmp_path: Path, hours=(2, 4, 8, 16)) -> list[FileToIngest]:
    return [FileToIngest(str(tmp_path / f"guide-{h}.md"), GUIDE.format(hours=h).encode()) for h in hours]


def test_a_worker_s_job_ingests_its_groups_of_files_side_by_side_each_with_its_outcome(worker_kb, tmp_path, monkeypatch):
    """Where passages are embedded side by side (a `kb worker`), a job's groups of files run two at once."""
    kb = worker_kb
    running: set[str] = set()
    overlapped = threading.Event()
    ingest = jobs._ingest_copies

    def watched(engine, files):  # notes which groups run at the same time, and runs them
        running.add(files[0][0])
        if len(running) > 1:
            overlapped.set()
        try:
            overlapped.wait(timeout=30)
            return ingest(engine, files)
        finally:
            running.discard(files[0][0])

    monkeypatch.setattr(jobs, "_ingest_copies", watched)
    files = _guides(tmp_path)
    view = run_job(kb.engine, create_job(kb.engine, FILES, files))
    assert overlapped.is_set()
    assert [f.state for f in view.files] == ["added"] * 4
    for file, hours in zip(view.files, (2, 4, 8, 16), strict=True):
        assert f"within {hours} hours" in kb.get_document(file.doc_ids[0]).text


def test_a_group_that_fails_stops_the_job_s_later_groups_and_its_retry_ingests_them(worker_kb, tmp_path, monkeypatch):
    """A group that raises (the database gone, the job's time limit) leaves the groups not yet started queued."""
    kb = worker_kb
    second_started, failed = threading.Event(), threading.Event()
    ingest = jobs._ingest_copies

    def first_fails(engine, files):  # the first group fails while the second is under way
        if files[0][0].endswith("guide-2.md"):
            second_started.wait(timeout=30)
            failed.set()
            raise ConnectionError("the database went away")
        second_started.set()
        failed.wait(timeout=30)
        return ingest(engine, files)

    monkeypatch.setattr(jobs, "_ingest_copies", first_fails)
    files = _guides(tmp_path)
    job_id = create_job(kb.engine, FILES, files)
    with pytest.raises(ConnectionError):
        run_job(kb.engine, job_id)
    assert [f.state for f in get_job(kb.engine, job_id).files] == ["queued", "added", "queued", "queued"]

    monkeypatch.setattr(jobs, "_ingest_copies", ingest)
    view = run_job(kb.engine, job_id)  # the queue's retry
    assert view.state == "done" and [f.state for f in view.files] == ["added"] * 4
    assert len({d for f in view.files for d in f.doc_ids}) == 4


def test_a_job_s_files_are_followed_by_the_indexes_once_when_the_job_ends(make_kb, tmp_path):
    kb = make_kb()
    indexes = kb.engine.indexes
    before = len(indexes.table)
    files = _guides(tmp_path, (2, 4, 8))
    job_id = create_job(kb.engine, FILES, files)
    with kb.engine.writes_batched():
        view = run_job(kb.engine, job_id)  # a batch inside a batch: still one follow, at the outer end
        assert view.files_done == 3 and len(indexes.table) == before  # written, not followed yet
    added = [d for f in view.files for d in f.doc_ids]
    assert len(added) == 3 and len(indexes.table) > before
    assert set(indexes.table.doc_of(indexes.table.ids).tolist()) >= set(added)
    assert not indexes.dirty  # and saved
    assert [r.title for r in kb.search("call back within 8 hours", k=3).results][0] == "Callbacks"


def test_an_upload_job_runs_as_its_uploader_and_cannot_replace_what_is_not_theirs(make_kb):
    kb = make_kb()
    ensure_user(kb.store, "test-agent", "agent")
    ensure_user(kb.store, "test-admin", "admin")
    admin_job = create_job(kb.engine, UPLOAD, [FileToIngest("policy.md", b"---\nvisibility: admin\n---\n# P\n\nBoard only.\n")],
                           owner="test-admin")
    assert run_job(kb.engine, admin_job).files[0].state == "added"
    agent_job = create_job(kb.engine, UPLOAD, [FileToIngest("notice.md", b"---\nvisibility: admin\n---\n# N\n\nMine.\n")],
                           owner="test-agent")
    refused = run_job(kb.engine, agent_job).files[0]
    assert refused.state == "failed" and "visibility" in refused.error
    chosen = create_job(kb.engine, UPLOAD, [FileToIngest("brief.md", b"# B\n\nFor dealers.\n", ["dealers"], "partner")],
                        owner="test-agent")
    doc = kb.get_document(run_job(kb.engine, chosen).files[0].doc_ids[0])
    assert doc.visibility == "partner" and "dealers" in [t.tag for t in doc.tags]
    gone = create_job(kb.engine, UPLOAD, [FileToIngest("x.md", b"# X\n\nText.\n")], owner="nobody-here")
    assert "no longer exists" in run_job(kb.engine, gone).files[0].error


class Worker:
    """A real `kb worker` in a subprocess, on its own data directory."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        self.proc = subprocess.Popen([sys.executable, "-m", "cli.main", "worker"], cwd=REPO, env=env,
                                     stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 180
        while "waiting for jobs" not in log.read_text(errors="replace"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError("kb worker did not start:\n" + log.read_text(errors="replace")[-3000:])
            time.sleep(0.2)

    def kill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


def _queue_env(tmp_path: Path, models_dir: Path, database_url: str, queue_url: str, name: str) -> dict[str, str]:
    return {**os.environ, "KB_DATA_DIR": str(tmp_path / name), "KB_MODELS_DIR": str(models_dir),
            "KB_DATABASE_URL": database_url, "KB_QUEUE_URL": queue_url,
            "KB_QUEUE_NAME": f"kb_test_{uuid.uuid4().hex[:10]}"}


def _wait_for_job(kb: KnowledgeBase, job_id: str, timeout: float = 240):
    deadline = time.monotonic() + timeout
    while (view := get_job(kb.engine, job_id)) is None or not view.finished:
        assert time.monotonic() < deadline, f"job {job_id} did not finish: {view}"
        time.sleep(0.3)
    return view


@pytest.mark.postgres
def test_a_file_uploaded_through_one_node_is_found_through_another(tmp_path, models_dir, embedder, postgres_url):
    """Two portal nodes with their own data directories, one PostgreSQL, Redis, and a `kb worker`."""
    env = _queue_env(tmp_path, models_dir, postgres_url, _broker("KB_TEST_REDIS_URL"), "worker")
    settings = {key: Settings(data_dir=tmp_path / key, models_dir=models_dir, database_url=postgres_url,
                              queue_url=env["KB_QUEUE_URL"], queue_name=env["KB_QUEUE_NAME"]) for key in "ab"}
    node_a = KnowledgeBase.open(settings["a"], embedder=embedder)
    node_b = KnowledgeBase.open(settings["b"], embedder=embedder)
    worker = Worker(env, tmp_path / "worker.log")
    try:
        app_a = create_app({"KB_INSTANCE": node_a, "TESTING": True, "KB_WARM_UP": False})
        app_b = create_app({"KB_INSTANCE": node_b, "TESTING": True, "KB_WARM_UP": False})
        text = "# Loyalty desk\n\nThe loyalty desk phones every lapsed gold member on Tuesdays.\n"
        started = time.monotonic()
        response = signed_in(app_a, "employee").post(
            "/api/v1/documents", data={"files": [(io.BytesIO(text.encode()), "loyalty.md"),
                                                 (io.BytesIO(b"x"), "script.exe")]},
            content_type="multipart/form-data")
        body = check(response, "/api/v1/documents", "post")
        assert response.status_code == 202 and time.monotonic() - started < 5
        assert [r["status"] for r in body["results"]] == ["queued", "failed"]
        assert "unsupported file type" in body["results"][1]["error"]
        job_id = body["job_id"]

        view = _wait_for_job(node_a, job_id)
        finished = time.monotonic()
        assert view.state == "done" and view.files[0].state == "added", view
        job = check(signed_in(app_b, "employee").get(f"/api/v1/jobs/{job_id}"), "/api/v1/jobs/{job_id}")
        assert job["state"] == "done" and job["files"][0]["doc_ids"] == view.files[0].doc_ids
        assert signed_in(app_b, "agent", "someone-else").get(f"/api/v1/jobs/{job_id}").status_code in (403, 404)

        reader_b = signed_in(app_b, "employee")
        while True:
            hits = reader_b.get("/api/v1/search", query_string={"q": "lapsed gold members phoned on Tuesdays"})
            if view.files[0].doc_ids[0] in {h["doc_id"] for h in hits.get_json()["results"]}:
                break
            assert time.monotonic() - finished < 5, "node B did not find the document within 5 s of its job"
            time.sleep(0.2)
        page = signed_in(app_a, "employee").get(f"/jobs/{job_id}").get_data(as_text=True)
        assert "loyalty.md" in page and str(tmp_path) not in page
    finally:
        worker.stop()
        node_a.close()
        node_b.close()


@pytest.mark.postgres
def test_a_worker_killed_mid_job_loses_nothing_and_doubles_nothing(tmp_path, models_dir, embedder, postgres_url):
    """SIGKILL a `kb worker` (RabbitMQ) while it ingests; a second worker finishes the job, each file once."""
    env = _queue_env(tmp_path, models_dir, postgres_url, _broker("KB_TEST_RABBITMQ_URL"), "worker")
    kb = KnowledgeBase.open(Settings(data_dir=tmp_path / "node", models_dir=models_dir, database_url=postgres_url),
                            embedder=embedder)
    folder = tmp_path / "guides"
    folder.mkdir()
    paragraph = "Escalate a complaint that stays open past two working days to the team lead. " * 12
    for i in range(12):
        (folder / f"guide-{i:02}.md").write_text(f"# Guide {i}\n\n" + f"{paragraph}\n\n" * 30)
    first = Worker(env, tmp_path / "worker-1.log")
    second = None
    try:
        queued = subprocess.run([sys.executable, "-m", "cli.main", "ingest", "--queue", str(folder), "--json"],
                                cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=True)
        job_id = json.loads(queued.stdout)["job_id"]
        deadline = time.monotonic() + 180
        while (view := get_job(kb.engine, job_id)).files_done < 2:  # killed part-way through the files
            assert time.monotonic() < deadline and not view.finished, view
            time.sleep(0.1)
        first.kill()
        assert get_job(kb.engine, job_id).state == "running"
        second = Worker(env, tmp_path / "worker-2.log")
        view = _wait_for_job(kb, job_id)
        assert view.state == "done" and view.attempts == 2, view
        assert all(f.state in ("added", "skipped") for f in view.files), view
        with kb.store.session() as s:
            sources = list(s.scalars(select(Document.source_file).where(Document.source_file.startswith(str(folder)))))
            ordinals = s.execute(select(Chunk.document_id, Chunk.ordinal, func.count()).group_by(Chunk.document_id, Chunk.ordinal)
                                 .having(func.count() > 1)).all()
        assert sorted(sources) == sorted(str(p.resolve()) for p in folder.glob("*.md"))
        assert ordinals == []
    finally:
        first.stop()
        if second is not None:
            second.stop()
        kb.close()


def test_a_worker_runs_two_jobs_at_once_on_its_own_database(tmp_path, models_dir, embedder):
    """As it comes, `kb worker` starts a second job while the first is still running (SQLite, Redis)."""
    env = _queue_env(tmp_path, models_dir, "", _broker("KB_TEST_REDIS_URL"), "node")
    env.pop("KB_THREADS", None)
    kb = KnowledgeBase.open(Settings(data_dir=tmp_path / "node", models_dir=models_dir), embedder=embedder)
    paragraph = "A partner sees only what is shared with the dealer network, never a customer's details. " * 10
    folders = []
    for name in ("first", "second"):
        folder = tmp_path / name
        folder.mkdir()
        (folder / f"{name}.md").write_text(f"# {name}\n\n" + f"{paragraph}\n\n" * 25)
        folders.append(folder)
    worker = Worker(env, tmp_path / "worker.log")
    try:
        job_ids = [json.loads(subprocess.run(
            [sys.executable, "-m", "cli.main", "ingest", "--queue", str(folder), "--json"], cwd=REPO, env=env,
            capture_output=True, text=True, timeout=120, check=True).stdout)["job_id"] for folder in folders]
        first, second = sorted((_wait_for_job(kb, job_id) for job_id in job_ids), key=lambda v: v.started_at)
        assert first.state == second.state == "done", (first, second)
        assert second.started_at < first.finished_at, "the second job waited for the first"
        assert [f.state for f in first.files + second.files] == ["added", "added"]
        with kb.store.session() as s:
            doubled = s.execute(select(Chunk.document_id, Chunk.ordinal).group_by(Chunk.document_id, Chunk.ordinal)
                                .having(func.count() > 1)).all()
        assert doubled == []
    finally:
        worker.stop()
        kb.close()
