"""Turn files into `DocumentInput`s: guidance (.txt .md .html .pdf .docx) and customer notes (.csv .jsonl).

Every reader takes the file's bytes and returns a `ReadResult`. A file that cannot be used at
all raises `ReadError` whose message starts with the file's path and says what to do; a
notes file with some bad rows still yields its good rows, and each bad row becomes a
`ReadProblem` naming the row and the field. Readers keep the text as written: cleaning,
language detection and chunking happen later in the knowledge base.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import itertools
import json
import re
import unicodedata
import zipfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import charset_normalizer
import docx
import frontmatter
import pypdf
import trafilatura
import yaml
from bs4 import BeautifulSoup
from docx.table import Table
from lxml import etree
from markdown_it import MarkdownIt

from kb.documents import (
    GUIDANCE,
    KINDS,
    NOTE,
    NOTE_FIELDS,
    DocumentInput,
    NoteFields,
    ReadError,
    ReadProblem,
    ReadResult,
)

SUPPORTED_SUFFIXES: frozenset[str] = frozenset(
    {".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx", ".csv", ".jsonl"}
)

MAX_TITLE_CHARS = 120


def is_supported(path: Path) -> bool:
    """Whether `read_file` knows the file's type (by suffix, any case)."""
    return Path(path).suffix.lower() in SUPPORTED_SUFFIXES


def read_file(path: Path) -> ReadResult:
    """Read one file into documents, choosing the reader by suffix.

    Raises `ReadError` (message: "<absolute path>: <what is wrong>") when nothing in the
    file can be used: unsupported type, empty, binary, corrupt, encrypted, and so on.
    """
    path = Path(path)
    where = _where(path)
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        supported = ", ".join(sorted(SUPPORTED_SUFFIXES))
        raise ReadError(
            f"{where}: unsupported file type '{path.suffix or '(none)'}' (supported: {supported})"
        )
    data = _read_bytes(path, where)
    if not data.strip():
        raise ReadError(f"{where}: empty file")
    return reader(path, data)


def _where(path: Path) -> str:
    """The absolute POSIX path used as `source_file` and at the start of every message."""
    return path.resolve().as_posix()


