"""Which language a piece of text is in: scripts first, langdetect for Latin text.

Thai, Chinese, Japanese and Korean are told apart by their scripts, which is
exact and instant. Only text written in Latin letters (or another script shared
by several languages) needs a statistical guess, and langdetect's guess is
random unless seeded and poor on short strings, so it runs seeded and only on
enough letters; shorter Latin text gets the caller's default.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

SUPPORTED_LANGUAGES = ("en", "th", "zh")

# Below this many (weighted) Latin letters langdetect is a coin toss:
# "Chapter 4", "CRM Users:", a name. Measured: it is right on single English
# sentences of about 40 letters, e.g. "Reward structure that favors adherence".
MIN_LATIN_LETTERS = 40
# langdetect reads this much; more costs time (≈1 ms per 1,000 characters)
# without changing the answer.
_SAMPLE_CHARS = 2000
# A stretch of Latin paragraphs is judged on its first words: a few hundred
# characters identify a language reliably, and langdetect's cost grows with length.
_GROUP_SAMPLE_CHARS = 600

_THAI = re.compile(r"[\u0e01-\u0e5b]")
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff]")
_KANA = re.compile(r"[\u3041-\u309f\u30a0-\u30ff\u31f0-\u31ff\uff66-\uff9d]")
_HANGUL = re.compile(r"[\u1100-\u11ff\u3130-\u318f\uac00-\ud7af]")
_LATIN_WORD = re.compile(r"[A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f\u1e00-\u1eff]+")
# Other alphabetic scripts langdetect knows: Greek, Cyrillic, Armenian, Hebrew,
# Arabic, Indic, Lao, Georgian, Myanmar, Khmer...
_OTHER = re.compile(
    r"[\u0370-\u03ff\u0400-\u052f\u0530-\u058f\u0590-\u05ff\u0600-\u06ff"
    r"\u0750-\u077f\u0900-\u0dff\u0e80-\u0eff\u1000-\u109f\u10a0-\u10ff\u1780-\u17ff]"
)
_ANY_LETTER = re.compile(r"[^\W\d_]")
# A parenthetical is usually a gloss ("The CRM (客户关系管理) module"): half weight.
_PARENTHETICAL = re.compile(r"[(（\[【][^()（）\[\]【】\n]{1,200}[)）\]】]")

# How much one character of each script says, in "Latin letters": a Thai word
# is about as many code points as an English word is letters, a Han character
# is about half a word. Non-Latin scripts get a mild premium because Thai and
# Chinese text full of English terms is common in CRM material, while English
# text quoting Thai or Chinese is rare.
_WEIGHTS = {"thai": 1.5, "han": 2.5, "kana": 1.5, "hangul": 2.5, "other": 1.0}
_SCRIPT_LANGUAGE = {"thai": "th", "han": "zh", "kana": "ja", "hangul": "ko"}
# Acronyms ("CRM", "SBU", "ROI") say nothing about the language around them.
_ACRONYM_WEIGHT = 1.0
_ACRONYM_MAX = 5


@dataclass(frozen=True)
class ScriptProfile:
    """Weighted amount of each script in a text (see `_WEIGHTS`)."""

    latin: float = 0.0
    thai: float = 0.0
    han: float = 0.0
    kana: float = 0.0
    hangul: float = 0.0
    other: float = 0.0

    @property
    def total(self) -> float:
        return self.latin + self.thai + self.han + self.kana + self.hangul + self.other

    @property
    def dominant(self) -> str | None:
        """The script with the most weight; ties go to the non-Latin script."""
        best, best_weight = None, 0.0
        for name in ("thai", "han", "kana", "hangul", "other", "latin"):
            weight = getattr(self, name)
            if weight > best_weight:
                best, best_weight = name, weight
        return best


def _count(text: str) -> dict[str, float]:
    counts = {
        "thai": len(_THAI.findall(text)) * _WEIGHTS["thai"],
        "han": len(_HAN.findall(text)) * _WEIGHTS["han"],
        "kana": len(_KANA.findall(text)) * _WEIGHTS["kana"],
        "hangul": len(_HANGUL.findall(text)) * _WEIGHTS["hangul"],
        "other": len(_OTHER.findall(text)) * _WEIGHTS["other"],
    }
    latin = 0.0
    for word in _LATIN_WORD.findall(text):
        if len(word) > 1 and len(word) <= _ACRONYM_MAX and word.isupper():
            latin += _ACRONYM_WEIGHT
        else:
            latin += len(word)
    counts["latin"] = latin
    return counts


def script_profile(text: str) -> ScriptProfile:
    """Weighted script counts, parentheticals at half weight."""
    inner = _PARENTHETICAL.findall(text)
    if inner:
        outside = _count(_PARENTHETICAL.sub(" ", text))
        glosses = _count(" ".join(inner))
        counts = {k: outside[k] + 0.5 * glosses[k] for k in outside}
    else:
        counts = _count(text)
    # Japanese writes Han characters too; kana (even a few per cent) says Japanese.
    if counts["kana"] and counts["kana"] / _WEIGHTS["kana"] * 20 >= counts["han"] / _WEIGHTS["han"]:
        counts["kana"] += counts["han"]
        counts["han"] = 0.0
    return ScriptProfile(**counts)


@lru_cache(maxsize=1)
def _factory():
    """Load langdetect's profiles once (≈0.2 s), into a factory of our own.

    A private factory seeded with 0 makes every answer deterministic without
    touching langdetect's global state, which other code may rely on.
    """
    from langdetect.detector_factory import PROFILES_DIRECTORY, DetectorFactory

    factory = DetectorFactory()
    factory.load_profile(PROFILES_DIRECTORY)
    factory.set_seed(0)
    return factory


def _langdetect(text: str) -> str | None:
    from langdetect.lang_detect_exception import LangDetectException

    detector = _factory().create()
    detector.append(text[:_SAMPLE_CHARS])
    try:
        code = detector.detect()
    except LangDetectException:
        return None
    if code == "unknown":
        return None
    return "zh" if code.startswith("zh") else code


def _language_of(profile: ScriptProfile, text: str, default: str) -> tuple[str, bool]:
    """(language, confident): confident when decided by script or by enough Latin letters."""
    dominant = profile.dominant
    if dominant is None:
        if _ANY_LETTER.search(text):  # letters of a script we do not list
            return (_langdetect(text) or default), False
        return "und", False
    if dominant in _SCRIPT_LANGUAGE:
        return _SCRIPT_LANGUAGE[dominant], True
    if dominant == "latin" and profile.latin < MIN_LATIN_LETTERS:
        return default, False
    # Only the Latin words: a stray Han gloss would otherwise pull langdetect to zh.
    sample = text if dominant == "other" else " ".join(_LATIN_WORD.findall(text[: _SAMPLE_CHARS * 2]))
    code = _langdetect(sample)
    return (code, True) if code else (default, False)


def detect_latin_language(texts: list[str]) -> str | None:
    """One langdetect call for several pieces of Latin-script text (consecutive paragraphs).

    Neighbouring Latin paragraphs of a document are nearly always one
    language; asking once for all of them instead of once each keeps language
    detection cheap on long English documents. None when langdetect cannot tell.
    """
    words: list[str] = []
    budget = _GROUP_SAMPLE_CHARS
    for text in texts:
        for word in _LATIN_WORD.findall(text):
            words.append(word)
            budget -= len(word) + 1
            if budget <= 0:
                return _langdetect(" ".join(words))
    return _langdetect(" ".join(words)) if words else None


def detect_language(text: str, default: str = "en") -> str:
    """ISO 639-1 code of `text` ("th", "zh", "en", "fr", ...), "und" without letters.

    Short Latin text (under MIN_LATIN_LETTERS letters) cannot be told apart and
    gets `default`: pass the document's language when you know it.
    """
    return _language_of(script_profile(text), text, default)[0]


def detect_language_confidently(text: str, default: str = "en") -> tuple[str, bool]:
    """Like detect_language, plus whether the answer rests on real evidence.

    The flag is False for a default or "und" answer and for non-Latin text too
    short to stand on its own (a two-character heading), so callers such as
    `kb.text.sentences.language_runs` can let such text follow its neighbours.
    """
    profile = script_profile(text)
    language, confident = _language_of(profile, text, default)
    if confident and profile.dominant != "latin" and getattr(profile, profile.dominant) < 6:
        confident = False
    return language, confident
