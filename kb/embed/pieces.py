"""The model's tokenizer at a fifth of the memory: its unigram pieces run by sentencepiece.

`tokenizers` holds the 250,002 pieces of XLM-R's vocabulary (multilingual-e5's)
in a trie of hash maps: 281 MiB in every process that tokenizes (the ingest
process, its text worker, each portal worker). The same pieces and scores in a
sentencepiece model take 57 MiB, tokenize the same texts in about half the time,
and give the same ids: all 5,382 texts tried (the 3,303 chunks of a 9 MB Thai
file and every line of the bundled corpus) and the odd cases in
tests/embed/test_pieces.py (unknown characters, emoji, full-width forms, very
long words). The text is first normalised by the tokenizer.json's own
normalizer, so both see the same characters.

The sentencepiece model is written once per tokenizer.json (next to the ONNX
export) and read from there. A tokenizer of any other shape (WordPiece, BPE,
other pre-tokenizers, added tokens), or a machine without sentencepiece, keeps
`tokenizers`; both answer to `ModelTokenizer`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Protocol

from kb.storage.files import atomic_write


class ModelTokenizer(Protocol):
    """Token ids as the model reads them: special tokens included, cut to the model's limit when opened with one.

    Whether to cut is fixed when it is opened, not per call: the encoder's copy is shared by the threads
    of a portal worker, and the chunker's counts are never cut.
    """

    pad_id: int

    def ids(self, texts: list[str]) -> list[list[int]]: ...


class FastTokenizer:
    """`tokenizers` reading the model's tokenizer.json as it is."""

    def __init__(self, tokenizer_file: Path, max_tokens: int | None) -> None:
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(tokenizer_file))
        config_file = tokenizer_file.parent / "tokenizer_config.json"
        config = json.loads(config_file.read_text()) if config_file.exists() else {}
        pad = config.get("pad_token") or "[PAD]"
        pad = pad.get("content", "[PAD]") if isinstance(pad, dict) else pad
        self.pad_id = self.tokenizer.token_to_id(pad) or 0
        if max_tokens is not None:
            self.tokenizer.enable_truncation(max_length=min(max_tokens, int(config.get("model_max_length") or max_tokens)))

    def ids(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self.tokenizer.encode_batch(texts)]


class PieceTokenizer:
    """A unigram tokenizer.json's pieces run by sentencepiece, behind its own normalizer and special tokens."""

    def __init__(self, model_file: Path, spec: dict, max_tokens: int | None) -> None:
        import sentencepiece
        from tokenizers import Tokenizer

        self.processor = sentencepiece.SentencePieceProcessor(model_file=str(model_file))
        # A tokenizer with an empty vocabulary carries the normalizer (`tokenizers` has no other way to load one).
        holder = {"version": "1.0", "normalizer": spec["normalizer"],
                  "model": {"type": "WordLevel", "vocab": {"<unk>": 0}, "unk_token": "<unk>"}}
        self.normalizer = Tokenizer.from_str(json.dumps(holder)).normalizer
        self.bos, self.eos, self.pad_id = spec["bos"], spec["eos"], spec["pad"]
        # Room for the text between the two special tokens; None: nothing is cut.
        self.room = None if max_tokens is None else min(max_tokens, spec["max_tokens"] or max_tokens) - 2

    def ids(self, texts: list[str]) -> list[list[int]]:
        pieces = self.processor.encode([self._normalize(t) for t in texts])
        return [[self.bos, *p[: self.room], self.eos] for p in pieces]


    def _normalize(self, text: str) -> str:
        """The normalizer's text, less a leading space or marker: Metaspace reads either as the word-start
        marker it would otherwise prepend, where sentencepiece would prepend another."""
        if self.normalizer is not None:
            text = self.normalizer.normalize_str(text)
        return text[1:] if text[:1] in (" ", "▁") else text


def open_tokenizer(model_dir: Path, max_tokens: int | None, cache_dir: Path) -> ModelTokenizer:
    """The lightest tokenizer that gives the model's ids: sentencepiece where it can, `tokenizers` otherwise.

    `max_tokens`: where to cut (the model's own limit, if lower, wins); None cuts nothing.
    """
    tokenizer_file = model_dir / "tokenizer.json"
    try:
        import sentencepiece  # noqa: F401
    except ImportError:
        return FastTokenizer(tokenizer_file, max_tokens)
    stem = cache_dir / f"{model_dir.name}-{_fingerprint(tokenizer_file)}"
    model_file, spec_file = stem.with_suffix(".spm"), stem.with_suffix(".spm.json")
    if not spec_file.exists():
        _convert(tokenizer_file, model_file, spec_file)
    spec = json.loads(spec_file.read_text())
    if not spec.get("convertible"):
        return FastTokenizer(tokenizer_file, max_tokens)
    return PieceTokenizer(model_file, spec, max_tokens)