def _read_bytes(path: Path, where: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise ReadError(f"{where}: file not found") from exc
    except IsADirectoryError as exc:
        raise ReadError(f"{where}: is a folder, not a file") from exc
    except OSError as exc:
        raise ReadError(f"{where}: cannot open the file ({exc.strerror or exc})") from exc


def _empty_text_error(where: str, text: str) -> None:
    if not text.strip():
        raise ReadError(f"{where}: empty file")


# ---------------------------------------------------------------------------
# Encodings
# ---------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------
# Plain text
# ---------------------------------------------------------------------------


def _read_txt(path: Path, data: bytes) -> ReadResult:
    where = _where(path)
    text, encoding = decode_bytes(data, path)
    text = _unify_newlines(text)
    _empty_text_error(where, text)
    first_line = _first_short_line(text)
    doc = DocumentInput(
        source=where,
        source_file=where,
        title=first_line or _title_from_stem(path),
        text=text,
        metadata={"format": "txt", "encoding": encoding},
        title_from_text=first_line is not None,
    )
    return ReadResult(documents=[doc])


def _unify_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _first_short_line(text: str) -> str | None:
    """The first non-empty line, if it is short enough to be a title."""
    for line in text.splitlines():
        line = line.strip()
        if line:
            return line if len(line) <= MAX_TITLE_CHARS else None
    return None


def _title_from_stem(path: Path) -> str:
    """`return_policy-2024.txt` -> "return policy 2024"."""
    return re.sub(r"[_\-\s]+", " ", path.stem).strip() or path.name


# ---------------------------------------------------------------------------
# Markdown
# ---------------------------------------------------------------------------

_FRONT_MATTER_KEYS = ("title", "tags", "visibility", "lang", "language", "kind")


def _read_markdown(path: Path, data: bytes) -> ReadResult:
    where = _where(path)
    raw, encoding = decode_bytes(data, path)
    raw = _unify_newlines(raw)
    _empty_text_error(where, raw)
    try:
        post = frontmatter.loads(raw)
    except yaml.YAMLError as exc:
        raise ReadError(
            f"{where}: front matter is not valid YAML, {_describe_yaml_error(exc)}; "
            "fix the block between the two '---' lines"
        ) from exc
    meta = dict(post.metadata)
    tokens = _MARKDOWN.parse(post.content)
    text = _markdown_tokens_to_text(tokens)
    if not text.strip():
        raise ReadError(f"{where}: no text to index (the file has front matter but no body)")
    title = _text_value(meta.get("title")) or _first_h1(tokens) or _title_from_stem(path)
    kind = (_text_value(meta.get("kind")) or GUIDANCE).lower()
    if kind not in KINDS:
        raise ReadError(f"{where}: front matter 'kind' is {kind!r}; use one of: {', '.join(KINDS)}")
    extra = {key: _jsonable(value) for key, value in meta.items() if key not in _FRONT_MATTER_KEYS}
    doc = DocumentInput(
        source=where,
        source_file=where,
        title=title,
        text=text,
        kind=kind,
        tags=_normalise_tags(meta.get("tags")),
        metadata={**extra, "format": "markdown", "encoding": encoding},
        visibility=(_text_value(meta.get("visibility")) or "internal").lower(),
        language=(_text_value(meta.get("lang") or meta.get("language")) or "").lower() or None,
    )
    return ReadResult(documents=[doc])


def _describe_yaml_error(exc: yaml.YAMLError) -> str:
    """The YAML problem with the file's line number, e.g. "line 4: did not find expected ',' or ']'".

    python-frontmatter hands YAML the text right after the opening '---', newline
    included, so YAML's 0-based line numbers plus one are the file's line numbers.
    """
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    if mark is None:
        return problem
    described = f"line {mark.line + 1}: {problem}"
    context, context_mark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    if context and context_mark is not None and context_mark.line != mark.line:
        described += f" ({context} that starts on line {context_mark.line + 1})"
    return described


def _text_value(value: object) -> str:
    """A front-matter scalar as trimmed text ('' for missing or non-scalar values)."""
    if value is None or isinstance(value, (list, dict)):
        return ""
    return str(value).strip()


def _jsonable(value: object) -> object:
    """Front matter may hold dates (YAML reads `2024-01-02` as a date); metadata is stored as JSON."""
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    return value


# CommonMark plus GitHub tables and strikethrough: what support teams paste from wikis.
_MARKDOWN = MarkdownIt("commonmark").enable(["table", "strikethrough"])


def _markdown_tokens_to_text(tokens: list) -> str:
    """Plain text of a markdown-it token stream, for search.

    Uses markdown-it-py (a maintained CommonMark parser) rather than regexes, so
    nested emphasis, links with brackets in them and code spans come out right.
    Headings become their own paragraphs without '#', list items become "- " (or
    "1. ") lines, table rows become cells joined by " | ", code is kept as text,
    links and images keep only their visible text, raw HTML keeps its text.
    Blocks are separated by a blank line; lines of a list or table by one newline.
    """
    blocks: list[str] = []
    group: list[str] = []  # lines of the list or table being read
    lists: list[int | None] = []  # open lists, innermost last: next number, None for bullets
    row: list[str] | None = None
    item_prefix: str | None = None

    def add(text: str) -> None:
        nonlocal item_prefix
        if lists:
            indent = "  " * (len(lists) - 1)
            if item_prefix is not None:
                group.append(indent + item_prefix + text)
                item_prefix = None
            else:
                group.extend(indent + "  " + line for line in text.splitlines())
        elif text.strip():
            blocks.append(text)

    for token in tokens:
        kind = token.type
        if kind == "bullet_list_open":
            lists.append(None)
        elif kind == "ordered_list_open":
            lists.append(int(token.attrGet("start") or 1))
        elif kind == "list_item_open":
            number = lists[-1]
            item_prefix = "- " if number is None else f"{number}. "
            if number is not None:
                lists[-1] = number + 1
        elif kind in ("bullet_list_close", "ordered_list_close"):
            lists.pop()
            if not lists and group:
                blocks.append("\n".join(group))
                group = []
        elif kind == "tr_open":
            row = []
        elif kind == "tr_close":
            group.append(" | ".join(row or []))
            row = None
        elif kind == "table_close" and not lists:  # a table inside a list stays in the list's lines
            blocks.append("\n".join(group))
            group = []
        elif kind == "inline":
            text = _inline_text(token)
            if row is not None:
                row.append(text.replace("\n", " "))
            else:
                add(text)
        elif kind in ("fence", "code_block"):
            add(token.content.rstrip("\n"))
        elif kind == "html_block":
            add(BeautifulSoup(token.content, "lxml").get_text(" ", strip=True))
    return "\n\n".join(blocks)


def _inline_text(token) -> str:
    """Visible text of an inline token: markup dropped, image alt text kept."""
    parts = []
    for child in token.children or []:
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append("\n")
        elif child.type == "image":
            parts.append(child.content)
    return "".join(parts).strip()


def _first_h1(tokens: list) -> str | None:
    for token, following in zip(tokens, tokens[1:], strict=False):
        if token.type == "heading_open" and token.tag == "h1":
            return _inline_text(following) or None
    return None


# ---------------------------------------------------------------------------
# HTML
# ---------------------------------------------------------------------------

_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:\-]+)""", re.IGNORECASE)
# What browsers actually use for the legacy labels (WHATWG Encoding Standard).
_HTML_CHARSET_ALIASES = {
    "iso-8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "us-ascii": "cp1252",
    "ascii": "cp1252",
    "tis-620": "cp874",
    "iso-8859-11": "cp874",
    "windows-874": "cp874",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "big5": "big5hkscs",
}
# Never main content. (<header>/<footer> inside an article hold its title and byline, so
# only page-level ones go; <form> goes only in the fallback, see `_main_text_with_soup`.)
_NEVER_CONTENT_TAGS = ("nav", "aside", "script", "style", "noscript", "template", "iframe", "svg", "button")
# Class or id names of cookie banners, newsletter boxes and the like ("cookie-banner",
# "gdpr_notice"), matched as whole names or name prefixes so "no-sidebar" is not one.
_BOILERPLATE_NAME = re.compile(
    r"^(cookie|consent|gdpr|newsletter|breadcrumbs?|sidebar|popup|modal)([-_]|$)", re.IGNORECASE
)
_BLOCK_TAGS = (
    "p div section article main h1 h2 h3 h4 h5 h6 li ul ol dl dt dd tr table pre blockquote figure figcaption"
).split()
_TITLE_SEPARATOR = re.compile(r"^\s*[|\-–—·:»]\s*\S")


def _read_html(path: Path, data: bytes) -> ReadResult:
    where = _where(path)
    html, encoding = _decode_html(data, path)
    _empty_text_error(where, html)
    soup = BeautifulSoup(html, "lxml")
    title = _html_title(soup) or _title_from_stem(path)
    _remove_page_furniture(soup)
    text = _main_text_with_trafilatura(str(soup)) or _main_text_with_soup(soup)
    if not text.strip():
        raise ReadError(f"{where}: no readable text in the page (is the content loaded by JavaScript?)")
    doc = DocumentInput(
        source=where,
        source_file=where,
        title=title,
        text=text,
        metadata={"format": "html", "encoding": encoding},
    )
    return ReadResult(documents=[doc])


def _remove_page_furniture(soup: BeautifulSoup) -> None:
    """Drop navigation, banners, scripts and page headers/footers before extraction.

    trafilatura already skips most of these, but on short pages it falls back to
    taking every text node, navigation included; removing them first keeps it honest.
    """
    for tag in soup.find_all(_NEVER_CONTENT_TAGS):
        tag.decompose()
    for tag in soup.find_all(["header", "footer"]):
        if not tag.find_parent(["article", "main"]):
            tag.decompose()
    for tag in soup.find_all(True):
        if tag.decomposed:
            continue
        names = [tag.get("id") or "", *(tag.get("class") or [])]
        if any(_BOILERPLATE_NAME.match(name) for name in names):
            tag.decompose()


def _decode_html(data: bytes, path: Path) -> tuple[str, str]:
    """A byte-order mark wins, then a <meta charset> that actually decodes, then `decode_bytes`."""
    if any(data.startswith(bom) for bom, _ in _BOMS):
        return decode_bytes(data, path)
    match = _META_CHARSET.search(data[:4096])
    if match:
        label = match.group(1).decode("ascii").lower()
        encoding = _HTML_CHARSET_ALIASES.get(label, label)
        try:
            codecs.lookup(encoding)
            return data.decode(encoding), encoding
        except (LookupError, UnicodeDecodeError):
            pass  # unknown label or a page that lies about its charset
    return decode_bytes(data, path)


def _main_text_with_trafilatura(html: str) -> str:
    """Main content via trafilatura's XML output, rendered with blank lines between blocks."""
    xml = trafilatura.extract(
        html,
        output_format="xml",
        include_tables=True,
        include_comments=False,
        include_images=False,
        include_links=False,
        include_formatting=False,
    )
    if not xml:
        return ""
    try:
        root = etree.fromstring(xml.encode("utf-8"))
    except etree.XMLSyntaxError:
        return ""
    main = root.find("main")
    if main is None:
        return ""
    blocks = [main.text or ""]  # a short page's text can sit directly in <main>
    for element in main:
        blocks += [_xml_block_text(element), element.tail or ""]
    return "\n\n".join(block.strip() for block in blocks if block.strip())


