"""Decode text files' bytes: byte-order marks, UTF-8, our users' legacy encodings, then a guess."""

from __future__ import annotations

import codecs
import itertools
import re
import unicodedata
from pathlib import Path

import charset_normalizer

from indexer.readers.common import _where
from kb.documents import ReadError

# Longest first: the UTF-32 LE mark begins with the UTF-16 LE one.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)

# The legacy encodings our users' files actually come in (Thai, Simplified and Traditional
# Chinese, Western Windows), in order of preference when two decode equally well.
# cp874 is TIS-620 plus Windows punctuation; gb18030 covers GB2312 and GBK; cp950 is
# Microsoft's Big5 with a few extra characters, tried only when strict Big5 fails.
_LEGACY_ENCODINGS = ("cp874", "gb18030", "big5", "cp950", "cp1252")
_CHINESE_ENCODINGS = ("gb18030", "big5", "cp950")

# A decoding counts as plausible when at least this share of its non-ASCII characters
# look like real text in the script the encoding is for (see `_plausibility`), judged
# on the first `_PLAUSIBILITY_SAMPLE` of them so that big files stay fast.
_PLAUSIBLE = 0.9
_PLAUSIBILITY_SAMPLE = 5_000
_NON_ASCII = re.compile(r"[^\x00-\x7f]")

# About a hundred of the most frequent Chinese characters, in Simplified then Traditional
# form (plus a few CRM words: customer, service, product, order, question, system).
# Real Chinese text is roughly one third these; bytes of another language read as
# Chinese give a scatter of rare characters.
_COMMON_HAN = frozenset(
    "的一是不了在人有我他这个们中来上大为和国地到以说时要就出会可也你对生能而子那得于着下自之年"
    "过发后作里用道行所然家种事成方多经么去法学如都同现当没动面起看定天分还进好小部其些主样理心请"
    "客户服务产品订单问题系统管支持"
    "這個們來為國說時會對於著過發後裡種經麼學現當沒動還進樣請客戶服務產品訂單問題系統"
)

_TYPOGRAPHY = frozenset("\u00a0€£¥¢©®™°±×÷«»·§¶¿¡²³¹½¼¾µ")
_THAI_CONSONANTS = frozenset(chr(c) for c in range(0x0E01, 0x0E2F))
# Vowel and tone marks written above or below a consonant.
_THAI_MARKS = frozenset(chr(c) for c in [0x0E31, *range(0x0E34, 0x0E3B), *range(0x0E47, 0x0E4F)])
_THAI_LEADING_VOWELS = frozenset("เแโใไ")  # written before the consonant they follow in speech
_THAI_FOLLOWING_VOWELS = frozenset("ะาำๅฯ")  # written after a consonant (or another vowel)
_THAI_DIGITS = frozenset("๐๑๒๓๔๕๖๗๘๙")
# Obsolete letters and rare signs: frequent in Chinese or Western bytes read as TIS-620,
# absent from modern Thai.
_THAI_UNUSED = frozenset("ฃฅฦ๚๛")


def decode_bytes(data: bytes, path: Path | None = None) -> tuple[str, str]:
    """Decode a text file's bytes; return (text, encoding name).

    Order: a byte-order mark; NUL bytes (UTF-16 without a mark, else binary); strict
    UTF-8; the legacy encodings our users have (cp874, gb18030, big5, cp1252), kept
    only when the result reads like real text (`_plausibility`); finally
    charset-normalizer for anything else. charset-normalizer alone misreads short
    Thai and Chinese texts (it guessed Korean cp949 for a 10-byte TIS-620 greeting),
    which is why the plausibility check comes first.
    """
    prefix = f"{_where(path)}: " if path is not None else ""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data[len(bom) :].decode(encoding), encoding
            except UnicodeDecodeError as exc:
                raise ReadError(
                    f"{prefix}starts with a {encoding} byte-order mark but is not valid {encoding}"
                ) from exc
    if b"\x00" in data:
        return _decode_utf16_without_bom(data, prefix)
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    legacy = _best_legacy_decoding(data)
    if legacy is not None:
        return legacy
    guess = charset_normalizer.from_bytes(data).best()
    if guess is None:
        raise ReadError(f"{prefix}not a text file (binary data)")
    return str(guess), guess.encoding


def _decode_utf16_without_bom(data: bytes, prefix: str) -> tuple[str, str]:
    """Text with NUL bytes is UTF-16 only if the NULs sit on one side of each pair.

    ASCII characters (spaces, digits, newlines) in UTF-16 have a zero high byte, so
    their NULs fall on odd offsets (little-endian) or even ones (big-endian). Anything
    else with NULs, or a decoding full of control characters, is binary.
    """
    binary = ReadError(f"{prefix}not a text file (binary data)")
    if len(data) % 2:
        raise binary
    odd = data[1::2].count(0)
    even = data[0::2].count(0)
    encoding = "utf-16-le" if odd > even else "utf-16-be"
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise binary from exc
    controls = sum(
        1 for ch in text if unicodedata.category(ch) in ("Cc", "Cs", "Co") and ch not in "\t\n\r\f"
    )
    if controls:
        raise binary
    return text, encoding


def _best_legacy_decoding(data: bytes) -> tuple[str, str] | None:
    """The most plausible decoding among `_LEGACY_ENCODINGS`, or None if none reads as text."""
    scores: dict[str, tuple[float, str]] = {}
    for encoding in _LEGACY_ENCODINGS:
        if encoding == "cp950" and "big5" in scores:
            continue
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        score = _plausibility(text, encoding)
        if score >= _PLAUSIBLE:
            scores[encoding] = (score, text)
    chinese = [enc for enc in scores if enc in _CHINESE_ENCODINGS]
    if len(chinese) > 1:
        # Both Chinese codecs read the bytes as sensible Han characters: keep the one
        # with more common characters (ties go to gb18030, the more widespread).
        best = max(chinese, key=lambda enc: _common_han_hits(scores[enc][1]))
        scores = {enc: value for enc, value in scores.items() if enc not in chinese or enc == best}
    if not scores:
        return None
    encoding = max(scores, key=lambda enc: scores[enc][0])  # ties: the first in _LEGACY_ENCODINGS
    return scores[encoding][1], encoding


