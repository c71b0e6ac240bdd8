"""Read Markdown files: YAML front matter as document fields, the body rendered to plain text."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import frontmatter
import yaml
from bs4 import BeautifulSoup
from markdown_it import MarkdownIt

from indexer.readers.common import (
    _empty_text_error,
    _normalise_tags,
    _title_from_stem,
    _unify_newlines,
    _where,
)
from indexer.readers.encodings import decode_bytes
from kb.documents import (
    GUIDANCE,
    KINDS,
    DocumentInput,
    ReadError,
    ReadResult,
)
from kb.text.structure import heading_line, table_row

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
    Headings become their own paragraphs marked with their level (see
    `kb.text.structure.heading_line`), list items become "- " (or "1. ") lines
    indented by nesting, table rows become "| a | b |" lines, code is kept as
    text, links and images keep only their visible text, raw HTML keeps its text.
    Blocks are separated by a blank line; lines of a list or table by one newline.
    """
    blocks: list[str] = []
    group: list[str] = []  # lines of the list or table being read
    lists: list[int | None] = []  # open lists, innermost last: next number, None for bullets
    row: list[str] | None = None
    item_prefix: str | None = None
    heading_level = 0

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
        elif kind == "heading_open" and not lists:
            heading_level = int(token.tag[1:])
        elif kind == "heading_close":
            heading_level = 0
        elif kind == "tr_close":
            group.append(("  " * len(lists) if lists else "") + table_row(row or []))
            row = None
        elif kind == "table_close" and not lists:  # a table inside a list stays in the list's lines
            blocks.append("\n".join(group))
            group = []
        elif kind == "inline":
            text = _inline_text(token)
            if row is not None:
                row.append(text.replace("\n", " "))
            elif heading_level and text.strip():
                blocks.append(heading_line(heading_level, text))
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
