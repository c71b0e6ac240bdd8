"""Passage embedding throughput on a GPU, with the bundled model's own weights.

What a bulk (re-)embedding of a large collection costs is the figure the
100M-passage design in docs/scaling.md rests on. A GPU machine here reaches
no model hub and takes at most 64 MB from us, so the work is in two steps:

- `--pack DIR` (here, on the CPU): the bundled corpus's chunk texts tokenized
  as ingest gives them to the model (heading line, masked and folded text,
  "passage: " prefix, cut at the model's 512 tokens); the transformer's
  weights in fp16, with only the rows of the token-embedding table that those
  passages use (the whole table is 190 MB of the model's 235 MB in fp16); and
  the reference vectors of a sample, from the model in float32 on the CPU.
- `--run DIR` (there): the packed passages, repeated up to `--passages`,
  encoded length-sorted in batches of `--batch` at each precision, timed
  end to end (padding, transfer, pooling, normalizing); then the cosine of
  the sample's vectors against the CPU's.

    python bench/gpu_encode.py --pack DIR --corpus-data-dir DIR [--models-dir DIR]
    python bench/gpu_encode.py --run DIR [--device cuda] [--passages N] [--batch 64,256] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

SAMPLE = 64  # passages whose vectors are checked against the CPU's


def pack(out: Path, corpus_data_dir: Path, models_dir: Path | None) -> dict:
    """Write tokens.npz, weights.safetensors and config.json under `out`."""
    from safetensors.numpy import load_file, save_file

    from kb.config import Settings
    from kb.embed.embedder import Embedder
    from kb.engine import stored_model_inputs
    from kb.storage.store import Store

    settings = Settings(data_dir=corpus_data_dir, **({"models_dir": models_dir} if models_dir else {}))
    store = Store(settings.resolved_database_url)
    _, texts = stored_model_inputs(store)  # what ingest gave the model: heading line, masked text
    store.dispose()
    embedder = Embedder(settings)
    model = embedder.model  # sentence-transformers, float32 on the CPU: the reference
    inputs = [embedder.passage_input(text) for text in texts]
    rows = model.tokenizer(inputs, truncation=True, max_length=model.max_seq_length)["input_ids"]
    sample = np.linspace(0, len(texts) - 1, min(SAMPLE, len(texts))).astype(int)
    reference = model.encode([inputs[i] for i in sample], normalize_embeddings=True, convert_to_numpy=True)

    model_dir = Path(model.tokenizer.name_or_path)
    weights = load_file(str(model_dir / "model.safetensors"))
    config = json.loads((model_dir / "config.json").read_text())
    pad = int(config.get("pad_token_id", 0))
    used = np.unique(np.concatenate([np.asarray(row) for row in rows] + [np.asarray([pad])]))
    remap = np.full(int(config["vocab_size"]), -1, np.int64)
    remap[used] = np.arange(len(used))
    weights["embeddings.word_embeddings.weight"] = weights["embeddings.word_embeddings.weight"][used]
    save_file({name: np.ascontiguousarray(w.astype(np.float16)) for name, w in weights.items()},
              str(out / "weights.safetensors"))
    config.update(vocab_size=len(used), pad_token_id=int(remap[pad]))
    (out / "config.json").write_text(json.dumps(config))
    lengths = np.asarray([len(row) for row in rows], np.int32)
    np.savez(out / "tokens.npz", ids=remap[np.concatenate([np.asarray(row) for row in rows])].astype(np.int32),
             lengths=lengths, sample=sample, reference=reference.astype(np.float32), pad=np.int64(remap[pad]))
    return {"passages": len(texts), "tokens_mean": float(lengths.mean()), "vocab_rows": len(used),
            "packed_mb": round(sum(f.stat().st_size for f in out.iterdir()) / 1e6, 1)}


def run(packed: Path, device: str, passages: int, batches: list[int], dtypes: list[str]) -> dict:
    """Passages per second at each precision and batch size, and the cosine against the CPU's vectors."""
    import torch
    from safetensors.torch import load_file
    from transformers import BertConfig, BertModel

    data = np.load(packed / "tokens.npz")
    lengths = data["lengths"]
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    rows = [data["ids"][s : s + n] for s, n in zip(starts, lengths, strict=True)]
    pad = int(data["pad"])
    config = BertConfig.from_json_file(str(packed / "config.json"))
    config.add_pooling_layer = False
    weights = {k: v for k, v in load_file(str(packed / "weights.safetensors")).items() if not k.startswith("pooler.")}

    def encode(model, chosen: list[int], batch: int) -> np.ndarray:
        """Vectors of rows[chosen], in that order; batches by length, as the embedder makes them (little padding)."""
        order = sorted(range(len(chosen)), key=lambda p: len(rows[chosen[p]]))
        out = []
        for at in range(0, len(order), batch):
            part = [rows[chosen[p]] for p in order[at : at + batch]]
            width = max(len(r) for r in part)
            ids = np.full((len(part), width), pad, np.int64)
            mask = np.zeros((len(part), width), np.int64)
            for j, r in enumerate(part):
                ids[j, : len(r)], mask[j, : len(r)] = r, 1
            ids_t = torch.from_numpy(ids).to(device, non_blocking=True)
            mask_t = torch.from_numpy(mask).to(device, non_blocking=True)
            with torch.inference_mode():
                hidden = model(input_ids=ids_t, attention_mask=mask_t).last_hidden_state.float()
                m = mask_t.unsqueeze(-1).float()
                vectors = torch.nn.functional.normalize((hidden * m).sum(1) / m.sum(1).clamp(min=1), dim=-1)
            out.append(vectors.to("cpu", non_blocking=True))
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        result = np.empty((len(chosen), config.hidden_size), np.float32)
        result[order] = torch.cat(out).numpy()
        return result

    chosen = [i % len(rows) for i in range(passages)]
    tokens = int(sum(len(rows[i]) for i in chosen))
    figures: dict = {"device": device, "passages": passages, "tokens_mean": round(tokens / passages, 1), "runs": []}
    if device.startswith("cuda"):
        figures["gpu"] = torch.cuda.get_device_name(0)
    for name in dtypes:
        dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[name]
        model = BertModel(config, add_pooling_layer=False)
        model.load_state_dict(weights)
        model = model.to(device=device, dtype=torch.float32 if name == "fp32" else dtype).eval()
        sample = [int(i) for i in data["sample"]]
        vectors = encode(model, sample, 64)
        cosine = (vectors * data["reference"]).sum(1)
        for batch in batches:
            encode(model, chosen[: min(passages, 4 * batch)], batch)  # warm-up: kernels, allocator
            started = time.perf_counter()
            encode(model, chosen, batch)
            seconds = time.perf_counter() - started
            figures["runs"].append({"dtype": name, "batch": batch, "seconds": round(seconds, 3),
                                    "passages_per_s": round(passages / seconds, 1),
                                    "tokens_per_s": round(tokens / seconds), "cosine_min": round(float(cosine.min()), 5),
                                    "cosine_mean": round(float(cosine.mean()), 5)})
            print(f"{name:5} batch {batch:5}: {passages / seconds:10.1f} passages/s {tokens / seconds:12.0f} tokens/s"
                  f"  cosine vs CPU fp32 min {cosine.min():.5f} mean {cosine.mean():.5f}", flush=True)
        del model
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pack", type=Path, help="write the packed model and passages here")
    parser.add_argument("--run", type=Path, help="encode the packed passages found here")
    parser.add_argument("--corpus-data-dir", type=Path, help="a data directory holding the bundled corpus (--pack)")
    parser.add_argument("--models-dir", type=Path, default=None)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--passages", type=int, default=200_000)
    parser.add_argument("--batch", default="64,256,1024", help="batch sizes, comma-separated")
    parser.add_argument("--dtypes", default="fp16,bf16", help="precisions: fp32, fp16, bf16")
    parser.add_argument("--json", action="store_true", help="the figures as one JSON line at the end")
    args = parser.parse_args()
    if bool(args.pack) == bool(args.run):
        parser.error("give one of --pack DIR or --run DIR")
    if args.pack:
        if args.corpus_data_dir is None:
            parser.error("--pack needs --corpus-data-dir")
        args.pack.mkdir(parents=True, exist_ok=True)
        figures = pack(args.pack, args.corpus_data_dir, args.models_dir)
        print(f"packed {figures['passages']} passages, {figures['vocab_rows']} vocabulary rows, "
              f"{figures['packed_mb']} MB in {args.pack}")
    else:
        figures = run(args.run, args.device, args.passages, [int(b) for b in args.batch.split(",")],
                      args.dtypes.split(","))
    if args.json:
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
