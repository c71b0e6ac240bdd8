"""An empty portal of the test module's own (a fresh data directory, the real model): modules that need the
bundled corpus, or other settings, define `portal_kb` and `app` themselves."""

from __future__ import annotations

import pytest

from kb.config import Settings
from kb.knowledge_base import KnowledgeBase
from webapp import create_app


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, request):
    return tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1]) / "data"


@pytest.fixture(scope="module")
def portal_kb(data_dir, models_dir, embedder):
    kb = KnowledgeBase.open(Settings(data_dir=data_dir, models_dir=models_dir), embedder=embedder)
    yield kb
    kb.close()


@pytest.fixture(scope="module")
def app(portal_kb):
    return create_app({"KB_INSTANCE": portal_kb, "TESTING": True, "KB_WARM_UP": False})