def _xml_block_text(element, depth: int = 0) -> str:
    """One block of trafilatura's XML (head, p, list, table, quote, code) as plain text."""
    if element.tag == "list":
        lines = []
        for item in element.iter("item"):
            if item.getparent() is element:
                nested = [_xml_block_text(sub, depth + 1) for sub in item if sub.tag == "list"]
                lines.append("  " * depth + "- " + _xml_inline_text(item, skip="list"))
                lines.extend(nested)
        return "\n".join(lines)
    if element.tag == "table":
        rows = [
            " | ".join(_xml_inline_text(cell) for cell in row.iter("cell")) for row in element.iter("row")
        ]
        return "\n".join(row for row in rows if row.strip(" |"))
    return _xml_inline_text(element)


def _xml_inline_text(element, skip: str | None = None) -> str:
    """Text of an element with <lb/> as a newline, leaving out children tagged `skip`."""
    parts = [element.text or ""]
    for child in element:
        if child.tag == "lb":
            parts.append("\n")
        elif child.tag != skip:
            parts.append(_xml_inline_text(child))
        parts.append(child.tail or "")
    return "\n".join(line.strip() for line in "".join(parts).splitlines()).strip()


def _main_text_with_soup(soup: BeautifulSoup) -> str:
    """Fallback when trafilatura finds nothing: all text left after `_remove_page_furniture`.

    Forms go too (search boxes, logins), except a form that wraps the content, as
    ASP.NET pages do with their whole body.
    """
    body = soup.body or soup
    for form in body.find_all("form"):
        if not form.decomposed and not form.find(["p", "article", "main", "table"]):
            form.decompose()
    for br in body.find_all("br"):
        br.replace_with("\n")
    for cell in body.find_all(["td", "th"]):
        if cell.find_previous_sibling(["td", "th"]):
            cell.insert_before(" | ")
    for item in body.find_all("li"):
        item.insert(0, "- ")
    for block in body.find_all(_BLOCK_TAGS):
        block.insert_before("\n\n")
        block.insert_after("\n\n")
    paragraphs = re.split(r"\n\s*\n", body.get_text())
    cleaned = (
        re.sub(r"[ \t]+", " ", "\n".join(line.strip() for line in p.splitlines())).strip() for p in paragraphs
    )
    return "\n\n".join(p for p in cleaned if p)


