"""Shared fixtures: real parts only (SQLite files, PostgreSQL, FAISS, the bundled model).

Expensive things are built once per session: the converted model, one loaded
embedder, and a knowledge base of the bundled corpus made by the real `kb`
command. Tests that change a knowledge base get their own data directory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from kb.config import Settings
from kb.embed.bundled_model import ensure_bundled_model
from kb.embed.embedder import Embedder
from kb.knowledge_base import KnowledgeBase

REPO = Path(__file__).resolve().parents[1]
# The portals under test (test clients and `kb serve`) run on plain http://localhost.
os.environ.setdefault("KB_COOKIE_SECURE", "0")
CORPUS = REPO / "corpus"


def find_shared(name: str) -> Path | None:
    """A folder of the shared material (seeds, benchmarks) next to the checkout, if present."""
    env = os.environ.get("KB_SHARED_DIR")
    candidates = [Path(env) / name] if env else []
    candidates += [parent / "shared" / name for parent in REPO.parents]
    candidates.append(Path("/work/shared") / name)
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    return None


def run_kb(*args: str, data_dir: Path, models_dir: Path, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    """Run the real `kb` command line in a subprocess."""
    env = {**os.environ, "KB_DATA_DIR": str(data_dir), "KB_MODELS_DIR": str(models_dir)}
    env.pop("KB_DATABASE_URL", None)
    env.update(kwargs.pop("env", {}))
    proc = subprocess.run(
        [sys.executable, "-m", "cli.main", *args], env=env, cwd=REPO,
        capture_output=True, text=True, timeout=kwargs.pop("timeout", 900), **kwargs,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"kb {' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-4000:]}")
    return proc


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory) -> Path:
    configured = os.environ.get("KB_TEST_MODELS_DIR")
    directory = Path(configured) if configured else tmp_path_factory.mktemp("models")
    ensure_bundled_model(directory)
    return directory


@pytest.fixture(scope="session")
def embedder(models_dir) -> Embedder:
    return Embedder(Settings(models_dir=models_dir))


def _postgres_url() -> str:
    url = os.environ.get("KB_TEST_DATABASE_URL")
    if not url:
        pytest.skip("KB_TEST_DATABASE_URL is not set; PostgreSQL tests skipped")
    return url


@pytest.fixture
def postgres_url():
    """A fresh schema on the test PostgreSQL server, dropped afterwards."""
    base = _postgres_url()
    schema = f"kb_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'kb.sqlite3'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def make_kb(tmp_path, models_dir, embedder, database_url):
    """Open knowledge bases on this test's data directory and database; all closed at the end."""
    opened: list[KnowledgeBase] = []

    def factory(**overrides) -> KnowledgeBase:
        settings = Settings(
            data_dir=tmp_path / "data", models_dir=models_dir, database_url=database_url, **overrides
        )
        kb = KnowledgeBase.open(settings, embedder=embedder)
        opened.append(kb)
        return kb

    yield factory
    for kb in opened:
        kb.close()


@pytest.fixture(scope="session")
def corpus_data_dir(tmp_path_factory, models_dir) -> Path:
    """A data directory holding the bundled corpus, ingested by the real `kb ingest`."""
    data_dir = tmp_path_factory.mktemp("corpus-kb")
    proc = run_kb("ingest", str(CORPUS), "--json", data_dir=data_dir, models_dir=models_dir)
    report = json.loads(proc.stdout)
    assert report["failed"] == [], report["failed"]
    assert report["added"] > 0
    (data_dir / "first-ingest.json").write_text(proc.stdout)
    return data_dir


@pytest.fixture(scope="session")
def corpus_kb(corpus_data_dir, models_dir, embedder) -> KnowledgeBase:
    kb = KnowledgeBase.open(Settings(data_dir=corpus_data_dir, models_dir=models_dir), embedder=embedder)
    yield kb
    kb.close()
