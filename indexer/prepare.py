"""Everything that happens to a document before the model sees it.

Cleaning, language detection, sentence segmentation and chunking need the
model's tokenizer (chunks are sized in model tokens) but not the model. Keeping
them here, behind a tokenizer alone, lets a large ingest run them in a worker
process while the main process embeds: Python-heavy segmentation in a thread
would hold the GIL that the model needs between its operations.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from kb.config import Settings
from kb.documents import DocumentInput
from kb.embed.embedder import model_input, onnx_dir, resolve_model
from kb.embed.pieces import ModelTokenizer, open_tokenizer
from kb.text.analyzer import Analyzer, load_user_words
from kb.text.chunking import ChunkSpec, iter_chunks
from kb.text.cleaning import BoilerplateRules, clean_text, load_boilerplate_rules
from kb.text.privacy import EMAIL, NAME, PHONE, PiiSpan, find_personal_data, index_text
from kb.text.structure import CONTEXT_TOKENS, Heading, embed_text, extract_headings, heading_paths

# Part of every content hash: bump it when cleaning or chunking changes, so the
# next ingest re-processes documents instead of skipping them as unchanged.
# 2: personal data in notes kept out of the indexes; 3: the author's characters kept (no NFKC for
# display), headings, lists and tables kept, the heading path given to the model with each chunk;
# 4: personal data found (and kept out of the indexes, masked for partners) in guidance as well.
# 5: long texts segmented in bounded windows.
PIPELINE_VERSION = 5
MAX_TITLE_CHARS = 120
# A language holding at least this share of a document's text makes it "mixed".
MIXED_SHARE = 0.10
# Languages with less than this share are not listed among a document's languages.
LISTED_SHARE = 0.02


class TooManyChunks(ValueError):
    """A document that would make more chunks than a file may have (`Settings.max_chunks_per_file`)."""


@dataclass
class PreparedDocument:
    """A document cleaned and cut into chunks, ready to embed."""

    doc: DocumentInput
    content_hash: str
    text: str
    chunks: list[ChunkSpec]
    terms: list[list[str]]  # keyword-index terms of each chunk
    lang: str
    languages: list[str]
    is_mixed: bool
    personal_data: list[PiiSpan] = field(default_factory=list)
    title: str = ""
    headings: list[Heading] = field(default_factory=list)  # spans in `text`
    chunk_headings: list[list[str]] = field(default_factory=list)  # per chunk, without the title

    def index_text(self, chunk: ChunkSpec) -> str:
        """What the indexes see of a chunk: its text with personal data replaced by labels."""
        return index_text(self.text[chunk.start : chunk.end], self.personal_data, chunk.start)

    def embed_texts(self) -> list[str]:
        """What the model is given for each chunk: its heading path on a line, then its text (see `embed_text`)."""
        paths = self.chunk_headings or [[] for _ in self.chunks]
        return [embed_text(self.doc.kind, self.title, path, self.index_text(chunk))
                for chunk, path in zip(self.chunks, paths, strict=True)]


def find_document_personal_data(doc: DocumentInput, text: str) -> list[PiiSpan]:
    """Personal data in a document's cleaned text: in guidance too (a guide pasted from a real case keeps its
    customer's phone or ID), and in a note its customer's own name and contacts wherever they appear."""
    if doc.note is None:
        return find_personal_data(text)
    known = [(NAME, doc.note.customer_name), (EMAIL, doc.note.customer_email), (PHONE, doc.note.customer_phone)]
    return find_personal_data(text, known)


def content_hash(doc: DocumentInput) -> str:
    """Everything that changes what we store for a document, and nothing else."""
    payload = {
        "v": PIPELINE_VERSION, "title": doc.title, "text": doc.text, "kind": doc.kind,
        "tags": sorted(doc.tags), "visibility": doc.visibility, "language": doc.language,
        "note": doc.note.__dict__ if doc.note else None,
    }
    raw = json.dumps(payload, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


class TextPreparer:
    """Turns `DocumentInput`s into `PreparedDocument`s with the model's tokenizer only."""

    def __init__(self, count_tokens: Callable[[list[str]], list[int]], max_tokens: int,
                 boilerplate: BoilerplateRules, analyzer: Analyzer, max_chunks: int | None = None) -> None:
        self.count_tokens = count_tokens
        self.max_tokens = max_tokens
        self.boilerplate = boilerplate
        self.analyzer = analyzer
        self.max_chunks = max_chunks

    @classmethod
    def from_settings(cls, settings: Settings, analyzer: Analyzer | None = None) -> TextPreparer:
        """Load just the tokenizer of the configured model (a fraction of a second).

        A model directory with a `tokenizer.json` is read without transformers
        (`kb.embed.pieces`: sentencepiece where it gives the same ids, at a fifth
        of the memory); anything else goes through transformers' AutoTokenizer.
        """
        ref = resolve_model(settings)
        prefix = "passage: " if ref.is_e5 else ""
        model_dir = Path(ref.path)
        limit = _model_max_tokens(model_dir) if model_dir.is_dir() else None
        if (model_dir / "tokenizer.json").exists():
            pieces = open_tokenizer(model_dir, None, onnx_dir(settings))  # counts are never cut
            count = piece_counter(pieces, prefix)
        else:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(ref.path, local_files_only=model_dir.is_dir())
            count = token_counter(tokenizer, prefix)
            limit = limit or min(int(tokenizer.model_max_length), 512)
        analyzer = analyzer or Analyzer(load_user_words(settings.resolved_dictionary_file))
        # Room is left for the heading line the model reads before each guidance chunk (see embed_text).
        budget = min(settings.chunk_tokens, (limit or 512) - CONTEXT_TOKENS)
        return cls(count, budget, load_boilerplate_rules(settings.boilerplate_file),
                   analyzer, settings.max_chunks_per_file)

    def prepare(self, doc: DocumentInput) -> PreparedDocument:
        text, headings = extract_headings(clean_text(doc.text, self.boilerplate))
        chunks = self.chunks(text)
        title = document_title(doc, text)
        paths = heading_paths(text, headings, [(c.start, c.end) for c in chunks], title)
        share: Counter[str] = Counter()
        for chunk in chunks:
            share[chunk.lang] += chunk.end - chunk.start
        total = sum(share.values()) or 1
        ranked = [lang for lang, n in share.most_common() if n / total >= LISTED_SHARE]
        main = doc.language or (ranked[0] if ranked else "und")
        mixed = sum(1 for n in share.values() if n / total >= MIXED_SHARE) > 1
        personal = find_document_personal_data(doc, text)
        terms = [self.analyzer.term_texts(index_text(text[c.start : c.end], personal, c.start)) for c in chunks]
        return PreparedDocument(doc, content_hash(doc), text, chunks, terms, main, ranked or [main], mixed, personal,
                                title, headings, paths)

    def chunks(self, text: str) -> list[ChunkSpec]:
        """The chunks of a cleaned text; raises `TooManyChunks` as soon as they pass `max_chunks`.

        Chunks are made a window at a time, so a file far past the limit is
        refused after a window more than the limit, not after segmenting all of it.
        """
        chunks: list[ChunkSpec] = []
        for chunk in iter_chunks(text, self.count_tokens, max_tokens=self.max_tokens):
            chunks.append(chunk)
            if self.max_chunks is not None and len(chunks) > self.max_chunks:
                raise TooManyChunks(
                    f"its text makes more than {self.max_chunks:,} chunks, the most a file may have "
                    "(KB_MAX_CHUNKS_PER_FILE); split it into smaller files or raise the limit"
                )
        return chunks

    def prepare_all(self, docs: list[DocumentInput]) -> list[PreparedDocument | str]:
        """Each document prepared, or the reason it could not be; never raises."""
        results: list[PreparedDocument | str] = []
        for doc in docs:
            try:
                prepared = self.prepare(doc)
            except TooManyChunks as exc:
                results.append(str(exc))
                continue
            except Exception as exc:  # one odd text must not stop the batch
                results.append(f"could not be processed ({type(exc).__name__}: {exc})")
                continue
            results.append(prepared if prepared.chunks else "no text left after cleaning")
        return results


