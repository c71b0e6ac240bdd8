"""Read HTML pages: the charset they declare, main content without navigation or banners, a title."""

from __future__ import annotations

import codecs
import re
from pathlib import Path

import trafilatura
from bs4 import BeautifulSoup
from lxml import etree

from indexer.readers.common import _empty_text_error, _title_from_stem, _where
from indexer.readers.encodings import _BOMS, decode_bytes
from kb.documents import DocumentInput, ReadError, ReadResult
from kb.text.structure import heading_line, table_row

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
_HEADING_LEVEL = re.compile(r"h([1-6])")
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
    """One block of trafilatura's XML (head, p, list, table, quote, code) as text with light markup:
    headings marked with their level, "- " and "1. " list lines, "| a | b |" table rows."""
    if element.tag == "list":
        lines = []
        number = 1 if element.get("rend") == "ol" else None
        for item in element.iter("item"):
            if item.getparent() is element:
                nested = [_xml_block_text(sub, depth + 1) for sub in item if sub.tag == "list"]
                marker = "- " if number is None else f"{number}. "
                lines.append("  " * depth + marker + " ".join(_xml_inline_text(item, skip="list").split()))
                lines.extend(nested)
                number = number + 1 if number is not None else None
        return "\n".join(lines)
    if element.tag == "table":
        rows = [[_xml_inline_text(cell) for cell in row.iter("cell")] for row in element.iter("row")]
        return "\n".join(table_row(cells) for cells in rows if any(cell.strip() for cell in cells))
    if element.tag == "head":
        level = _HEADING_LEVEL.fullmatch(element.get("rend") or "")
        text = _xml_inline_text(element)
        return heading_line(int(level.group(1)) if level else 2, text) if text.strip() else ""
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
    # Rows and items are marked: \x02 opens a table or a list (after a blank line), \x01 goes on with it.
    rows = body.find_all("tr")
    firsts = {id(table.find("tr")) for table in body.find_all("table")}
    for row in rows:
        cells = [" ".join(cell.get_text(" ").split()) for cell in row.find_all(["td", "th"])]
        marker = "\x02" if id(row) in firsts else "\x01"
        row.replace_with(marker + table_row(cells) if any(cells) else "")
    for heading in body.find_all(["h1", "h2", "h3", "h4", "h5", "h6"]):
        text = " ".join(heading.get_text(" ").split())
        heading.replace_with(f"\n\n{heading_line(int(heading.name[1]), text)}\n\n" if text else "")
    for item in body.find_all("li"):
        parent = item.find_parent(["ol", "ul"])
        depth = len(item.find_parents(["ol", "ul"])) - 1
        if parent is not None and parent.name == "ol":
            marker = f"{1 + len(item.find_previous_siblings('li'))}. "
        else:
            marker = "- "
        first = depth == 0 and item.find_previous_sibling("li") is None
        item.insert(0, ("\x02" if first else "\x01") + "  " * depth + marker)
    for block in body.find_all(_BLOCK_TAGS):
        block.insert_before("\n\n")
        block.insert_after("\n\n")
    text = body.get_text()
    # List items stay together, one per line; their indent survives the space tidying below.
    text = re.sub(r"\s*\x02", "\n\n\x01", re.sub(r"\s*\x01", "\n\x01", text))
    paragraphs = re.split(r"\n\s*\n", text)
    cleaned = (
        "\n".join(_tidy_line(line) for line in p.splitlines() if line.strip()).strip() for p in paragraphs
    )
    return "\n\n".join(p for p in cleaned if p)


def _tidy_line(line: str) -> str:
    if line.startswith("\x01"):
        body = line[1:]
        indent = len(body) - len(body.lstrip(" "))
        return " " * indent + re.sub(r"[ \t]+", " ", body.strip())
    return re.sub(r"[ \t]+", " ", line.strip())


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