def _html_title(soup: BeautifulSoup) -> str | None:
    """<title> (without its " | Site" tail when the h1 is that shorter title), og:title, first h1."""
    h1 = soup.find("h1")
    h1_text = " ".join(h1.get_text(" ").split()) if h1 else ""
    title_text = " ".join(soup.title.get_text(" ").split()) if soup.title else ""
    if title_text:
        if (
            h1_text
            and len(h1_text) < len(title_text)
            and title_text.startswith(h1_text)
            and _TITLE_SEPARATOR.match(title_text[len(h1_text) :])
        ):
            return h1_text
        return title_text
    og = soup.find("meta", attrs={"property": "og:title"})
    og_text = " ".join((og.get("content") or "").split()) if og else ""
    return og_text or h1_text or None


# ---------------------------------------------------------------------------
# PDF
# ---------------------------------------------------------------------------

_MEANINGLESS_PDF_TITLES = {"untitled", "title", "document", "no title", "microsoft word"}


def _read_pdf(path: Path, data: bytes) -> ReadResult:
    where = _where(path)
    if b"%PDF-" not in data[:1024]:
        raise ReadError(f"{where}: not a valid PDF file (no '%PDF-' header)")
    try:
        reader = pypdf.PdfReader(io.BytesIO(data), strict=False)
    except Exception as exc:  # pypdf raises many types for broken files
        raise ReadError(f"{where}: not a valid PDF file, it may be damaged ({exc})") from exc
    _unlock_pdf(reader, where)
    problems: list[ReadProblem] = []
    pages: list[str] = []
    try:
        page_list = list(reader.pages)
    except Exception as exc:
        raise ReadError(f"{where}: not a valid PDF file, cannot read its pages ({exc})") from exc
    for number, page in enumerate(page_list, start=1):
        try:
            page_text = page.extract_text() or ""
        except Exception as exc:
            problems.append(
                ReadProblem(where, f"cannot extract text from this page ({exc})", f"page {number}")
            )
            continue
        if page_text.strip():
            pages.append(page_text.strip())
    if not pages:
        if problems:
            raise ReadError(f"{where}: could not extract text from any page ({problems[0].message})")
        raise ReadError(f"{where}: no extractable text (scanned PDF? run OCR first)")
    text = "\n\n".join(pages)
    metadata_title = _pdf_metadata_title(reader)
    first_line = None if metadata_title else _first_short_line(text)
    title = metadata_title or first_line or _title_from_stem(path)
    doc = DocumentInput(
        source=where,
        source_file=where,
        title=title,
        text=text,
        metadata={"format": "pdf", "pages": len(page_list)},
        title_from_text=first_line is not None,
    )
    return ReadResult(documents=[doc], problems=problems)


