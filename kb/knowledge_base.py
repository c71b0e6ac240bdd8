"""One object per data directory for callers at the top: the command line, the portal, scripts.

`KnowledgeBase` is a thin facade: it opens an `Engine` (kb/engine.py) and
delegates search, ask, add and delete to the modules that do them. Search,
ingest writing and the services take the engine itself, never this facade,
so imports run one way (see docs/architecture.md).
"""

from __future__ import annotations

from indexer import writer
from indexer.prepare import PreparedDocument, TextPreparer
from indexer.writer import AddOutcome, IngestPlan
from kb.access import OPERATOR, Viewer
from kb.config import Settings
from kb.documents import DocumentInput
from kb.embed.embedder import Embedder
from kb.engine import Engine, Stats
from kb.index.chunk_table import SearchFilters
from kb.index.indexes import Indexes
from kb.search.answer import Answer, answer_question
from kb.search.pipeline import search_text
from kb.search.types import SearchResponse
from kb.storage.models import Document
from kb.storage.store import Store
from kb.text.analyzer import Analyzer


class KnowledgeBase:
    """The knowledge base of one data directory."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def open(
        cls, settings: Settings | None = None, check_model: bool = True, embedder: Embedder | None = None
    ) -> KnowledgeBase:
        """Open (creating if needed) the knowledge base described by `settings` or the environment."""
        return cls(Engine.open(settings, check_model=check_model, embedder=embedder))

    def close(self) -> None:
        self.engine.close()

    def __enter__(self) -> KnowledgeBase:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- what the engine holds ---------------------------------------------------

    @property
    def settings(self) -> Settings:
        return self.engine.settings

    @property
    def store(self) -> Store:
        return self.engine.store

    @property
    def indexes(self) -> Indexes:
        return self.engine.indexes

    @property
    def embedder(self) -> Embedder:
        return self.engine.embedder

    @property
    def analyzer(self) -> Analyzer:
        return self.engine.analyzer

    @property
    def model_id(self) -> str:
        return self.engine.model_id

    @property
    def preparer(self) -> TextPreparer:
        return writer.preparer_for(self.engine)

    def refresh(self) -> bool:
        return self.engine.refresh()

    def save_index(self) -> None:
        self.engine.save_index()

    def reindex(self, reembed: bool = False, reanalyze: bool = False) -> int:
        return self.engine.reindex(reembed=reembed, reanalyze=reanalyze)

    def stats(self) -> Stats:
        return self.engine.stats()

    # -- ingest ------------------------------------------------------------------

    def prepare(self, doc: DocumentInput) -> PreparedDocument:
        """Clean, detect languages, segment and chunk one document (no embedding yet)."""
        return self.preparer.prepare(doc)

    def add_documents(self, docs: list[DocumentInput]) -> list[AddOutcome]:
        return writer.add_documents(self.engine, docs)

    def plan(self, docs: list[DocumentInput]) -> IngestPlan:
        return writer.plan(self.engine, docs)

    def triage(self, docs: list[DocumentInput]) -> IngestPlan:
        return writer.triage(self.engine, docs)

    def commit(self, plan: IngestPlan, atomic: bool = False) -> list[AddOutcome]:
        return writer.commit(self.engine, plan, atomic)

    def delete(self, targets: list[str]) -> list[str]:
        return writer.delete_documents(self.engine, targets)

    def sources_from_file(self, source_file: str) -> set[str]:
        return writer.sources_from_file(self.engine, source_file)

    # -- questions ---------------------------------------------------------------

    def search(
        self, query: str, k: int = 10, lang: str | None = None, kind: str | None = None, *,
        mode: str = "hybrid", filters: SearchFilters | None = None, offset: int = 0, group: bool = True,
        facets: bool = False, viewer: Viewer = OPERATOR, snippets: bool = True,
    ) -> SearchResponse:
        """Passages about `query`, in any language (see `kb.search.pipeline.search_text`)."""
        return search_text(self.engine, query, k, lang, kind, mode=mode, filters=filters, offset=offset,
                           group=group, facets=facets, viewer=viewer, snippets=snippets)

    def ask(self, question: str, viewer: Viewer = OPERATOR) -> Answer:
        """One or two sentences quoted from the knowledge base that answer `question`, or none."""
        return answer_question(self.engine, question, viewer=viewer)

    def get_document(self, doc_id: int) -> Document | None:
        return self.engine.store.document_with_chunks(doc_id)
