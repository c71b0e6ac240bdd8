"""Queries through ONNX Runtime must embed as torch does, and a portal worker that only searches needs no torch."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from kb.config import Settings
from kb.embed.embedder import Embedder
from kb.embed.onnx_encoder import plan_for
from tests.conftest import REPO
from tests.embed.test_bundled_model import SENTENCES

QUESTIONS = [
    "How long should we wait before calling a customer back?",
    "Who should lead a CRM change?",
    "ลูกค้ารอสายนาน ควรแก้ไขอย่างไร",
    "ใครควรเป็นผู้นำการเปลี่ยนแปลง",
    "如何处理客户投诉的电话等候时间过长？",
    "業務單位之間的筒倉怎麼處理？",
]


def in_a_fresh_process(statements: str, timeout: int = 300) -> list[str]:
    """What `statements` print, run in a new Python process (as a portal worker or an ingest starts), split."""
    code = ("import sys; from pathlib import Path; from kb.config import Settings; "
            "from kb.embed.embedder import Embedder; " + statements)
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.split()


@pytest.mark.parametrize("encoder, agreement", [("onnx", 0.999), ("int8", 0.99)])
def test_onnx_queries_and_sentences_match_torch_in_three_languages(models_dir, encoder, agreement):
    """The float export gives torch's vectors; its int8 copy (the default for search queries) stays within 0.99."""
    torch_only = Embedder(Settings(models_dir=models_dir, query_encoder="torch"))
    onnx = Embedder(Settings(models_dir=models_dir, query_encoder=encoder))
    assert torch_only.quick is None and onnx.quick is not None
    assert (onnx.quick is onnx.fast) == (encoder == "onnx")
    queries = QUESTIONS + [s for sentences in SENTENCES.values() for s in sentences[:4]]
    fast, slow = onnx.encode_queries(queries), torch_only.encode_queries(queries)
    assert np.min(np.sum(fast * slow, axis=1)) >= agreement
    assert np.allclose(np.linalg.norm(fast, axis=1), 1.0, atol=1e-5)
    # Answers compare sentences with the question through the float export whatever the setting.
    sentences = [s for group in SENTENCES.values() for s in group]
    fast, slow = onnx.encode_sentences(sentences), torch_only.encode_passages(sentences)
    assert np.min(np.sum(fast * slow, axis=1)) >= 0.999
    fast = np.asarray([onnx.encode_question(q) for q in QUESTIONS])
    assert np.min(np.sum(fast * torch_only.encode_queries(QUESTIONS), axis=1)) >= 0.999


def test_the_query_encoder_setting_is_checked(models_dir):
    with pytest.raises(ValueError, match="KB_QUERY_ENCODER"):
        Embedder(Settings(models_dir=models_dir, query_encoder="int4"))


def test_a_long_query_is_cut_at_the_models_token_limit_as_torch_cuts_it(models_dir, embedder):
    torch_only = Embedder(Settings(models_dir=models_dir, query_encoder="torch"))
    complaint = "ลูกค้าโทรมาแจ้งว่าอินเทอร์เน็ตหลุดทุกคืนและรอสายนานมาก " * 120  # far past 512 tokens
    assert float(embedder.encode_queries([complaint])[0] @ torch_only.encode_queries([complaint])[0]) >= 0.99


def test_searching_never_loads_torch(models_dir, embedder):
    """A fresh process (as a portal worker) encodes queries and answer sentences without importing torch."""
    printed = in_a_fresh_process(
        f"e = Embedder(Settings(models_dir=Path({str(models_dir)!r}))); "
        "e.encode_queries(['who leads a CRM change?']); e.encode_sentences(['Top management leads it.']); "
        "print('torch' in sys.modules, e._model is None)"
    )
    assert printed == ["False", "True"]