def _plausibility(text: str, encoding: str) -> float:
    """Share (0..1) of non-ASCII characters that look like real text for this encoding.

    A wrong legacy codec rarely fails outright (cp1252 decodes almost any byte), but
    it yields what real text never has: Thai vowel marks on Latin letters or on
    nothing, runs of accented letters with no plain letter in the word, kana or
    Cyrillic among Chinese, Big5 bytes read as rare GBK-only characters, or a page of
    Han characters none of which is common.
    """
    foreign = _non_ascii_positions(text)
    if not foreign:
        return 1.0
    if encoding == "cp874":
        looks_right = _looks_thai
    elif encoding in _CHINESE_ENCODINGS:
        han = sum(1 for i in foreign if _is_han(text[i]))
        if han >= 20 and _common_han_hits(text) * 20 < han:
            return 0.0  # twenty Han characters and almost none of the common ones
        looks_right = _looks_simplified if encoding == "gb18030" else _looks_traditional
    else:
        looks_right = _looks_western
    return sum(1 for i in foreign if looks_right(text, i)) / len(foreign)


def _looks_thai(text: str, i: int) -> bool:
    """Thai spelling rules that any real Thai text keeps (and misread bytes break)."""
    ch = text[i]
    if ch in _TYPOGRAPHY or 0x2010 <= ord(ch) <= 0x205E:
        return True
    if not 0x0E01 <= ord(ch) <= 0x0E5B or ch in _THAI_UNUSED:
        return False
    before = text[i - 1] if i else " "
    after = text[i + 1] if i + 1 < len(text) else " "
    if before.isascii() and before.isalpha():
        return False  # misread Western text: "Caf" + a Thai tone mark
    if ch in _THAI_MARKS:
        return before in _THAI_CONSONANTS or before in _THAI_MARKS
    if ch in _THAI_FOLLOWING_VOWELS:
        return before in _THAI_CONSONANTS or before in _THAI_MARKS or before in _THAI_FOLLOWING_VOWELS
    if ch in _THAI_LEADING_VOWELS:
        return after in _THAI_CONSONANTS
    if ch in _THAI_DIGITS:  # numbers stand apart from words
        return not _is_thai_letter(before) and not _is_thai_letter(after)
    return True


def _is_thai_letter(ch: str) -> bool:
    return 0x0E01 <= ord(ch) <= 0x0E4E


def _is_han(ch: str) -> bool:
    code = ord(ch)
    return 0x4E00 <= code <= 0x9FFF or 0x3400 <= code <= 0x4DBF or 0xF900 <= code <= 0xFAFF


def _looks_chinese(text: str, i: int) -> bool:
    """Han characters (not wedged inside a Latin word) and CJK punctuation."""
    ch = text[i]
    code = ord(ch)
    if _is_han(ch):
        before = text[i - 1] if i else " "
        after = text[i + 1] if i + 1 < len(text) else " "
        return not (before.isascii() and before.isalpha() and after.isascii() and after.isalpha())
    return (
        0x3000 <= code <= 0x303F  # CJK punctuation
        or 0xFF00 <= code <= 0xFFEF  # full-width forms
        or 0x2010 <= code <= 0x2027  # quotes, dashes, ellipsis
        or ch in _TYPOGRAPHY
    )


def _looks_simplified(text: str, i: int) -> bool:
    """Simplified Chinese rarely leaves GB2312's 6,763 characters; Big5 bytes read as GBK do."""
    return _looks_chinese(text, i) and (not _is_han(text[i]) or _in_gb2312(text[i]))


def _looks_traditional(text: str, i: int) -> bool:
    """Traditional Chinese stays mostly in Big5's 5,401 frequent characters; GB bytes read as Big5 do not."""
    return _looks_chinese(text, i) and (not _is_han(text[i]) or _in_big5_level1(text[i]))


def _in_gb2312(ch: str) -> bool:
    try:
        ch.encode("gb2312")
    except UnicodeEncodeError:
        return False
    return True


def _in_big5_level1(ch: str) -> bool:
    try:
        return b"\xa4\x40" <= ch.encode("big5") <= b"\xc6\x7e"
    except UnicodeEncodeError:
        return False


def _looks_western(text: str, i: int) -> bool:
    """Accented letters live inside Latin words (Café, Größe) or stand alone (à, é)."""
    ch = text[i]
    if ch in _TYPOGRAPHY or 0x2010 <= ord(ch) <= 0x205E:
        return True
    if not ch.isalpha():
        return False
    start, end = i, i + 1
    while start > 0 and text[start - 1].isalpha():
        start -= 1
    while end < len(text) and text[end].isalpha():
        end += 1
    word = text[start:end]
    return len(word) == 1 or any(c.isascii() for c in word)


def _non_ascii_positions(text: str) -> list[int]:
    """Where the first `_PLAUSIBILITY_SAMPLE` non-ASCII characters are (ASCII reads the same in every codec)."""
    return [match.start() for match in itertools.islice(_NON_ASCII.finditer(text), _PLAUSIBILITY_SAMPLE)]


def _common_han_hits(text: str) -> int:
    return sum(1 for i in _non_ascii_positions(text) if text[i] in _COMMON_HAN)
