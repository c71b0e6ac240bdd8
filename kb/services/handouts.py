"""Workshop handouts from a collection: Markdown and Word (.docx), each passage cited, sources listed.

`build_handout` turns a collection into numbered entries and a numbered list
of sources (one per document, however many of its passages are used); the
renderers only lay that out. The portal renders the same `Handout` as
printable HTML (webapp/templates/handout.html). Labels ("Sources", "Note")
come from the caller, in the workshop's language.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from kb.documents import short_source
from kb.services.collections import CollectionView, ItemView
from kb.text.structure import Block, parse_blocks

# The language tags a handout's passages are marked with (Word needs a region).
WORD_LANGUAGE = {"th": "th-TH", "zh": "zh-CN", "en": "en-GB"}


@dataclass
class HandoutLabels:
    note: str = "Note"
    source: str = "Source"
    sources: str = "Sources"
    document_gone: str = "no longer in the knowledge base"


@dataclass
class HandoutSource:
    number: int
    title: str
    source: str  # the file it came from, as readers are shown it (no server path; "" for pasted text)
    lang: str  # the language of its first passage used
    url: str | None  # the document in the portal; None once it was deleted


@dataclass
class HandoutEntry:
    number: int
    title: str
    text: str
    lang: str
    annotation: str
    source: HandoutSource
    url: str | None  # the passage itself in the portal


@dataclass
class Handout:
    title: str
    description: str
    lang: str
    entries: list[HandoutEntry] = field(default_factory=list)
    sources: list[HandoutSource] = field(default_factory=list)


def build_handout(
    collection: CollectionView,
    document_url: Callable[[int], str] | None = None,
    passage_url: Callable[[ItemView], str] | None = None,
) -> Handout:
    """Entries in the collection's order; sources numbered by first use, one per document."""
    handout = Handout(collection.name, collection.description, collection.lang)
    by_key: dict[tuple, HandoutSource] = {}
    for number, item in enumerate(collection.items, 1):
        key = (item.doc_id, item.source) if item.doc_id is not None else (None, item.source, item.title)
        source = by_key.get(key)
        if source is None:
            url = document_url(item.doc_id) if document_url and item.doc_id is not None else None
            source = HandoutSource(len(by_key) + 1, item.title, short_source(item.source), item.lang, url)
            by_key[key] = source
            handout.sources.append(source)
        url = passage_url(item) if passage_url and item.doc_id is not None else None
        handout.entries.append(HandoutEntry(number, item.title, item.text, item.lang, item.annotation, source, url))
    return handout


# -- Markdown -----------------------------------------------------------------------

_INLINE_SPECIAL = re.compile(r"([\\`*_\[\]<>#|])")


def _inline(text: str) -> str:
    """Text safe on one Markdown line: punctuation that would format it is escaped."""
    return _INLINE_SPECIAL.sub(r"\\\1", " ".join(text.split()))


def _plain(text: str) -> str:
    """Text whose lines stay as they are, with `<` escaped so no HTML inside it is ever rendered."""
    return text.replace("\\", "\\\\").replace("<", "\\<")


_LINE_START_MARKUP = re.compile(r"^([#>+=])")


def _quoted(text: str) -> str:
    """A passage as a block quote: paragraphs with their lines, lists with their numbers and nesting, tables."""
    parts = [_block_markdown(text, block) for block in parse_blocks(text)] or [""]
    lines = "\n\n".join(parts).splitlines() or [""]
    return "\n".join(f"> {line}" if line.strip() else ">" for line in lines)


def _block_markdown(text: str, block: Block) -> str:
    if block.kind == "list":
        out = []
        for item in block.items:
            marker = f"{item.number}." if item.ordered and item.number is not None else "-"
            first, *rest = [_plain(text[a:b]) for a, b in item.lines]
            pad = " " * (4 * item.depth)
            out.append(f"{pad}{marker} {first}")
            out.extend(f"{pad}{' ' * (len(marker) + 1)}{line}" for line in rest)
        return "\n".join(out)
    if block.kind == "table":
        width = max(len(row) for row in block.rows)
        rows = [[_plain(text[a:b]).replace("|", "\\|") for a, b in row] + [""] * (width - len(row))
                for row in block.rows]
        lines = ["| " + " | ".join(row) + " |" for row in rows]
        lines.insert(1, "|" + " --- |" * width)  # Markdown needs a header row; the first row is it
        return "\n".join(lines)
    # A paragraph (or heading) line must not turn into markup of its own.
    return "\n".join(_LINE_START_MARKUP.sub(r"\\\1", _plain(text[a:b])) for a, b in block.lines)