def _unlock_pdf(reader: pypdf.PdfReader, where: str) -> None:
    """Open an encrypted PDF with the empty password (many are 'protected' only against editing)."""
    if not reader.is_encrypted:
        return
    try:
        unlocked = reader.decrypt("")
    except pypdf.errors.DependencyError as exc:
        raise ReadError(
            f"{where}: encrypted PDF (AES); install the 'cryptography' package to read it"
        ) from exc
    except Exception as exc:
        raise ReadError(f"{where}: encrypted PDF, cannot decrypt it ({exc})") from exc
    if unlocked == pypdf.PasswordType.NOT_DECRYPTED:
        raise ReadError(f"{where}: encrypted PDF, cannot read without a password")


def _pdf_metadata_title(reader: pypdf.PdfReader) -> str | None:
    """The document-info /Title, unless it is a placeholder or a file name."""
    try:
        title = (reader.metadata.title if reader.metadata else None) or ""
    except Exception:
        return None
    title = " ".join(str(title).split())
    title = re.sub(r"^Microsoft (Word|PowerPoint|Excel) - ", "", title)
    if not title or title.lower() in _MEANINGLESS_PDF_TITLES or len(title) > MAX_TITLE_CHARS:
        return None
    if re.search(r"\.(docx?|pptx?|xlsx?|pdf|txt|indd|rtf|odt)$", title, re.IGNORECASE):
        return None
    return title


# ---------------------------------------------------------------------------
# DOCX
# ---------------------------------------------------------------------------

DOCX_MAX_UNPACKED_BYTES = 100 * 1024 * 1024
# Word's XML compresses about 5-20 times; a member that expands more than this (and is
# big) is built to exhaust memory, not to be read.
DOCX_MAX_RATIO = 100
_DOCX_RATIO_CHECK_FROM = 1024 * 1024


def _read_docx(path: Path, data: bytes) -> ReadResult:
    where = _where(path)
    _refuse_docx_bomb(data, where)
    try:
        document = docx.Document(io.BytesIO(data))
    except Exception as exc:  # python-docx raises KeyError, ValueError, PackageNotFoundError...
        raise ReadError(f"{where}: not a valid .docx file ({type(exc).__name__}: {exc})") from exc
    blocks = [_docx_block_text(block) for block in document.iter_inner_content()]
    text = "\n\n".join(block for block in blocks if block.strip())
    if not text.strip():
        raise ReadError(f"{where}: no text in the document")
    doc = DocumentInput(
        source=where,
        source_file=where,
        title=_docx_title(document) or _title_from_stem(path),
        text=text,
        metadata={"format": "docx"},
    )
    return ReadResult(documents=[doc])


