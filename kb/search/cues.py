"""Question types and the shape of the sentences that answer them, in Thai, Chinese and English.

Staff ask "how long", "who", "why", "what is": the answer to "how long should
we wait before calling back?" holds a duration, the answer to "who leads the
change?" names a role, even when the neighbouring sentence shares more of the
question's words. Answers choose between sentences of passages found by
meaning and words (`kb.search.answer`); these cues break the tie in favour of
the sentence of the right shape. The answer may be in another language than
the question, so a sentence is checked against the patterns of every language.
"""

from __future__ import annotations

import re

# -- what the question asks for (checked in order: "how many days" is a duration, not a number) ------

_QUESTION_KINDS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("duration", re.compile(
        r"\bhow (long|soon|quickly|fast|often)\b|\bhow many (minutes|hours|days|weeks|months|years)\b"
        r"|\bwithin (what|which|how)\b|\bwhat time ?frame\b|\bdeadline\b"
        r"|นาน(เท่า|แค่)|กี่(นาที|ชั่วโมง|ชม|วัน|สัปดาห์|อาทิตย์|เดือน|ปี)|ภายใน(เท่า|กี่)|เร็ว(แค่|เท่า)|บ่อย(แค่|เท่า)"
        r"|多久|多长时间|多長時間|几(分钟|个小时|小时|天|周|个月|年)|幾(分鐘|個小時|小時|天|週|個月|年)|多少(分钟|小时|天|周)|多快|多少时间",
        re.IGNORECASE)),
    ("number", re.compile(
        r"\bhow (many|much)\b|\bwhat (percentage|share|proportion|number)\b|\bwhat is the (limit|maximum|minimum)\b"
        r"|กี่|เท่า(ไร|ไหร่)|กี่เปอร์เซ็นต์|ร้อยละเท่า"
        r"|多少|几个|幾個|百分之几|比例",
        re.IGNORECASE)),
    ("role", re.compile(
        r"\bwho\b|\bwhom\b|\bwhich (team|role|department|unit|person|people|manager)\b"
        r"|ใคร|ฝ่ายไหน|ทีมไหน|หน่วยงานไหน|ผู้ใด"
        r"|谁|誰|哪个部门|哪個部門|哪个团队|哪個團隊|由哪|什么人|什麼人",
        re.IGNORECASE)),
    ("reason", re.compile(
        r"\bwhy\b|\bwhat is the reason\b|\bfor what reason\b"
        r"|ทำไม|เพราะอะไร|เหตุใด|สาเหตุ"
        r"|为什么|為什麼|为何|為何|原因",
        re.IGNORECASE)),
    ("definition", re.compile(
        r"\bwhat (is|are|does) (an? |the )?[\w\- ]{1,40}( mean)?\?*$|\bwhat is meant by\b|\bdefine\b|\bmeaning of\b"
        r"|คืออะไร|หมายถึงอะไร|หมายความว่า"
        r"|什么是|什麼是|是什么|是什麼|指的是什么|是指什么",
        re.IGNORECASE)),
)

# -- what such an answer holds, in any of the three languages ------------------------------------------

_NUMBER = (r"(\d+([.,]\d+)?|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|eighteen"
           r"|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|hundred|a few|several|half an?)")
_THAI_NUMBER = r"(\d+([.,]\d+)?|หนึ่ง|สอง|สาม|สี่|ห้า|หก|เจ็ด|แปด|เก้า|สิบ|ยี่สิบ|ครึ่ง)"
_HAN_NUMBER = r"(\d+([.,]\d+)?|[一二两兩三四五六七八九十百半]+)"

_DURATION = re.compile(
    rf"\b{_NUMBER}[\s-]*(working |business |calendar )?(minutes?|mins?|hours?|hrs?|days?|weeks?|months?|years?|quarters?)\b"
    r"|\b(same|next) (day|week|business day|working day)\b|\bimmediately\b|\bovernight\b"
    r"|\b(hourly|daily|weekly|monthly|quarterly|annually|yearly)\b|\bevery (day|week|month|quarter|year)\b"
    r"|ทุก\s*(วัน|สัปดาห์|อาทิตย์|เดือน|ไตรมาส|ปี)|(วัน|สัปดาห์|อาทิตย์|เดือน|ไตรมาส|ปี)ละ"
    r"|每(天|日|周|週|星期|月|个月|個月|季度|季|年)"
    rf"|{_THAI_NUMBER}\s*(นาที|ชั่วโมง|ชม\.?|วันทำการ|วัน|สัปดาห์|อาทิตย์|เดือน|ปี|ไตรมาส)|ทันที|ภายในวัน"
    rf"|{_HAN_NUMBER}\s*(分钟|分鐘|个小时|個小時|小时|小時|个工作日|個工作日|工作日|天|日|周|週|星期|个月|個月|月|年|季度)|立即|当天|當天|马上",
    re.IGNORECASE)
_ANY_NUMBER = re.compile(rf"\d|\b{_NUMBER}\b|\bpercent\b|%|{_THAI_NUMBER}|ร้อยละ|{_HAN_NUMBER}(个|個|%|成|倍)|百分之", re.IGNORECASE)
_ROLE = re.compile(
    r"\b(ceo|cio|cfo|coo|manager|managers|management|director|directors|executive|executives|sponsor|leader|leaders"
    r"|lead|owner|owners|team|teams|department|departments|unit|units|head of|officer|agent|agents|supervisor"
    r"|supervisors|staff|board|committee|champion|steward|stewards|administrator|analyst|specialist|coordinator)\b"
    r"|ผู้จัดการ|ผู้บริหาร|ผู้นำ|หัวหน้า|ทีม|ฝ่าย|แผนก|หน่วยงาน|เจ้าหน้าที่|พนักงาน|ผู้ดูแล|ผู้สนับสนุน|คณะกรรมการ|ผู้รับผิดชอบ|ซีอีโอ"
    r"|经理|經理|高层|高層|管理层|管理層|领导|領導|负责人|負責人|主管|团队|團隊|部门|部門|专员|專員|总监|總監|委员会|委員會|发起人|發起人|坐席|员工|員工",
    re.IGNORECASE)
_REASON = re.compile(
    r"\b(because|since|so that|in order to|as a result|due to|the reason|otherwise|leads to|causes?)\b"
    r"|เพราะ|เนื่องจาก|เพื่อให้|เพื่อ|ทำให้|มิฉะนั้น|สาเหตุ"
    r"|因为|因為|由于|由於|所以|以便|为了|為了|否则|否則|导致|導致|原因",
    re.IGNORECASE)
_DEFINITION = re.compile(
    r"\b(is|are|means|refers to|is defined as|is called|stands for)\b"
    r"|คือ|หมายถึง|หมายความว่า|เรียกว่า"
    r"|是指|指的是|就是|即|称为|稱為|是一种|是一種",
    re.IGNORECASE)

_ANSWER_SHAPES: dict[str, re.Pattern[str]] = {
    "duration": _DURATION, "number": _ANY_NUMBER, "role": _ROLE, "reason": _REASON, "definition": _DEFINITION,
}


def question_kind(question: str) -> str | None:
    """What the question asks for (duration, number, role, reason, definition), or None when it does not say."""
    for kind, pattern in _QUESTION_KINDS:
        if pattern.search(question):
            return kind
    return None


def has_shape(kind: str | None, text: str) -> bool:
    """Whether `text` holds what a question of `kind` asks for (a duration, a number, a role...)."""
    if kind is None:
        return False
    return _ANSWER_SHAPES[kind].search(text) is not None