def to_markdown(handout: Handout, labels: HandoutLabels | None = None) -> str:
    labels = labels or HandoutLabels()
    out = [f"# {_inline(handout.title)}", ""]
    if handout.description:
        out += [_plain(handout.description), ""]
    for entry in handout.entries:
        out += [f"## {entry.number}. {_inline(entry.title)}", "", _quoted(entry.text), ""]
        if entry.annotation:
            note = "  \n".join(_inline(line) for line in entry.annotation.splitlines())  # hard line breaks
            out += [f"**{_inline(labels.note)}:** {note}", ""]
        out += [f"*{_inline(labels.source)} [{entry.source.number}]*", ""]
    if handout.sources:
        out += [f"## {_inline(labels.sources)}", ""]
        for source in handout.sources:
            where = f"<{source.url}>" if source.url else f"({_inline(labels.document_gone)})"
            shown = f": `{source.source.replace('`', '')}`" if source.source else ""
            out.append(f"{source.number}. {_inline(source.title)}{shown} {where}")
        out.append("")
    return "\n".join(out)


# -- Word ---------------------------------------------------------------------------


def to_docx(handout: Handout, labels: HandoutLabels | None = None) -> bytes:
    """A Word document: title, description, each passage (marked with its language), note and source, sources."""
    import docx
    from docx.shared import Pt

    labels = labels or HandoutLabels()
    document = docx.Document()
    document.core_properties.title = handout.title
    if handout.lang:
        document.core_properties.language = WORD_LANGUAGE.get(handout.lang, handout.lang)
    _mark_language(document.add_heading(handout.title, level=0).runs, handout.lang)
    if handout.description:
        for paragraph in _paragraphs(handout.description):
            _add_lines(document.add_paragraph(), paragraph, handout.lang)
    for entry in handout.entries:
        _mark_language(document.add_heading(f"{entry.number}. {entry.title}", level=2).runs, entry.lang)
        _add_passage(document, entry.text, entry.lang)
        if entry.annotation:
            note = document.add_paragraph()
            note.add_run(f"{labels.note}: ").bold = True
            _add_lines(note, entry.annotation, handout.lang)
        citation = document.add_paragraph()
        run = citation.add_run(f"{labels.source} [{entry.source.number}]: ")
        run.italic = True
        _mark_language([citation.add_run(entry.source.title)], entry.lang)
        for run in citation.runs:
            run.font.size = Pt(9)
    if handout.sources:
        document.add_heading(labels.sources, level=1)
        for source in handout.sources:
            line = document.add_paragraph()
            line.add_run(f"[{source.number}] ")
            line.add_run(source.title)
            if source.source:
                line.add_run(f". {source.source}")
            line.add_run(f". {source.url}" if source.url else f" ({labels.document_gone})")
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def _add_passage(document, text: str, lang: str) -> None:
    """A passage as Word paragraphs (Quote style), lists (numbers as written, indented by level) and tables."""
    from docx.shared import Cm

    for block in parse_blocks(text):
        if block.kind == "list":
            for item in block.items:
                marker = f"{item.number}." if item.ordered and item.number is not None else "•"
                paragraph = document.add_paragraph(style="List Paragraph")
                paragraph.paragraph_format.left_indent = Cm(0.9 * (item.depth + 1))
                paragraph.paragraph_format.first_line_indent = Cm(-0.6)
                lines = "\n".join(text[a:b] for a, b in item.lines)
                _add_lines(paragraph, f"{marker}\t{lines}", lang)
        elif block.kind == "table":
            width = max(len(row) for row in block.rows)
            table = document.add_table(rows=len(block.rows), cols=width)
            table.style = "Table Grid"
            for cells, row in zip(table.rows, block.rows, strict=True):
                for cell, (a, b) in zip(cells.cells, row, strict=False):
                    cell.text = ""
                    _add_lines(cell.paragraphs[0], text[a:b], lang)
        else:
            _add_lines(document.add_paragraph(style="Quote"), "\n".join(text[a:b] for a, b in block.lines), lang)


def _paragraphs(text: str) -> list[str]:
    """Blank lines separate paragraphs; single line breaks stay inside one."""
    parts = [p.strip("\n") for p in re.split(r"\n\s*\n", text)]
    return [p for p in parts if p.strip()] or [text]


def _add_lines(paragraph, text: str, lang: str) -> None:
    lines = text.split("\n")
    for k, line in enumerate(lines):
        run = paragraph.add_run(line)
        if k < len(lines) - 1:
            run.add_break()
        _mark_language([run], lang)


def _mark_language(runs, lang: str) -> None:
    """Tell Word the runs' language (spelling, line breaking, fonts).

    Thai is a complex script (`w:bidi` names its language), Chinese an East Asian one (`w:eastAsia`).
    """
    tag = WORD_LANGUAGE.get(lang)
    if not tag:
        return
    from docx.oxml import OxmlElement
    from docx.oxml.ns import qn

    for run in runs:
        element = OxmlElement("w:lang")
        element.set(qn("w:val"), tag)
        if lang == "th":
            element.set(qn("w:bidi"), tag)
        elif lang == "zh":
            element.set(qn("w:eastAsia"), tag)
        run._element.get_or_add_rPr().append(element)