def _refuse_docx_bomb(data: bytes, where: str) -> None:
    """Check the zip directory before python-docx unpacks anything.

    zipfile never inflates a member past the size its directory entry declares, so
    checking the declared sizes here is enough to bound what parsing can allocate.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError) as exc:
        raise ReadError(f"{where}: not a valid .docx file (not a zip archive)") from exc
    with archive:
        members = archive.infolist()
    total = sum(member.file_size for member in members)
    if total > DOCX_MAX_UNPACKED_BYTES:
        raise ReadError(
            f"{where}: refused: the .docx would unpack to {total / 2**20:.0f} MB "
            f"(limit {DOCX_MAX_UNPACKED_BYTES // 2**20} MB); it may be a zip bomb"
        )
    for member in members:
        if member.file_size < _DOCX_RATIO_CHECK_FROM:
            continue
        ratio = member.file_size / max(member.compress_size, 1)
        if ratio > DOCX_MAX_RATIO:
            raise ReadError(
                f"{where}: refused: '{member.filename}' in the .docx expands {ratio:.0f} times "
                f"(limit {DOCX_MAX_RATIO}); it looks like a zip bomb"
            )


def _docx_block_text(block) -> str:
    """A paragraph's text (list bullets as "- "), or a table as rows of " | "-joined cells."""
    if isinstance(block, Table):
        return "\n".join(_docx_row_text(row) for row in block.rows).strip()
    text = block.text.strip()
    style = block.style.name if block.style is not None else ""
    if text and style.startswith("List Bullet"):
        return "- " + text
    return text


def _docx_row_text(row) -> str:
    cells = []
    seen = set()
    for cell in row.cells:
        if id(cell._tc) in seen:  # a merged cell is repeated once per grid column
            continue
        seen.add(id(cell._tc))
        cells.append(" ".join(cell.text.split()))
    return " | ".join(cells) if any(cells) else ""


def _docx_title(document) -> str | None:
    title = (document.core_properties.title or "").strip()
    if title:
        return title
    for paragraph in document.paragraphs:
        style = paragraph.style.name if paragraph.style is not None else ""
        if style in ("Title", "Heading 1") and paragraph.text.strip():
            return paragraph.text.strip()
    return None


# ---------------------------------------------------------------------------
# Customer notes: CSV and JSONL
# ---------------------------------------------------------------------------

REQUIRED_NOTE_FIELDS = ("id", "complaint")
_TEXT_NOTE_FIELDS = (
    "customer_name",
    "customer_email",
    "customer_phone",
    "channel",
    "product",
    "complaint",
    "resolution",
    "status",
)
_TITLE_COMPLAINT_CHARS = 60


def read_notes_rows(
    rows: Iterable[dict],
    path: str,
    location_label: str = "row",
    *,
    first_number: int = 1,
    metadata: dict | None = None,
) -> ReadResult:
    """Customer notes from dicts keyed by `NOTE_FIELDS` (keys matched case-insensitively).

    Shared by the CSV and JSONL readers and by imports that map their own columns.
    Rows are numbered from `first_number` in problem locations ("row 3") and in each
    note's metadata; `metadata` (format, encoding) is added to every note. A bad row
    becomes one `ReadProblem` per fault and is skipped; every other row still goes in.
    """
    numbered = enumerate(rows, start=first_number)
    return _notes_from_numbered_rows(numbered, path, location_label, metadata or {}, [])


def _notes_from_numbered_rows(
    numbered: Iterable[tuple[int, dict]], path: str, label: str, metadata: dict, problems: list[ReadProblem]
) -> ReadResult:
    """Build notes from (number, row) pairs, appending to `problems` as it goes.

    `problems` may already hold (and keep receiving, from the iterator) problems the
    caller found while producing rows, so every problem stays in file order.
    """
    result = ReadResult(problems=problems)
    first_seen: dict[str, int] = {}
    for number, row in numbered:
        where = f"{label} {number}"
        row = {_column_name(key): value for key, value in row.items() if key is not None}
        faults: list[str] = []
        fields = _note_text_fields(row, faults)
        note_date = _note_date(row.get("date"), faults)
        tags = _note_tags(row.get("tags"), faults)
        note_id = fields["id"]
        if note_id == "":
            faults.append("field 'id' is empty: every note needs an id")
        if fields["complaint"] == "":
            faults.append("field 'complaint' is empty: nothing to index")
        if note_id and note_id in first_seen:
            faults.append(f"duplicate id {note_id} (first seen on {label} {first_seen[note_id]})")
        if faults:
            result.problems.extend(ReadProblem(path, fault, where) for fault in faults)
            continue
        first_seen[note_id] = number
        extra = {
            key: value
            for key, value in row.items()
            if key not in NOTE_FIELDS and key and value not in (None, "")
        }
        result.documents.append(
            _note_document(path, fields, note_date, tags, {**extra, **metadata, "row": number})
        )
    return result