def test_passages_embed_through_onnx_as_torch_embeds_them(models_dir, embedder):
    """An ingest embeds passages the way sentence-transformers does, long ones included, without torch."""
    torch_only = Embedder(Settings(models_dir=models_dir, query_encoder="torch"))
    passages = [s for group in SENTENCES.values() for s in group]
    passages.append("ลูกค้าโทรมาแจ้งว่าอินเทอร์เน็ตหลุดทุกคืนและรอสายนานมาก " * 120)  # past 512 tokens
    passages.append("客户投诉电话等候时间过长，应在五分钟内回电。" * 60)
    fast, slow = embedder.encode_passages(passages), torch_only.encode_passages(passages)
    assert np.min(np.sum(fast * slow, axis=1)) >= 0.999
    printed = in_a_fresh_process(
        f"e = Embedder(Settings(models_dir=Path({str(models_dir)!r}))); "
        "e.encode_passages(['Top management leads the change.'] * 40); "
        "print('torch' in sys.modules, 'sentence_transformers' in sys.modules)"
    )
    assert printed == ["False", "False"]


def test_passage_batches_side_by_side_embed_as_one_at_a_time(models_dir, embedder):
    """A worker's encoder runs a call's batches on one thread each; the vectors are the same, in the same order,
    also while another thread encodes at the same time."""
    side = Embedder(Settings(models_dir=models_dir, threads=2, passages_side_by_side=True))
    assert side.passage_lanes == 2 and embedder.passage_lanes == 1
    passages = [s * (1 + i % 7) for i, s in enumerate(s for group in SENTENCES.values() for s in group)]
    assert len(passages) > 2 * 16  # several batches
    expected = embedder.encode_passages(passages)
    with ThreadPoolExecutor(2) as pool:
        both = list(pool.map(side.encode_passages, [passages, passages[::-1]]))
    assert np.min(np.sum(both[0] * expected, axis=1)) >= 0.9999
    assert np.min(np.sum(both[1][::-1] * expected, axis=1)) >= 0.9999


def test_the_export_happens_in_a_process_of_its_own(models_dir, tmp_path):
    """The first use exports the model, and its int8 copy, without importing torch or the quantizer here."""
    printed = in_a_fresh_process(
        f"e = Embedder(Settings(models_dir=Path({str(models_dir)!r}), data_dir=Path({str(tmp_path)!r}))); "
        f"e._export_dir = Path({str(tmp_path / 'onnx')!r}); "
        "v = e.encode_queries(['who leads a CRM change?']); "
        "print('torch' in sys.modules, 'onnxruntime.quantization' in sys.modules, v.shape[1], e._fast is None)",
        timeout=600,  # the export itself
    )
    assert printed == ["False", "False", "384", "True"]  # a process that only searches opens the int8 copy alone
    made = [p.name for p in (tmp_path / "onnx").iterdir() if p.suffix != ".lock"]
    int8 = sorted(name.rsplit("-int8-", 1)[-1] for name in made if "-int8-" in name)
    assert int8 == ["w.onnx", "w.onnx.weights"]
    assert sorted(Path(name).suffix for name in made if "-int8-" not in name) == [".json", ".onnx", ".spm", ".weights"]


def test_a_model_with_modules_onnx_cannot_reproduce_stays_on_torch(tmp_path, models_dir, embedder):
    bundled = next(p for p in models_dir.iterdir() if (p / "modules.json").exists())
    assert plan_for(bundled).pooling == "mean"
    odd = tmp_path / "odd-model"
    odd.mkdir()
    (odd / "modules.json").write_text('[{"idx": 0, "name": "0", "path": "", "type": "x.Transformer"},'
                                      ' {"idx": 1, "name": "1", "path": "1_Dense", "type": "x.Dense"}]')
    assert plan_for(odd) is None


def test_batches_hold_texts_of_near_lengths_each_text_once():
    from kb.embed.onnx_encoder import BATCH, BATCH_TOKENS, PAD_RATIO, PAD_SLACK, _token_batches

    lengths = [40, 41, 45, 60, 200, 210, 230, 512, 512, 30] + [100] * 40
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches = list(_token_batches(order, lengths))
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for batch in batches:
        widths = [lengths[i] for i in batch]
        assert len(batch) <= BATCH and len(batch) * max(widths) <= max(BATCH_TOKENS, max(widths))
        assert max(widths) <= PAD_RATIO * min(widths) + PAD_SLACK
    # A small file's passages of very different lengths are not padded into one batch.
    assert len(batches) > len(lengths) // BATCH + 1
