"""Documents and passages as HTML: headings, paragraphs, lists and tables, with marks, always escaped.

The text comes from `kb.text.structure.parse_blocks`, which only says where the
parts are; every piece of text goes through `escape`, so nothing a document
holds is ever taken as HTML. Marks (the passage that matched, the words that
matched) are split at block edges so the result is always well nested.
"""

from __future__ import annotations

from dataclasses import dataclass

from markupsafe import Markup, escape

from kb.text.structure import Block, Heading, ListItem, parse_blocks


@dataclass(frozen=True)
class Mark:
    start: int
    end: int
    passage: bool = False  # the passage (outer mark) rather than a matched word (inner mark)


class _Marker:
    """Writes one inline stretch of text with its marks; remembers whether the passage was opened before."""

    def __init__(self, text: str, marks: list[Mark], passage_label: str) -> None:
        self.text = text
        self.passages = sorted((m.start, m.end) for m in marks if m.passage and m.end > m.start)
        self.hits = sorted((m.start, m.end) for m in marks if not m.passage and m.end > m.start)
        self.passage_label = passage_label
        self.opened = False

    def _open_passage(self) -> str:
        if self.opened:
            return '<mark class="passage">'
        self.opened = True
        return f'<mark class="passage" id="passage" tabindex="-1" aria-label="{escape(self.passage_label)}">'

    def inline(self, start: int, end: int) -> Markup:
        cuts = {start, end}
        for a, b in self.passages + self.hits:
            cuts.update(x for x in (a, b) if start < x < end)
        points = sorted(cuts)
        out: list[str] = []
        in_passage = in_hit = False
        for a, b in zip(points, points[1:], strict=False):
            want_passage = any(p <= a and b <= q for p, q in self.passages)
            want_hit = any(p <= a and b <= q for p, q in self.hits)
            if in_hit and (not want_hit or want_passage != in_passage):
                out.append("</mark>")
                in_hit = False
            if in_passage and not want_passage:
                out.append("</mark>")
                in_passage = False
            if want_passage and not in_passage:
                out.append(self._open_passage())
                in_passage = True
            if want_hit and not in_hit:
                out.append("<mark>")
                in_hit = True
            out.append(str(escape(self.text[a:b])))
        out += ["</mark>"] * (int(in_hit) + int(in_passage))
        return Markup("".join(out))


def structured_html(text: str, headings: list[Heading] | None = None, marks: list[Mark] | None = None,
                    heading_base: int = 2, passage_label: str = "", title: str = "") -> Markup:
    """`text` as HTML blocks; a heading of level 1 becomes <h{heading_base}>, and so on down to <h6>.

    A first heading that only repeats `title` (the page already shows it) is left out.
    """
    marker = _Marker(text, marks or [], passage_label)
    out: list[str] = []
    for number, block in enumerate(parse_blocks(text, headings)):
        if number == 0 and block.kind == "heading" and title and _same(text[slice(*block.lines[0])], title):
            continue
        if block.kind == "heading":
            tag = f"h{min(6, heading_base + block.level - 1)}"
            out.append(f'<{tag} class="doc-heading">{marker.inline(*block.lines[0])}</{tag}>')
        elif block.kind == "paragraph":
            out.append("<p>" + "<br>".join(marker.inline(a, b) for a, b in block.lines) + "</p>")
        elif block.kind == "list":
            out.append(_list_html(block.items, marker))
        else:
            out.append(_table_html(block, marker))
    return Markup("".join(out))


def _same(a: str, b: str) -> bool:
    return " ".join(a.split()).casefold() == " ".join(b.split()).casefold()


def _list_open(item: ListItem) -> str:
    if not item.ordered:
        return "<ul>"
    return "<ol>" if item.number in (None, 1) else f'<ol start="{int(item.number)}">'


def _list_html(items: list[ListItem], marker: _Marker) -> str:
    """Nested <ul>/<ol> from items with depths; a deeper item opens a list inside the item before it."""
    out: list[str] = []
    stack: list[tuple[int, str]] = []  # (depth, "ul" or "ol") of the open lists, each with an open <li>
    for item in items:
        tag = "ol" if item.ordered else "ul"
        while stack and (stack[-1][0] > item.depth or (stack[-1][0] == item.depth and stack[-1][1] != tag)):
            out.append(f"</li></{stack.pop()[1]}>")
        if stack and stack[-1][0] == item.depth:
            out.append("</li>")
        else:
            out.append(_list_open(item))
            stack.append((item.depth, tag))
        out.append("<li>" + "<br>".join(marker.inline(a, b) for a, b in item.lines))
    while stack:
        out.append(f"</li></{stack.pop()[1]}>")
    return "".join(out)


def _table_html(block: Block, marker: _Marker) -> str:
    width = max(len(row) for row in block.rows)
    rows = []
    for row in block.rows:
        cells = "".join(f"<td>{marker.inline(a, b)}</td>" for a, b in row)
        rows.append(f"<tr>{cells}{'<td></td>' * (width - len(row))}</tr>")
    return f'<div class="table-wrap"><table><tbody>{"".join(rows)}</tbody></table></div>'
