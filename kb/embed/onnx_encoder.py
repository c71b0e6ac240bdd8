"""Passages, queries and answer sentences through ONNX Runtime: the same weights, exported once, faster on a CPU.

One short query took a median 18 ms through torch and 6 ms through ONNX Runtime
on this 2-core machine, with vectors identical to float precision (cosine 1.0).
Queries and answer sentences may go through an int8 copy of the export instead
(`quantize_model`): 1.6x faster again, cosine >= 0.99 with the float vectors.
Passages, which are stored, always take the float export. sentence-transformers' own ONNX
backend needs `optimum`, whose releases pin a transformers older than ours; the
export here is torch's own (`torch.onnx.export`) of the model's transformer,
with the pooling and normalisation its sentence-transformers configuration names
done in numpy. A model whose modules are anything else stays on torch.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kb.embed.pieces import open_tokenizer

ONNX_OPSET = 17
BATCH = 16
BATCH_TOKENS = 16 * 256
# A batch pads its texts to its longest: one at most this much longer than its shortest (see `_token_batches`).
PAD_RATIO, PAD_SLACK = 1.2, 8
TOKENIZE_SLICE = 256


@dataclass(frozen=True)
class OnnxPlan:
    """What the exported model needs around it: pooling, normalisation, token limit and output size."""

    pooling: str  # "mean" or "cls"
    normalize: bool
    max_tokens: int
    dimension: int


def plan_for(model_dir: Path) -> OnnxPlan | None:
    """How to run a local sentence-transformers directory through ONNX, or None when it has other modules."""
    try:
        modules = json.loads((model_dir / "modules.json").read_text())
        kinds = [m["type"].rsplit(".", 1)[-1] for m in modules]
        if kinds not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
            return None
        pooling = json.loads((model_dir / modules[1]["path"] / "config.json").read_text())
        config = json.loads((model_dir / "config.json").read_text())
        limits = model_dir / "sentence_bert_config.json"
        max_tokens = json.loads(limits.read_text()).get("max_seq_length") if limits.exists() else None
    except (OSError, ValueError, KeyError, IndexError):
        return None
    modes = [name for name, on in pooling.items() if name.startswith("pooling_mode_") and on]
    if modes == ["pooling_mode_mean_tokens"]:
        kind = "mean"
    elif modes == ["pooling_mode_cls_token"]:
        kind = "cls"
    else:
        return None
    max_tokens = int(max_tokens or config.get("max_position_embeddings", 512))
    return OnnxPlan(kind, len(kinds) == 3, max_tokens, int(pooling["word_embedding_dimension"]))


class OnnxEncoder:
    """Encodes texts (already prefixed) with an ONNX export of a local model, made on first use."""

    def __init__(self, model_dir: Path, plan: OnnxPlan, onnx_file: Path, threads: int, tokenizer=None,
                 side_by_side: bool = False) -> None:
        import onnxruntime as ort

        self.plan = plan
        self.tokenizer = tokenizer or open_tokenizer(model_dir, plan.max_tokens, onnx_file.parent)
        # `side_by_side`: a call's batches run `threads` at a time, each on one thread, instead of one at a
        # time on `threads` threads (see `encode`).
        self.lanes = threads if side_by_side and threads > 1 else 1
        self._lanes = ThreadPoolExecutor(self.lanes, thread_name_prefix="kb-encode") if self.lanes > 1 else None
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1 if self._lanes is not None else max(1, threads)
        options.inter_op_num_threads = 1
        # Memory patterns are planned per input shape, and passages come in every length: 90 MB more
        # at the same speed. Threads that spin between operators take the core an ingest's text worker needs.
        options.enable_mem_pattern = False
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(onnx_file), options, providers=["CPUExecutionProvider"])
        self._inputs = {i.name for i in self.session.get_inputs()}

    @classmethod
    def open(cls, model_dir: Path, export_dir: Path, threads: int, int8: bool = False,
             tokenizer=None, side_by_side: bool = False) -> OnnxEncoder | None:
        """The encoder for `model_dir`, exporting it into `export_dir` first if needed; None where it cannot run.

        `int8`: the quantized copy of the export (made once, beside it); `tokenizer`: one already open
        for this model, shared instead of loading another; `side_by_side`: see `encode`.
        """
        plan = plan_for(model_dir)
        if plan is None or not (model_dir / "tokenizer.json").exists():
            return None
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            return None
        # The weights sit beside the graph in a file of their own ("-w" marks that layout), which
        # ONNX Runtime maps instead of copying: a process pages in only the rows of the
        # vocabulary its texts use (210 MB resident after opening instead of 578 MB).
        onnx_file = export_dir / f"{model_dir.name}-{_fingerprint(model_dir)}-w.onnx"
        if not onnx_file.exists():
            export_in_child(model_dir, onnx_file)
        if int8:
            int8_file = onnx_file.with_name(onnx_file.name.replace("-w.onnx", "-int8-w.onnx"))
            if not int8_file.exists():
                _in_child("quantize_model", onnx_file, int8_file)
            onnx_file = int8_file
        return cls(model_dir, plan, onnx_file, threads, tokenizer, side_by_side)

    def encode(self, texts: list[str], progress: bool = False) -> np.ndarray:
        """L2-normalised (when the model normalises) float32 vectors, batched by length to pad little.

        A batch holds at most BATCH texts and BATCH_TOKENS tokens with its
        padding: attention costs batch x tokens², so sixteen passages of 512
        tokens would take 400 MB of activations where eight take half that.

        Side by side, every call's batches share the encoder's threads, one
        batch per thread at a time, whoever calls: calls from several threads (a
        worker's jobs) keep the cores busy while one of them is between calls,
        and a batch on one thread waits for no other thread.
        """
        from tqdm import tqdm

        out = np.empty((len(texts), self.plan.dimension), dtype=np.float32)
        # Kept as small arrays: a list of Python ints per passage would hold 60 MB for a 9 MB file.
        rows = [np.asarray(row, dtype=np.int32) for start in range(0, len(texts), TOKENIZE_SLICE)
                for row in self.tokenizer.ids(texts[start : start + TOKENIZE_SLICE])]
        order = sorted(range(len(texts)), key=lambda i: len(rows[i]))
        batches = list(_token_batches(order, [len(row) for row in rows]))
        if self._lanes is not None:
            encoded = self._lanes.map(lambda batch: self._encode_batch([rows[k] for k in batch]), batches)
        else:
            encoded = (self._encode_batch([rows[k] for k in batch]) for batch in batches)
        with tqdm(total=len(texts), unit="passage", desc="embed", disable=not progress) as bar:
            for batch, vectors in zip(batches, encoded, strict=True):
                out[batch] = vectors
                bar.update(len(batch))
        return out

    def _encode_batch(self, rows: list[np.ndarray]) -> np.ndarray:
        width = max(len(row) for row in rows)
        ids = np.full((len(rows), width), self.tokenizer.pad_id, dtype=np.int64)
        attention = np.zeros((len(rows), width), dtype=np.int64)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = row
            attention[i, : len(row)] = 1
        feed = {"input_ids": ids, "attention_mask": attention, "token_type_ids": np.zeros_like(ids)}
        hidden = self.session.run(None, {name: feed[name] for name in self._inputs})[0]
        if self.plan.pooling == "cls":
            vectors = hidden[:, 0]
        else:
            mask = attention[..., None].astype(np.float32)
            vectors = (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
        if self.plan.normalize:
            vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return vectors.astype(np.float32)


def _token_batches(order: list[int], lengths: list[int]) -> Iterator[list[int]]:
    """`order` (shortest first) cut into batches of at most BATCH texts and BATCH_TOKENS padded tokens,
    and before a text longer than PAD_RATIO times the batch's shortest (plus a few tokens).

    The last rule matters for the few passages of one small file (a queued job's):
    padded to the longest, they cost 15% more than in batches of near lengths,
    while a large ingest's batches are of near lengths anyway (bench/ingest.py).
    """
    batch: list[int] = []
    for i in order:
        if batch and (len(batch) == BATCH or (len(batch) + 1) * lengths[i] > BATCH_TOKENS
                      or lengths[i] > PAD_RATIO * lengths[batch[0]] + PAD_SLACK):
            yield batch
            batch = []
        batch.append(i)
    if batch:
        yield batch


def _fingerprint(model_dir: Path) -> str:
    """Changes when the weights do (their files' names, sizes and times), so a new model gets a new export."""
    digest = hashlib.sha1()
    for weights in sorted(model_dir.glob("*.safetensors")) + sorted(model_dir.glob("*.bin")):
        stat = weights.stat()
        digest.update(f"{weights.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:12]


def export_in_child(model_dir: Path, onnx_file: Path) -> None:
    """Export in a process of its own, so that this one never imports torch (the export peaks at 2.5 GB)."""
    _in_child("export_model", model_dir, onnx_file)


def _in_child(function: str, source: Path, target: Path) -> None:
    """Run `function(source, target)` of this module in a new Python process; its memory peak stays there.

    A subprocess rather than multiprocessing: queue workers' processes may be
    daemonic, and those may not have children of their own.
    """
    package_root = str(Path(__file__).resolve().parents[2])
    env = os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
    code = (f"import sys; from pathlib import Path; from kb.embed.onnx_encoder import {function}; "
            f"{function}(Path(sys.argv[1]), Path(sys.argv[2]))")
    done = subprocess.run([sys.executable, "-c", code, str(source), str(target)], env=env,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{function} of {source.name} failed: {done.stderr.strip()[-2000:]}")


def quantize_model(onnx_file: Path, int8_file: Path) -> None:
    """An int8 copy of the float export, for queries and answer sentences.

    Dynamic quantization (ONNX Runtime's own), per output channel, of the
    matrix products and of the vocabulary table: on this 2-core machine a query
    took 8.5 ms instead of 13.6 and 300 answer sentences 3.0 s instead of 5.4,
    with cosine >= 0.9907 to the float vectors (mean 0.9957); the file is 118 MB
    instead of 470. Per tensor instead of per channel, the worst cosine was 0.979.
    """
    import onnx
    from filelock import FileLock
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with FileLock(str(int8_file) + ".lock"):
        if int8_file.exists():  # another process made it while this one waited
            return
        with tempfile.NamedTemporaryFile(dir=int8_file.parent, suffix=".onnx.tmp", delete=False) as tmp:
            partial = Path(tmp.name)
        try:
            quantize_dynamic(str(onnx_file), str(partial), weight_type=QuantType.QInt8, per_channel=True,
                             op_types_to_quantize=["MatMul", "Gather"], extra_options={"MatMulConstBOnly": True})
            _save_beside(onnx.load(str(partial)), partial, int8_file)
        finally:
            partial.unlink(missing_ok=True)


def _save_beside(graph, partial: Path, onnx_file: Path) -> None:
    """Save `graph` with its weights in a file of their own (mapped, not copied, by ONNX Runtime), graph last."""
    import onnx

    onnx.save_model(graph, str(partial), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=onnx_file.name + ".weights", size_threshold=1024)
    os.replace(partial, onnx_file)


def export_model(model_dir: Path, onnx_file: Path) -> None:
    """Load the sentence-transformers model of `model_dir` on the CPU and export it."""
    from sentence_transformers import SentenceTransformer

    _export(SentenceTransformer(str(model_dir), device="cpu", local_files_only=True), onnx_file)


def _export(model, onnx_file: Path) -> None:
    """Export the transformer of a loaded sentence-transformers model; atomic, one process at a time."""
    import onnx
    import torch
    from filelock import FileLock

    onnx_file.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(onnx_file) + ".lock"):
        if onnx_file.exists():  # another process made it while this one waited
            return
        transformer = model[0].auto_model.eval()
        sample = model.tokenizer(["query: a", "passage: two words"], padding=True, return_tensors="pt")
        names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in sample]

        class Hidden(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.inner = transformer

            def forward(self, *inputs):
                return self.inner(**dict(zip(names, inputs, strict=True))).last_hidden_state

        axes = {n: {0: "batch", 1: "tokens"} for n in names} | {"hidden": {0: "batch", 1: "tokens"}}
        with tempfile.NamedTemporaryFile(dir=onnx_file.parent, suffix=".onnx.tmp", delete=False) as tmp:
            partial = Path(tmp.name)
        try:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the tracer's notes on shapes it treats as dynamic anyway
                torch.onnx.export(Hidden(), tuple(sample[n] for n in names), str(partial), input_names=names,
                                  output_names=["hidden"], dynamic_axes=axes, opset_version=ONNX_OPSET, dynamo=False)
            # Written under the lock; the graph file, which names the weights file, appears last.
            _save_beside(onnx.load(str(partial)), partial, onnx_file)
        finally:
            partial.unlink(missing_ok=True)