def document_title(doc: DocumentInput, cleaned: str) -> str:
    """The reader's title, or the cleaned text's first line when the title was only the raw first line."""
    if doc.title and not doc.title_from_text:
        return doc.title
    first = next((line.strip() for line in cleaned.splitlines() if line.strip()), "")
    if first and len(first) <= MAX_TITLE_CHARS:
        return first
    if doc.title:
        return doc.title
    return first[: MAX_TITLE_CHARS - 1] + "…" if first else "(untitled)"


def token_counter(tokenizer, prefix: str) -> Callable[[list[str]], list[int]]:
    """Tokens the model will see for each passage: prefix and special tokens included."""

    def count(texts: list[str]) -> list[int]:
        if not texts:
            return []
        encoded = tokenizer(
            [model_input(prefix, t) for t in texts], add_special_tokens=True, truncation=False,
            return_attention_mask=False, return_token_type_ids=False, verbose=False,
        )
        return [len(ids) for ids in encoded["input_ids"]]

    return count


def piece_counter(tokenizer: ModelTokenizer, prefix: str) -> Callable[[list[str]], list[int]]:
    """`token_counter` for a `kb.embed.pieces` tokenizer opened without a limit (special tokens included)."""

    def count(texts: list[str]) -> list[int]:
        if not texts:
            return []
        return [len(ids) for ids in tokenizer.ids([model_input(prefix, t) for t in texts])]

    return count


def _model_max_tokens(model_dir: Path) -> int | None:
    config = model_dir / "sentence_bert_config.json"
    if config.exists():
        value = json.loads(config.read_text()).get("max_seq_length")
        return int(value) if value else None
    return None
