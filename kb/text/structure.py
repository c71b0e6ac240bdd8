"""The structure of a document kept through ingest: headings, lists and tables.

Readers keep lists and tables in the text as light markup that reads well as
plain text too ("- item", "1. item", "| a | b |"), and mark a heading line with
one private-use character naming its level (`heading_line`). Before chunking,
`extract_headings` takes those marks out and returns where the headings are,
so every chunk can know its heading path (document > section > subsection)
and the document page can render the headings; `parse_blocks` reads the
markup back into paragraphs, lists and tables with spans into the text, for
pages and handouts to render (always escaping the text itself: nothing from a
document is ever taken as HTML).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from kb.documents import NOTE
from kb.text.cleaning import STRUCTURE_MARKS

MAX_HEADING_LEVEL = 6
# The heading line given to the model with each guidance chunk stays this short (characters), and
# chunks leave this many of the model's tokens for it (160 Han characters are at most about 96 tokens).
MAX_CONTEXT_CHARS = 160
CONTEXT_TOKENS = 96
CONTEXT_SEPARATOR = " > "

_LIST_LINE = re.compile(r"( *)([-*•]|(\d{1,3})[.)])[ \t]+(?=\S)")
_TABLE_LINE = re.compile(r"\|.*\|[ \t]*$")


def heading_line(level: int, text: str) -> str:
    """A heading as readers hand it over: its level's mark, then its text on one line."""
    level = min(max(level, 1), MAX_HEADING_LEVEL)
    return STRUCTURE_MARKS[level - 1] + " ".join(text.split())


def table_row(cells: list[str]) -> str:
    """A table row as light markup: "| a | b |" (cells on one line each)."""
    return "| " + " | ".join(" ".join(cell.split()) for cell in cells) + " |"


@dataclass(frozen=True)
class Heading:
    start: int  # the heading's text is text[start:end]
    end: int
    level: int


def extract_headings(text: str) -> tuple[str, list[Heading]]:
    """The text without heading marks, and its headings in order.

    A mark counts only at the start of a line; marks anywhere else (a stray
    private-use character) are dropped too, so none reaches the stored text.
    """
    if not any(mark in text for mark in STRUCTURE_MARKS):
        return text, []
    out: list[str] = []
    headings: list[Heading] = []
    position = 0
    for line in text.split("\n"):
        level = 0
        if line and line[0] in STRUCTURE_MARKS:
            level = STRUCTURE_MARKS.index(line[0]) + 1
        clean = "".join(ch for ch in line if ch not in STRUCTURE_MARKS)
        if level and clean.strip():
            lead = len(clean) - len(clean.lstrip())
            headings.append(Heading(position + lead, position + len(clean.rstrip()), level))
        out.append(clean)
        position += len(clean) + 1
    return "\n".join(out), headings


def _same(a: str, b: str) -> bool:
    return " ".join(a.split()).casefold() == " ".join(b.split()).casefold()


def heading_paths(text: str, headings: list[Heading], spans: list[tuple[int, int]], title: str = "") -> list[list[str]]:
    """For each chunk span (in order), the headings its first words sit under, outermost first.

    A chunk that opens with headings is under them (its first words are what
    follows them). A first-level heading that repeats the document's title is
    left out: the title leads every path anyway.
    """
    at = {h.start: h for h in headings}
    paths: list[list[str]] = []
    stack: list[Heading] = []
    i = 0
    for start, end in spans:
        position = start
        while position in at and at[position].end < end:
            position = at[position].end
            while position < end and text[position].isspace():
                position += 1
        while i < len(headings) and headings[i].start <= position:
            heading = headings[i]
            while stack and stack[-1].level >= heading.level:
                stack.pop()
            stack.append(heading)
            i += 1
        names = [text[h.start : h.end] for h in stack]
        if names and title and _same(names[0], title):
            names = names[1:]
        paths.append(names)
    return paths


