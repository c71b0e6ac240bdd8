"""Handouts keep what the authors wrote: lists with their numbers and nesting, tables, full-width punctuation."""

from __future__ import annotations

import io

import docx
from markdown_it import MarkdownIt

from kb.services.collections import CollectionView, ItemView
from kb.services.handouts import build_handout, to_docx, to_markdown

STEPS = "Before you refund:\n1. Check the receipt.\n2. Call the customer.\n  - Confirm the amount.\n\n| Plan | Days |\n| Gold | 60 |"
ZH = "客户（会员）问：退款多久到账？\n3. 在１４个工作日内退回原卡。\n4. 请耐心等待。"


def _handout():
    view = CollectionView(1, "Refunds", "", "en", "", None, None, None, 2, [
        ItemView(1, 0, 1, 1, 0, len(STEPS), "en", STEPS, "Refund steps", "/en.md", "", None),
        ItemView(2, 1, 2, 2, 0, len(ZH), "zh", ZH, "退款", "/zh.md", "", None),
    ])
    return build_handout(view)


def test_markdown_handout_renders_lists_tables_and_keeps_full_width_text():
    markdown = to_markdown(_handout())
    html = MarkdownIt("commonmark").enable("table").render(markdown)
    assert "<ol>\n<li>Check the receipt.</li>" in html
    assert "<ul>\n<li>Confirm the amount.</li>" in html  # nested under "Call the customer."
    assert "<th>Plan</th>" in html and "<td>Gold</td>" in html
    assert '<ol start="3">' in html  # numbers as the author wrote them
    assert "客户（会员）问：退款多久到账？" in markdown and "１４" in markdown


def test_docx_handout_keeps_numbers_nesting_tables_and_characters():
    document = docx.Document(io.BytesIO(to_docx(_handout())))
    paragraphs = [p for p in document.paragraphs if p.style.name == "List Paragraph"]
    texts = [p.text for p in paragraphs]
    assert texts == ["1.\tCheck the receipt.", "2.\tCall the customer.", "•\tConfirm the amount.",
                     "3.\t在１４个工作日内退回原卡。", "4.\t请耐心等待。"]
    indents = [p.paragraph_format.left_indent for p in paragraphs]
    assert indents[2] > indents[1]  # the nested item sits deeper
    table = document.tables[0]
    assert [[c.text for c in row.cells] for row in table.rows] == [["Plan", "Days"], ["Gold", "60"]]
    quotes = [p.text for p in document.paragraphs if p.style.name == "Quote"]
    assert "客户（会员）问：退款多久到账？" in quotes
