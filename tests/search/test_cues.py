"""Question shapes: what a question asks for, and whether a sentence in any of our languages holds it."""

from __future__ import annotations

import pytest

from kb.search.cues import has_shape, question_kind


@pytest.mark.parametrize(("question", "kind"), [
    ("How long should we wait before calling a customer back?", "duration"),
    ("ควรโทรกลับหาลูกค้าภายในกี่ชั่วโมง", "duration"),
    ("客户的通话录音会保存多久?", "duration"),
    ("How many complaints per thousand calls is normal?", "number"),
    ("ต้องมีผู้เข้าร่วมเวิร์กช็อปกี่คน", "number"),
    ("Who should lead a CRM change?", "role"),
    ("ใครควรเป็นผู้นำการเปลี่ยนแปลง", "role"),
    ("谁应该领导CRM变革？", "role"),
    ("Why do CRM projects fail?", "reason"),
    ("ทำไมต้องสื่อสารเรื่อง CRM ก่อนเริ่มโครงการ", "reason"),
    ("为什么要打破部门壁垒？", "reason"),
    ("What is permission marketing?", "definition"),
    ("การตลาดแบบได้รับอนุญาตคืออะไร", "definition"),
    ("什么是一对一营销？", "definition"),
    ("Tips for a good workshop", None),
])
def test_question_kind_in_three_languages(question, kind):
    assert question_kind(question) == kind


@pytest.mark.parametrize(("kind", "text", "expected"), [
    ("duration", "Call-backs must be made within two hours of the request.", True),
    ("duration", "Customer call recordings are deleted after ninety days.", True),
    ("duration", "ทีมบริการลูกค้าต้องโทรกลับภายในสองชั่วโมงหลังจากได้รับเรื่อง", True),
    ("duration", "投诉必须在24小时内回复客户。", True),
    ("duration", "The change leader keeps communication flowing.", False),
    ("role", "Change in a CRM project must be led from the top by senior management.", True),
    ("role", "CRM 项目的变革必须由高层管理者来领导", True),
    ("role", "Resistance is normal.", False),
    ("reason", "Share it early because rumours fill the gap.", True),
    ("reason", "เพราะพนักงานต้องเข้าใจก่อน", True),
    ("number", "Keep abandonment under 5% in the peak hour.", True),
    ("number", "Keep abandonment low in the peak hour.", False),
    (None, "Anything at all.", False),
])
def test_answer_shape_is_recognised_whatever_the_answer_language(kind, text, expected):
    assert has_shape(kind, text) is expected
