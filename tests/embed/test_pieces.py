"""The sentencepiece tokenizer must give the model exactly the ids `tokenizers` gives it, at a fraction of the memory."""

from __future__ import annotations

import json

import pytest
import tokenizers

from kb.embed.bundled_model import BUNDLED_DIR_NAME
from kb.embed.pieces import FastTokenizer, PieceTokenizer, open_tokenizer
from tests.conftest import REPO

ODD_TEXTS = [
    "😀😀 hello 🙂 world", "กิ์์ ทดสอบ", "𠀀𠀁 rare 𪚥 CJK", "a\u200bb\u00a0c\tc", "ＡＢＣ１２３，（全角）？",
    "x" * 3000, "ﷺ ligature ﬁ", "\U0001F9D1\u200D\U0001F4BB coder", "??? !!! ... ---", "قرآن عربي",
    "Ελληνικά", "ᚠᛇᚻ runes", "\ue000 private", "query: ลูกค้ารอสายนาน ควรโทรกลับภายในกี่นาที",
    "passage: 客户投诉电话等候时间过长，应在五分钟内回电。", "  leading and  double  spaces ", "",
]


@pytest.fixture(scope="module")
def model_dir(models_dir):
    return models_dir / BUNDLED_DIR_NAME


@pytest.fixture(scope="module")
def reference(model_dir):
    """`tokenizers` reading the tokenizer.json as it is, without truncation."""
    return tokenizers.Tokenizer.from_file(str(model_dir / "tokenizer.json"))


def corpus_lines() -> list[str]:
    lines = []
    for path in sorted((REPO / "corpus").rglob("*")):
        if path.suffix in (".md", ".txt", ".csv", ".html"):
            lines += [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return lines


def test_the_bundled_tokenizer_becomes_sentencepiece_with_the_same_ids(model_dir, reference, tmp_path):
    pieces = open_tokenizer(model_dir, None, tmp_path)  # as the chunker counts: nothing cut
    assert isinstance(pieces, PieceTokenizer)
    texts = corpus_lines() + ODD_TEXTS
    assert len(texts) > 1000
    expected = [e.ids for e in reference.encode_batch(texts)]
    assert pieces.ids(texts) == expected
    assert pieces.pad_id == reference.token_to_id("<pad>")


def test_long_texts_are_cut_as_the_model_cuts_them(model_dir, reference, tmp_path):
    pieces = open_tokenizer(model_dir, 512, tmp_path)
    complaint = "ลูกค้าโทรมาแจ้งว่าอินเทอร์เน็ตหลุดทุกคืนและรอสายนานมาก " * 120
    reference.enable_truncation(max_length=512)
    assert pieces.ids([complaint]) == [reference.encode(complaint).ids]
    assert len(pieces.ids([complaint])[0]) == 512


def test_the_converted_model_is_made_once_and_reused(model_dir, tmp_path):
    open_tokenizer(model_dir, 512, tmp_path)
    made = sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock"))
    assert [name.rsplit(".", 1)[-1] for name in made] == ["spm", "json"]
    stamps = [p.stat().st_mtime_ns for p in sorted(tmp_path.iterdir())]
    open_tokenizer(model_dir, 512, tmp_path)
    assert [p.stat().st_mtime_ns for p in sorted(tmp_path.iterdir())] == stamps


def test_a_tokenizer_of_another_shape_stays_on_tokenizers(tmp_path):
    model_dir = tmp_path / "wordpiece-model"
    model_dir.mkdir()
    wordpiece = tokenizers.Tokenizer(tokenizers.models.WordPiece({"[UNK]": 0, "[PAD]": 1, "crm": 2, "##s": 3},
                                                                 unk_token="[UNK]"))
    wordpiece.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    wordpiece.save(str(model_dir / "tokenizer.json"))
    (model_dir / "tokenizer_config.json").write_text(json.dumps({"pad_token": "[PAD]"}))
    fallback = open_tokenizer(model_dir, 512, tmp_path / "cache")
    assert isinstance(fallback, FastTokenizer)
    assert fallback.ids(["crms crm"]) == [[2, 3, 2]] and fallback.pad_id == 1
    assert json.loads(next((tmp_path / "cache").glob("*.spm.json")).read_text()) == {"convertible": False}