def _column_name(name: object) -> str:
    """' Customer Name\ufeff' -> 'customer_name': header cells as people type them."""
    return re.sub(r"[\s\-]+", "_", str(name).replace("\ufeff", "").strip().lower())


def _note_text_fields(row: dict, faults: list[str]) -> dict[str, str | None]:
    """Each text field trimmed ('' when absent); None, plus a fault, when it is a list, object or boolean."""
    fields: dict[str, str | None] = {}
    for name in ("id", *_TEXT_NOTE_FIELDS):
        value = row.get(name)
        if value is None:
            fields[name] = ""
        elif isinstance(value, str):
            fields[name] = value.strip()
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            fields[name] = str(value)  # JSON ids are often numbers
        else:
            fields[name] = None
            faults.append(f"field '{name}': expected text, got {_json_type(value)}")
    return fields


def _json_type(value: object) -> str:
    names = {
        bool: "true/false",
        list: "a list",
        dict: "an object",
        str: "a string",
        int: "a number",
        float: "a number",
        type(None): "null",
    }
    return names.get(type(value), type(value).__name__)


def _note_date(value: object, faults: list[str]) -> dt.date | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    text = str(value).strip()
    try:
        return _parse_note_date(text)
    except ValueError:
        faults.append(f"field 'date': cannot read {text!r} as a date (expected YYYY-MM-DD)")
        return None


def _parse_note_date(text: str) -> dt.date:
    """YYYY-MM-DD, YYYY/MM/DD or an ISO datetime ('2024-03-05T14:30:00Z'); ValueError otherwise.

    Day-first and month-first forms (05/03/2024) are refused rather than guessed:
    both are common in our markets and a wrong guess silently misdates a case.
    """
    for pattern in ("%Y-%m-%d", "%Y/%m/%d"):
        try:
            return dt.datetime.strptime(text, pattern).date()
        except ValueError:
            pass
    if not re.match(r"\d{4}-\d{2}-\d{2}", text):
        raise ValueError(text)
    return dt.datetime.fromisoformat(text).date()


def _note_tags(value: object, faults: list[str]) -> list[str]:
    if value is None or isinstance(value, (str, list)):
        return _normalise_tags(value)
    faults.append(f"field 'tags': expected text or a list, got {_json_type(value)}")
    return []


def _normalise_tags(value: object) -> list[str]:
    """Tags from a list or a "a; b, c | d" string: lower-case, trimmed, unique, in order."""
    if value is None:
        return []
    items = value if isinstance(value, (list, tuple)) else re.split(r"[;,|]", str(value))
    tags: list[str] = []
    for item in items:
        if item is None or isinstance(item, (list, dict)):
            continue
        tag = str(item).strip().lower()
        if tag and tag not in tags:
            tags.append(tag)
    return tags


def _note_document(
    path: str, fields: dict[str, str], note_date: dt.date | None, tags: list[str], metadata: dict
) -> DocumentInput:
    """A note's document: complaint and resolution only; personal data stays in `NoteFields`."""
    note = NoteFields(
        note_id=fields["id"],
        complaint=fields["complaint"],
        resolution=fields["resolution"],
        date=note_date,
        customer_name=fields["customer_name"],
        customer_email=fields["customer_email"],
        customer_phone=fields["customer_phone"],
        channel=fields["channel"],
        product=fields["product"],
        status=fields["status"],
    )
    text = note.complaint + (f"\n\n{note.resolution}" if note.resolution else "")
    return DocumentInput(
        source=f"{path}#{note.note_id}",
        source_file=path,
        title=_note_title(note),
        text=text,
        kind=NOTE,
        tags=tags,
        metadata=metadata,
        visibility="internal",
        note=note,
    )


def _note_title(note: NoteFields) -> str:
    """Id, product and the complaint's first line, e.g. "N-1 · Printer X: Paper jams after the…"."""
    first_line = next((line.strip() for line in note.complaint.splitlines() if line.strip()), "")
    if len(first_line) > _TITLE_COMPLAINT_CHARS:
        first_line = first_line[: _TITLE_COMPLAINT_CHARS - 1].rstrip() + "…"
    head = f"{note.note_id} · {note.product}" if note.product else note.note_id
    return f"{head}: {first_line}"


