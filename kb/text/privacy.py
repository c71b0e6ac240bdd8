"""Personal data in customer notes: found at ingest, masked for everyone without the `pii` permission.

Agents type customers' e-mails, phone numbers, national ID numbers and even
card numbers into complaints. `find_personal_data` finds them by their shape
(phone numbers with Google's libphonenumber for the markets we serve, Thai ID,
Chinese resident ID and card numbers by their check digits with python-stdnum) plus the note's
own structured fields (the customer's name, e-mail and phone, in whatever
form the agent typed them). `mask` replaces what was found with a label.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import phonenumbers
from stdnum import luhn
from stdnum.cn import ric as chinese_ric
from stdnum.th import pin as thai_pin

EMAIL, PHONE, NATIONAL_ID, CARD, NAME = "email", "phone", "national_id", "card", "name"
KINDS = (EMAIL, PHONE, NATIONAL_ID, CARD, NAME)
# Regions whose number formats notes use: Thailand, China, Taiwan, Hong Kong, the UK, the US.
PHONE_REGIONS = ("TH", "CN", "TW", "HK", "GB", "US")
# A phone number has at least this many digits; fewer are order numbers, prices, speeds.
MIN_PHONE_DIGITS = 8
MAX_LOCAL_PHONE_DIGITS = 12
# A name part shorter than this (a Chinese given name of one character, "Li") is masked only as part of the whole name.
MIN_NAME_PART_CHARS = 3
FILL = "•"
LABELS = {EMAIL: "[email]", PHONE: "[phone]", NATIONAL_ID: "[ID number]", CARD: "[card number]", NAME: "[name]"}

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", re.UNICODE)
# 13 digits, optionally grouped 1-2345-67890-12-3 (Thai ID) or 13-19 digits in groups (cards).
_DIGIT_RUN = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# A Chinese resident ID: 17 digits and a check character (a digit or X), optionally grouped 6-8-4.
_CHINESE_RIC = re.compile(r"(?<![\dA-Za-z-])\d{6}[ -]?\d{8}[ -]?\d{3}[\dXx](?![\dA-Za-z-])")


@dataclass(frozen=True, order=True)
class PiiSpan:
    start: int
    end: int
    kind: str

    def to_dict(self) -> dict:
        return {"start": self.start, "end": self.end, "kind": self.kind}

    @classmethod
    def from_dict(cls, data: dict) -> PiiSpan:
        return cls(int(data["start"]), int(data["end"]), str(data["kind"]))


def find_personal_data(text: str, known: Iterable[tuple[str, str]] = ()) -> list[PiiSpan]:
    """Spans of personal data in `text`, sorted and never overlapping.

    `known` gives (kind, value) pairs the record itself holds (the customer's
    name, e-mail and phone): they are found wherever they appear, and a name's
    longer parts are found on their own too ("Jordan" of "Jordan Whitlock").
    """
    found: list[PiiSpan] = []
    found += [PiiSpan(m.start(), m.end(), EMAIL) for m in _EMAIL.finditer(text)]
    found += _chinese_resident_ids(text)
    found += _id_and_card_numbers(text)
    found += _phone_numbers(text)
    found += _known_values(text, known)
    return _without_overlaps(found)


def _id_and_card_numbers(text: str) -> list[PiiSpan]:
    spans = []
    for match in _DIGIT_RUN.finditer(text):
        digits = re.sub(r"\D", "", match.group())
        if len(digits) == 13 and thai_pin.is_valid(digits):
            spans.append(PiiSpan(match.start(), match.end(), NATIONAL_ID))
        elif luhn.is_valid(digits):
            spans.append(PiiSpan(match.start(), match.end(), CARD))
    return spans


def _chinese_resident_ids(text: str) -> list[PiiSpan]:
    """18-character Chinese resident IDs whose check character and birth date are valid (stdnum.cn.ric)."""
    spans = []
    for match in _CHINESE_RIC.finditer(text):
        if chinese_ric.is_valid(re.sub(r"[ -]", "", match.group())):
            spans.append(PiiSpan(match.start(), match.end(), NATIONAL_ID))
    return spans


def _phone_numbers(text: str) -> list[PiiSpan]:
    spans = set()
    for region in PHONE_REGIONS:
        for match in phonenumbers.PhoneNumberMatcher(text, region, leniency=phonenumbers.Leniency.POSSIBLE):
            raw = match.raw_string.strip()
            digits = sum(ch.isdigit() for ch in raw)
            # Without a country code a phone number has at most 12 digits; longer runs are IDs or cards.
            plausible = MIN_PHONE_DIGITS <= digits and (digits <= MAX_LOCAL_PHONE_DIGITS or raw.startswith("+"))
            if (plausible and not _ISO_DATE.match(raw) and not _inside_longer_number(text, match.start, match.end)
                    and not _part_of_identifier(text, match.start, match.end)):
                spans.add(PiiSpan(match.start, match.end, PHONE))
    return list(spans)


def _inside_longer_number(text: str, start: int, end: int) -> bool:
    """Whether digits continue right before or after (across one space or dash): part of a card or ID number."""
    before = text[max(start - 2, 0) : start]
    after = text[end : end + 2]
    return bool(re.search(r"\d[ -]?$", before) or re.match(r"^[ -]?\d", after))


def _part_of_identifier(text: str, start: int, end: int) -> bool:
    """Digits glued to Latin letters, like a note id "N-2024-0036" or a model "FW-7731-B": a code, not a phone.

    Only Latin letters: Thai and Chinese are written without spaces, so "โทร0912345678" is a phone.
    """
    before = text[max(start - 2, 0) : start]
    after = text[end : end + 2]
    return bool(re.search(r"[A-Za-z][-_/]?$", before) or re.match(r"^[-_/]?[A-Za-z]", after))


def _known_values(text: str, known: Iterable[tuple[str, str]]) -> list[PiiSpan]:
    spans = []
    folded = text.casefold()
    for kind, value in known:
        value = " ".join((value or "").split())
        if not value:
            continue
        needles = [value]
        if kind == NAME:
            needles += [part for part in value.split() if len(part) >= MIN_NAME_PART_CHARS]
        elif kind == PHONE:
            digits = re.sub(r"\D", "", value)
            needles += [digits, digits[-9:]] if len(digits) >= MIN_PHONE_DIGITS else []
        for needle in dict.fromkeys(n.casefold() for n in needles):
            start = folded.find(needle)
            while start != -1:
                spans.append(PiiSpan(start, start + len(needle), kind))
                start = folded.find(needle, start + len(needle))
    return spans


def _without_overlaps(spans: list[PiiSpan]) -> list[PiiSpan]:
    """Overlapping spans merged into one, taking the kind of the longest."""
    merged: list[PiiSpan] = []
    for span in sorted(spans, key=lambda s: (s.start, -(s.end - s.start))):
        if merged and span.start < merged[-1].end:
            last = merged[-1]
            if span.end > last.end:
                kind = last.kind if last.end - last.start >= span.end - span.start else span.kind
                merged[-1] = PiiSpan(last.start, span.end, kind)
            continue
        merged.append(span)
    return merged


def mask(text: str, spans: Iterable[PiiSpan], offset: int = 0, labels: dict[str, str] | None = None,
         blank: bool = False) -> str:
    """`text` (which starts at `offset` of the text the spans refer to) with every span masked.

    The masked text is exactly as long as the original, so every offset
    (citations, highlights, passages) stays true: a span becomes its label
    padded with dots ("[phone]•••••••"), or dots alone when the label is longer;
    with `blank`, spaces (for the indexes, which should see nothing there).
    """
    labels = labels or LABELS
    chars = list(text)
    for span in spans:
        start, end = max(span.start - offset, 0), min(span.end - offset, len(text))
        if end <= start:
            continue
        width = end - start
        if blank:
            fill = " " * width
        else:
            label = labels.get(span.kind, "")
            fill = label + FILL * (width - len(label)) if len(label) <= width else FILL * width
        chars[start:end] = fill
    return "".join(chars)


def mask_personal_data(text: str, name: str = "", email: str = "", phone: str = "") -> str:
    """`text` with personal data masked, found afresh (for a note's separate fields)."""
    if not text:
        return text
    return mask(text, find_personal_data(text, [(NAME, name), (EMAIL, email), (PHONE, phone)]))


def index_text(text: str, personal_data: list[PiiSpan], offset: int = 0) -> str:
    """Text for the embedder and the keyword index: nobody can find a note by a customer's phone number."""
    return mask(text, personal_data, offset, blank=True) if personal_data else text
