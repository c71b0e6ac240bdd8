"""Documents and passages rendered with their structure, escaped, with well-nested marks."""

from __future__ import annotations

from html.parser import HTMLParser

from kb.text.structure import extract_headings, heading_line
from webapp.rendering import Mark, structured_html

RAW = (heading_line(1, "Refunds") + "\nPay back within 14 days.\n\n" + heading_line(2, "Steps")
       + "\n1. Check <b>receipt</b>\n2. Call\n  - Confirm amount\n\n| Plan | Days |\n| Gold | 60 |\n\n客户（会员）问：多久？")


class _Nesting(HTMLParser):
    """Fails on any end tag that does not close the element opened last."""

    VOID = {"br"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        assert self.stack and self.stack.pop() == tag, (tag, self.stack)


def _check(html: str) -> _Nesting:
    parser = _Nesting()
    parser.feed(html)
    assert parser.stack == []
    return parser


def test_headings_lists_and_tables_render_as_html_and_document_text_is_escaped():
    text, headings = extract_headings(RAW)
    html = str(structured_html(text, headings))
    assert '<h2 class="doc-heading">Refunds</h2>' in html and '<h3 class="doc-heading">Steps</h3>' in html
    assert "<ol><li>Check &lt;b&gt;receipt&lt;/b&gt;</li><li>Call<ul><li>Confirm amount</li></ul></li></ol>" in html
    assert "<tr><td>Plan</td><td>Days</td></tr><tr><td>Gold</td><td>60</td></tr>" in html
    assert "客户（会员）问：多久？" in html
    assert "<b>" not in html
    _check(html)


def test_a_passage_across_blocks_is_marked_in_each_with_one_anchor_and_exact_word_marks():
    text, headings = extract_headings(RAW)
    start, end = text.index("14 days"), text.index("Confirm amount") + len("Confirm amount")
    word = text.index("Call")
    html = str(structured_html(text, headings, [Mark(start, end, passage=True), Mark(word, word + 4)]))
    assert html.count('id="passage"') == 1
    assert html.count('<mark class="passage"') >= 4  # paragraph, heading, list items: each its own piece
    assert '<mark class="passage"><mark>Call</mark></mark>' in html
    _check(html)