def _read_csv(path: Path, data: bytes) -> ReadResult:
    """Notes from a CSV file, numbered like a spreadsheet: the header is row 1, data starts at row 2.

    That is the number users see when they open the file in Excel or LibreOffice to
    fix it (a cell holding line breaks still counts as one row).
    """
    where = _where(path)
    text, encoding = decode_bytes(data, path)
    _empty_text_error(where, text)
    # strict: a quote left open would otherwise swallow every later row into one cell, silently.
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_sniff_delimiter(text), strict=True)
    try:
        header = [_column_name(name) for name in next(reader)]
    except csv.Error as exc:
        raise ReadError(f"{where}: row 1 (the header) is not valid CSV ({_csv_error_reason(exc)})") from exc
    _check_header(header, where)
    problems: list[ReadProblem] = []
    rows = _csv_rows(reader, header, where, problems)
    return _notes_from_numbered_rows(rows, where, "row", {"format": "csv", "encoding": encoding}, problems)


def _sniff_delimiter(text: str) -> str:
    """The most frequent of , ; and tab in the header line (quoted parts ignored)."""
    header = next((line for line in text.splitlines() if line.strip()), "")
    unquoted = re.sub(r'"[^"]*"', "", header)
    return max((",", ";", "\t"), key=unquoted.count)


def _check_header(header: list[str], where: str) -> None:
    duplicates = sorted({name for name in header if name and header.count(name) > 1})
    if duplicates:
        raise ReadError(f"{where}: column(s) appear twice in the header: {', '.join(duplicates)}")
    missing = [name for name in REQUIRED_NOTE_FIELDS if name not in header]
    if missing:
        raise ReadError(
            f"{where}: missing required column(s): {', '.join(missing)} "
            f"(expected columns: {', '.join(NOTE_FIELDS)})"
        )


def _csv_rows(
    reader, header: list[str], where: str, problems: list[ReadProblem]
) -> Iterator[tuple[int, dict]]:
    """(spreadsheet row number, {column: value}) for each data row; blank rows are skipped.

    A row with more cells than the header almost always holds an unquoted comma that
    shifted every later field, so it is reported, not guessed at.
    """
    number = 1
    try:
        for number, cells in enumerate(reader, start=2):
            if not any(cell.strip() for cell in cells):
                continue
            if len(cells) > len(header) and any(cell.strip() for cell in cells[len(header) :]):
                problems.append(
                    ReadProblem(
                        where,
                        f"the row has {len(cells)} cells but the header has "
                        f"{len(header)} columns (put values containing the delimiter "
                        "in double quotes)",
                        f"row {number}",
                    )
                )
                continue
            yield number, {name: cell for name, cell in zip(header, cells, strict=False) if name}
    except csv.Error as exc:  # raised while reading the row after `number`
        raise ReadError(
            f"{where}: row {number + 1} is not valid CSV ({_csv_error_reason(exc)}); "
            "nothing from this file was imported"
        ) from exc


def _csv_error_reason(exc: csv.Error) -> str:
    if "unexpected end of data" in str(exc):
        return 'a double quote (") opened in this row is never closed'
    return f"{exc}; check the double quotes in this row"


def _read_jsonl(path: Path, data: bytes) -> ReadResult:
    """Notes from JSON Lines: one object per line, located by line number (1-based)."""
    where = _where(path)
    text, encoding = decode_bytes(data, path)
    _empty_text_error(where, text)
    problems: list[ReadProblem] = []
    rows = _jsonl_objects(text, where, problems)
    return _notes_from_numbered_rows(rows, where, "line", {"format": "jsonl", "encoding": encoding}, problems)


def _jsonl_objects(text: str, where: str, problems: list[ReadProblem]) -> Iterator[tuple[int, dict]]:
    # Split on "\n" only: JSON strings may hold U+2028, which str.splitlines() would cut.
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.strip()
        if not line:
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(
                ReadProblem(where, f"not valid JSON ({exc.msg} at column {exc.colno})", f"line {number}")
            )
            continue
        if not isinstance(value, dict):
            problems.append(
                ReadProblem(
                    where, f"expected a JSON object {{...}}, got {_json_type(value)}", f"line {number}"
                )
            )
            continue
        yield number, value


_READERS: dict[str, Callable[[Path, bytes], ReadResult]] = {
    ".txt": _read_txt,
    ".md": _read_markdown,
    ".markdown": _read_markdown,
    ".html": _read_html,
    ".htm": _read_html,
    ".pdf": _read_pdf,
    ".docx": _read_docx,
    ".csv": _read_csv,
    ".jsonl": _read_jsonl,
}