def _convert(tokenizer_file: Path, model_file: Path, spec_file: Path) -> None:
    """Write the sentencepiece model and its spec, or a spec saying the tokenizer is of another shape."""
    from filelock import FileLock

    spec_file.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(spec_file) + ".lock"):
        if spec_file.exists():  # another process wrote it while this one waited
            return
        data = json.loads(tokenizer_file.read_text(encoding="utf-8"))
        specials = _unigram_specials(data)
        spec: dict = {"convertible": specials is not None}
        if specials is not None:
            config_file = tokenizer_file.parent / "tokenizer_config.json"
            config = json.loads(config_file.read_text()) if config_file.exists() else {}
            spec |= specials | {"normalizer": data.get("normalizer"),
                                "max_tokens": int(config.get("model_max_length") or 0) or None}
            atomic_write(model_file, lambda fh: fh.write(_sentencepiece_model(data)))
        atomic_write(spec_file, lambda fh: fh.write(json.dumps(spec).encode()))


def _unigram_specials(data: dict) -> dict | None:
    """bos, eos and pad ids when the tokenizer is a unigram model that sentencepiece reproduces, else None.

    That is: Metaspace words with the marker always prepended, no byte
    fallback, `<s> text </s>` around each text, and no added tokens besides
    the special ones (sentencepiece would not split them out of the text).
    """
    model, pre = data.get("model") or {}, data.get("pre_tokenizer") or {}
    post = data.get("post_processor") or {}
    if model.get("type") != "Unigram" or model.get("byte_fallback") or model.get("unk_id") is None:
        return None
    if pre.get("type") != "Metaspace" or pre.get("replacement") != "▁" or not pre.get("split", True):
        return None
    if pre.get("prepend_scheme", "always" if pre.get("add_prefix_space", True) else "never") != "always":
        return None
    if any(not token.get("special") for token in data.get("added_tokens") or []):
        return None
    single = post.get("single") or []
    if post.get("type") != "TemplateProcessing" or len(single) != 3 or "Sequence" not in single[1]:
        return None
    index = {piece: i for i, (piece, _) in enumerate(model["vocab"])}
    try:
        bos, eos = (index[single[k]["SpecialToken"]["id"]] for k in (0, 2))
    except KeyError:
        return None
    pad = next((t["id"] for t in data.get("added_tokens") or [] if t["content"] in ("<pad>", "[PAD]")), 0)
    return {"bos": bos, "eos": eos, "pad": pad}


def _sentencepiece_model(data: dict) -> bytes:
    """A sentencepiece unigram model of the tokenizer's pieces and scores, normalising nothing itself."""
    from sentencepiece import sentencepiece_model_pb2 as spm

    piece_type = spm.ModelProto.SentencePiece
    unk = data["model"]["unk_id"]
    specials = {t["id"] for t in data.get("added_tokens") or []}
    proto = spm.ModelProto()
    for i, (piece, score) in enumerate(data["model"]["vocab"]):
        entry = proto.pieces.add()
        entry.piece, entry.score = piece, score
        entry.type = (piece_type.UNKNOWN if i == unk else
                      piece_type.CONTROL if i in specials else piece_type.NORMAL)
    proto.trainer_spec.model_type = spm.TrainerSpec.UNIGRAM
    proto.trainer_spec.vocab_size = len(data["model"]["vocab"])
    proto.trainer_spec.unk_id = unk
    proto.trainer_spec.bos_id = proto.trainer_spec.eos_id = proto.trainer_spec.pad_id = -1
    # The tokenizer.json's normalizer runs first; sentencepiece only marks word starts, as Metaspace does.
    proto.normalizer_spec.name = "identity"
    proto.normalizer_spec.add_dummy_prefix = True
    proto.normalizer_spec.remove_extra_whitespaces = False
    proto.normalizer_spec.escape_whitespaces = True
    return proto.SerializeToString()


def _fingerprint(path: Path) -> str:
    """Changes when the tokenizer file does (its size and time, as for the ONNX export: no 16 MB read per open)."""
    stat = path.stat()
    return hashlib.sha1(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:12]