def context_line(path: list[str]) -> str:
    """The heading path as one short line ("Title > Section > Subsection") for the model."""
    line = CONTEXT_SEPARATOR.join(" ".join(part.split()) for part in path if part.strip())
    if len(line) > MAX_CONTEXT_CHARS:
        line = "…" + line[-(MAX_CONTEXT_CHARS - 1) :]
    return line


def embed_text(kind: str, title: str, headings: list[str] | None, text: str) -> str:
    """A chunk as the model is given it: "Title > Section > Subsection" on its first line, then its text,
    so that a passage under "Refunds" is about refunds even when its sentences never say so.

    Only chunks under a section heading get the line. The title alone says nothing the document's
    own first lines do not, and it makes every chunk of a document look alike: on XQuAD (paragraphs
    of one article share its title) it cost 1-2 points of dense top-1 recall. Notes never get it.
    """
    if kind == NOTE or not headings:
        return text
    return context_line([title, *headings]) + "\n" + text


# ------------------------------------------------------------------ reading the markup back


@dataclass
class ListItem:
    depth: int
    ordered: bool
    number: int | None  # as written ("3." -> 3); None for bullets
    lines: list[tuple[int, int]]  # spans of its text (a continuation line adds one)


@dataclass
class Block:
    """A paragraph (lines), a heading (one line, `level`), a list (items) or a table (rows of cell spans)."""

    kind: str
    lines: list[tuple[int, int]] = field(default_factory=list)
    level: int = 0
    items: list[ListItem] = field(default_factory=list)
    rows: list[list[tuple[int, int]]] = field(default_factory=list)

    @property
    def start(self) -> int:
        spans = self.lines or [s for item in self.items for s in item.lines] or [c for r in self.rows for c in r]
        return spans[0][0] if spans else 0


def _cells(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Cell spans of a "| a | b |" line (every inner "|" divides cells, as in Markdown)."""
    inner_start = text.index("|", start, end) + 1
    inner_end = text.rindex("|", start, end)
    cells, a = [], inner_start
    for b in [*(i for i in range(inner_start, inner_end) if text[i] == "|"), inner_end]:
        left, right = a, b
        while left < right and text[left].isspace():
            left += 1
        while right > left and text[right - 1].isspace():
            right -= 1
        cells.append((left, right))
        a = b + 1
    return cells


def parse_blocks(text: str, headings: list[Heading] | None = None, offset: int = 0) -> list[Block]:
    """Paragraphs, headings, lists and tables of `text`, each part a span of `text`.

    `headings` (with spans in a larger text that `text` starts at `offset` of)
    say which lines are headings; other lines are read from their markup.
    A blank line ends a paragraph; a list or a table ends at the first line
    that is not one of its own.
    """
    heading_at = {h.start - offset: h.level for h in headings or []}
    blocks: list[Block] = []
    current: Block | None = None
    position = 0
    for line in text.split("\n"):
        start, end = position, position + len(line)
        position = end + 1
        stripped_start = start + len(line) - len(line.lstrip())
        stripped_end = start + len(line.rstrip())
        if stripped_start >= stripped_end:
            current = None
            continue
        if stripped_start in heading_at:
            blocks.append(Block("heading", [(stripped_start, stripped_end)], level=heading_at[stripped_start]))
            current = None
            continue
        marker = _LIST_LINE.match(line)
        if marker:
            if current is None or current.kind != "list":
                current = Block("list")
                blocks.append(current)
            number = marker.group(3)
            depth = len(marker.group(1)) // 2
            current.items.append(ListItem(depth, number is not None, int(number) if number else None,
                                          [(start + marker.end(), stripped_end)]))
            continue
        if _TABLE_LINE.match(line, len(line) - len(line.lstrip())):
            if current is None or current.kind != "table":
                current = Block("table")
                blocks.append(current)
            current.rows.append(_cells(text, stripped_start, stripped_end))
            continue
        if current is not None and current.kind == "list" and line[:1].isspace():
            current.items[-1].lines.append((stripped_start, stripped_end))  # the item goes on
            continue
        if current is None or current.kind != "paragraph":
            current = Block("paragraph")
            blocks.append(current)
        current.lines.append((stripped_start, stripped_end))
    return blocks
