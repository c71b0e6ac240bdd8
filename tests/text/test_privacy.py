"""Finding and masking personal data in notes: phone numbers of our markets, e-mails, Thai IDs, cards, names."""

from __future__ import annotations

import csv
import json

import pytest

from kb.text.privacy import CARD, EMAIL, NAME, NATIONAL_ID, PHONE, PiiSpan, find_personal_data, mask
from tests.conftest import CORPUS


@pytest.mark.parametrize("text, value, kind", [
    ("โทรกลับเบอร์ 091-337-6685 ด้วยค่ะ", "091-337-6685", PHONE),
    ("โทร0913376685ด่วน", "0913376685", PHONE),
    ("电话13912345678谢谢", "13912345678", PHONE),
    ("ติดต่อ 02-739-1250", "02-739-1250", PHONE),
    ("Thai mobile +66 91 337 6685.", "+66 91 337 6685", PHONE),
    ("联系我 17679883098", "17679883098", PHONE),
    ("电话 +86 171 3459 4431", "+86 171 3459 4431", PHONE),
    ("請回電 0912-345-678", "0912-345-678", PHONE),
    ("call me back at (555) 012-0224 instead", "(555) 012-0224", PHONE),
    ("UK mobile +44 7700 900259", "+44 7700 900259", PHONE),
    ("mail me at prasert.m@example.co.th please", "prasert.m@example.co.th", EMAIL),
    ("เลขบัตรประชาชน 1-1017-00230-70-8 ค่ะ", "1-1017-00230-70-8", NATIONAL_ID),
    ("ID 1101700230708", "1101700230708", NATIONAL_ID),
    ("card 4111 1111 1111 1111 charged twice", "4111 1111 1111 1111", CARD),
    ("卡號 5555-5555-5555-4444 被扣款", "5555-5555-5555-4444", CARD),
])
def test_personal_data_is_found_in_every_format(text, value, kind):
    start = text.index(value)
    assert find_personal_data(text) == [PiiSpan(start, start + len(value), kind)]
    assert value not in mask(text, find_personal_data(text))


@pytest.mark.parametrize("text", [
    "Paying for 1000 Mbps, speed test shows 280 on wifi",
    "Order 1234567 placed on 2024-01-02, refund of 1,250.00 THB",
    "Router model SH-210 firmware 3.2.1 rebooted 4 times",
    "card 4111 1111 1111 1112 is not a valid card number",   # fails the check digit
    "ID 1101700230706",                                      # fails the Thai ID check digit
    "N-2024-0036 · FiberNet 500: router drops",              # a note id
    "firmware FW-7731-B and ticket TCK-20240102-77",         # codes
])
def test_ordinary_numbers_are_left_alone(text):
    assert find_personal_data(text) == []


def test_the_records_own_name_is_found_whole_and_by_its_longer_parts():
    text = "Customer Jordan Whitlock called; Jordan says the router drops. 袁梦 也来电了。"
    spans = find_personal_data(text, [(NAME, "Jordan Whitlock"), (NAME, "袁梦"), (EMAIL, "")])
    masked = mask(text, spans)
    assert masked == "Customer [name]••••••••• called; [name] says the router drops. •• 也来电了。"
    assert len(masked) == len(text)
    assert mask(text, spans, blank=True) == "Customer                 called;        says the router drops.    也来电了。"


def test_the_records_phone_is_found_even_typed_without_spaces():
    text = "ลูกค้าแจ้งเบอร์ 0913376685 ให้โทรกลับ"
    assert "0913376685" not in mask(text, find_personal_data(text, [(PHONE, "+66 91 337 6685")]))


def test_mask_works_on_a_piece_of_the_text():
    text = "email a@example.com or call +66 91 337 6685 today"
    spans = find_personal_data(text)
    piece_start = 6
    assert mask(text[piece_start:36], spans, offset=piece_start) == "[email]•••••• or call [phone]•"


def _corpus_notes() -> list[dict]:
    rows = list(csv.DictReader((CORPUS / "notes" / "notes-2024.csv").open(encoding="utf-8")))
    rows += [json.loads(line) for line in (CORPUS / "notes" / "notes-2025.jsonl").open(encoding="utf-8")]
    return rows


def test_no_customers_contact_details_survive_masking_in_the_bundled_notes():
    flagged = 0
    for row in _corpus_notes():
        known = [(NAME, row["customer_name"]), (EMAIL, row["customer_email"]), (PHONE, row["customer_phone"])]
        for field in ("complaint", "resolution"):
            text = row[field] or ""
            spans = find_personal_data(text, known)
            flagged += bool(spans)
            masked = mask(text, spans)
            for value in (row["customer_email"], row["customer_phone"], row["customer_name"]):
                assert not value or value not in masked, (row["id"], field)
            if field == "resolution":
                assert spans == [], (row["id"], "resolutions hold no personal data")
        assert find_personal_data(f"{row['id']} · {row['product']}: ") == [], "note ids and products are no phones"
    assert flagged >= 15  # the corpus README: complaints that quote phones, e-mails, two IDs and two cards


@pytest.mark.parametrize("text", [
    "客户身份证号 110101199003071233，请核实",
    "ID 11010519491231109x was given on the phone",
    "身份证：110101 19900307 1233。",
])
def test_chinese_resident_id_with_a_valid_check_character_is_found(text):
    spans = find_personal_data(text)
    assert [s.kind for s in spans] == [NATIONAL_ID]
    assert text[spans[0].start:spans[0].end].replace(" ", "").upper() in {"110101199003071233", "11010519491231109X"}


@pytest.mark.parametrize("text", [
    "订单号 110101199003071234 已发货",  # 18 digits, wrong check character: an order number
    "tracking 110101199013071233",  # check digit fits no real birth date (month 13)
])
def test_eighteen_digit_numbers_that_are_not_resident_ids_are_left_alone(text):
    assert all(s.kind != NATIONAL_ID for s in find_personal_data(text))
