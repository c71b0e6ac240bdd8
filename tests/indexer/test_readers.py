"""File readers: every fixture is built in tmp_path at test time (no binary files in the repo)."""

from __future__ import annotations

import datetime as dt
import io
import json
import zipfile
from pathlib import Path

import docx
import pytest
from bs4 import BeautifulSoup
from fpdf import FPDF
from fpdf.enums import EncryptionMethod

from indexer.readers import (
    SUPPORTED_SUFFIXES,
    decode_bytes,
    is_supported,
    read_file,
    read_notes_rows,
)
from indexer.readers.html import _main_text_with_soup, _remove_page_furniture
from kb.documents import GUIDANCE, NOTE, ReadError
from kb.text.structure import heading_line

THAI = (
    "นโยบายการคืนสินค้า\n"
    "ลูกค้าสามารถคืนสินค้าได้ภายใน 30 วันหลังจากได้รับสินค้า โปรดเก็บใบเสร็จไว้เป็นหลักฐาน\n"
    "หากสินค้าชำรุด ทีมบริการลูกค้าจะติดต่อกลับภายในสองวันทำการ\n"
)
SIMPLIFIED = (
    "退货政策\n"
    "客户可以在收到商品后三十天内退货。请保留收据作为凭证。\n"
    "如果商品有质量问题，客服团队会在两个工作日内联系您。\n"
)
TRADITIONAL = (
    "退貨政策\n"
    "客戶可以在收到商品後三十天內退貨。請保留收據作為憑證。\n"
    "如果商品有品質問題，客服團隊會在兩個工作天內聯絡您。\n"
)

NOTES_HEADER = (
    "id,date,customer_name,customer_email,customer_phone,channel,product,complaint,resolution,status,tags\n"
)


def write(tmp_path: Path, name: str, content: str | bytes, encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode(encoding))
    return path


def only_document(path: Path):
    result = read_file(path)
    assert result.problems == []
    assert len(result.documents) == 1
    return result.documents[0]


# --- encodings --------------------------------------------------------------------------


def test_tis620_thai_text_is_decoded(tmp_path):
    doc = only_document(write(tmp_path, "returns_th.txt", THAI, "tis-620"))
    assert doc.text == THAI
    assert doc.title == "นโยบายการคืนสินค้า"
    assert doc.metadata["encoding"] in {"cp874", "tis-620"}


def test_gb18030_simplified_chinese_text_is_decoded(tmp_path):
    doc = only_document(write(tmp_path, "returns_zh.txt", SIMPLIFIED, "gb18030"))
    assert doc.text == SIMPLIFIED
    assert doc.metadata["encoding"] == "gb18030"


def test_big5_traditional_chinese_text_is_decoded(tmp_path):
    doc = only_document(write(tmp_path, "returns_tw.txt", TRADITIONAL, "big5"))
    assert doc.text == TRADITIONAL
    assert doc.metadata["encoding"] in {"big5", "cp950"}


@pytest.mark.parametrize(
    ("text", "encoding"),
    [
        ("สวัสดีครับ ยินดีต้อนรับ", "tis-620"),
        ("您好，欢迎光临！", "gb18030"),
        ("價格：500元", "big5"),
        ("Größe und Übergröße für Kunden in München", "cp1252"),
        ("Le café est très bon — “vraiment”.", "cp1252"),
    ],
)
def test_short_legacy_texts_decode_to_the_right_script(text, encoding):
    decoded, _ = decode_bytes(text.encode(encoding))
    assert decoded == text


def test_utf8_byte_order_mark_is_stripped(tmp_path):
    doc = only_document(write(tmp_path, "bom.txt", b"\xef\xbb\xbf" + "คู่มือลูกค้า\nbody".encode()))
    assert doc.title == "คู่มือลูกค้า"
    assert doc.text == "คู่มือลูกค้า\nbody"
    assert doc.metadata["encoding"] == "utf-8-sig"


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-32"])
def test_utf16_and_utf32_with_byte_order_mark_are_decoded(tmp_path, encoding):
    content = "Mixed ภาษาไทย 中文 English\n"
    data = content.encode(encoding)
    if encoding == "utf-16-be":
        data = b"\xfe\xff" + data
    doc = only_document(write(tmp_path, "mixed.txt", data))
    assert doc.text == content


def test_utf16_without_byte_order_mark_is_decoded():
    text, encoding = decode_bytes("Refund within 30 days ภายใน 30 วัน\n".encode("utf-16-le"))
    assert text == "Refund within 30 days ภายใน 30 วัน\n"
    assert encoding == "utf-16-le"


def test_binary_data_in_a_txt_file_is_refused(tmp_path):
    path = write(
        tmp_path, "picture.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00\x08\x06\x00\x00\x00"
    )
    with pytest.raises(ReadError, match=r"not a text file \(binary data\)") as info:
        read_file(path)
    assert str(path.resolve()) in str(info.value)


# --- files in general ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["empty.txt", "empty.md", "empty.csv", "empty.pdf", "empty.docx", "blank.jsonl"]
)
@pytest.mark.parametrize("content", [b"", b"  \n\t\n"])
def test_empty_file_is_refused(tmp_path, name, content):
    path = write(tmp_path, name, content)
    with pytest.raises(ReadError, match="empty file") as info:
        read_file(path)
    assert str(info.value).startswith(str(path.resolve()))


def test_unsupported_suffix_is_refused_with_the_supported_list(tmp_path):
    path = write(tmp_path, "slides.xyz", "hello")
    with pytest.raises(
        ReadError, match=r"unsupported file type '\.xyz' \(supported: .*\.docx.*\.txt"
    ) as info:
        read_file(path)
    assert str(path.resolve()) in str(info.value)


def test_missing_file_is_refused_by_name(tmp_path):
    with pytest.raises(ReadError, match="gone.txt: file not found"):
        read_file(tmp_path / "gone.txt")


def test_supported_suffixes_are_recognised_in_any_case():
    assert SUPPORTED_SUFFIXES == {
        ".txt",
        ".md",
        ".markdown",
        ".html",
        ".htm",
        ".pdf",
        ".docx",
        ".csv",
        ".jsonl",
    }
    assert is_supported(Path("Guide.MD"))
    assert is_supported(Path("a/b/Report.Pdf"))
    assert not is_supported(Path("notes.xlsx"))
    assert not is_supported(Path("README"))


def test_guidance_source_is_the_absolute_path(tmp_path):
    path = write(tmp_path, "guide.txt", "Hello\n")
    doc = only_document(path)
    assert doc.source == doc.source_file == str(path.resolve())
    assert doc.kind == GUIDANCE
    assert doc.visibility == "internal"


# --- plain text ---------------------------------------------------------------------------


def test_txt_title_is_the_first_short_line_and_stays_in_the_text(tmp_path):
    doc = only_document(write(tmp_path, "x.txt", "\n\n  Warranty claims  \r\nSend the serial number.\r\n"))
    assert doc.title == "Warranty claims"
    assert doc.text == "\n\n  Warranty claims  \nSend the serial number.\n"


def test_txt_with_a_long_first_line_is_titled_after_the_file_name(tmp_path):
    doc = only_document(write(tmp_path, "crm_success-factors.txt", "word " * 60))
    assert doc.title == "crm success factors"


# --- markdown -----------------------------------------------------------------------------

MARKDOWN = """---
title: Refund guide
tags: [Refunds, billing , refunds]
visibility: Public
lang: EN
owner: support-team
reviewed: 2024-05-01
---
# Refunds

Refunds are **always** paid to the *original* card. See [the policy](https://example.com/policy).

![Refund form screenshot](form.png)

- Check the receipt
- Call the customer
  1. Confirm the order
  2. Confirm the amount

Run `refund --id 42` in the console:

```
refund --id 42 --notify
```

| Product | Days |
|---------|------|
| Printer | 30 |
"""


def test_markdown_front_matter_sets_title_tags_visibility_and_language(tmp_path):
    doc = only_document(write(tmp_path, "refunds.md", MARKDOWN))
    assert doc.title == "Refund guide"
    assert doc.tags == ["refunds", "billing"]
    assert doc.visibility == "public"
    assert doc.language == "en"
    assert doc.kind == GUIDANCE
    assert doc.metadata["owner"] == "support-team"
    assert doc.metadata["reviewed"] == "2024-05-01"  # a YAML date, stored as text
    assert doc.metadata["format"] == "markdown"


def test_markdown_tags_may_be_a_comma_separated_string(tmp_path):
    doc = only_document(write(tmp_path, "t.md", "---\ntags: 'Billing, VIP ,billing,'\n---\nBody text.\n"))
    assert doc.tags == ["billing", "vip"]


def test_markdown_markup_becomes_plain_searchable_text(tmp_path):
    text = only_document(write(tmp_path, "refunds.md", MARKDOWN)).text
    paragraphs = text.split("\n\n")
    assert paragraphs[0] == heading_line(1, "Refunds")
    assert paragraphs[1] == "Refunds are always paid to the original card. See the policy."
    assert paragraphs[2] == "Refund form screenshot"
    assert (
        paragraphs[3]
        == "- Check the receipt\n- Call the customer\n  1. Confirm the order\n  2. Confirm the amount"
    )
    assert "Run refund --id 42 in the console:" in paragraphs
    assert "refund --id 42 --notify" in paragraphs
    assert paragraphs[-1] == "| Product | Days |\n| Printer | 30 |"
    for markup in ("#", "**", "](", "![", "```"):
        assert markup not in text


def test_markdown_title_falls_back_to_first_heading_then_file_name(tmp_path):
    with_heading = only_document(write(tmp_path, "a.md", "Intro line.\n\n# Shipping times\n\nText.\n"))
    assert with_heading.title == "Shipping times"
    without = only_document(write(tmp_path, "delivery_faq.md", "## Only a subheading\n\nText.\n"))
    assert without.title == "delivery faq"


def test_markdown_with_broken_yaml_names_the_file_and_the_problem(tmp_path):
    path = write(tmp_path, "broken.md", "---\ntitle: Refunds\ntags: [a, b\n---\nBody\n")
    with pytest.raises(ReadError) as info:
        read_file(path)
    message = str(info.value)
    assert message.startswith(str(path.resolve()))
    assert "not valid YAML" in message
    assert "line 3" in message  # where the unclosed list starts, counted in the whole file


def test_markdown_with_front_matter_but_no_body_is_refused(tmp_path):
    with pytest.raises(ReadError, match="stub.md: no text to index"):
        read_file(write(tmp_path, "stub.md", "---\ntitle: Coming soon\n---\n\n"))


# --- html ---------------------------------------------------------------------------------

HTML_PAGE = """<!doctype html>
<html><head><meta charset="utf-8">
<title>Return policy | Acme Support</title>
<script>var tracking = "SCRIPT_TEXT";</script><style>.x { color: red }</style>
</head><body>
<header><nav><a href="/">Home</a> <a href="/products">Products</a> NAV_TEXT</nav></header>
<div id="cookie-banner">We use cookies COOKIE_TEXT. <button>Accept</button></div>
<main><article>
<h1>Return policy</h1>
<p>Customers may return any product within 30 days of delivery. Keep the receipt and the original
packaging so that the warehouse can check the item quickly.</p>
<p>Refunds are paid to the original payment method within five working days after the item
arrives at our warehouse. ลูกค้าจะได้รับเงินคืนภายในห้าวันทำการ</p>
<table><tr><th>Product</th><th>Days</th></tr><tr><td>Printer</td><td>30</td></tr></table>
</article></main>
<aside>SIDEBAR_TEXT related articles</aside>
<footer>FOOTER_TEXT Copyright 2024 Acme</footer>
</body></html>
"""


def test_html_main_text_leaves_out_navigation_cookie_banner_footer_and_scripts(tmp_path):
    doc = only_document(write(tmp_path, "returns.html", HTML_PAGE))
    assert "Customers may return any product within 30 days" in doc.text
    assert "ลูกค้าจะได้รับเงินคืนภายในห้าวันทำการ" in doc.text
    assert "Printer | 30" in doc.text
    assert "\n\nRefunds are paid" in doc.text  # paragraphs stay apart
    for noise in ("NAV_TEXT", "COOKIE_TEXT", "SIDEBAR_TEXT", "FOOTER_TEXT", "SCRIPT_TEXT", "color: red"):
        assert noise not in doc.text


def test_html_title_drops_the_site_name_when_the_h1_matches(tmp_path):
    assert only_document(write(tmp_path, "returns.html", HTML_PAGE)).title == "Return policy"
    page = HTML_PAGE.replace("<h1>Return policy</h1>", "<h1>Something else</h1>")
    assert only_document(write(tmp_path, "other.htm", page)).title == "Return policy | Acme Support"


def test_short_html_page_keeps_its_text_but_not_its_navigation(tmp_path):
    page = "<html><body><nav>Home Products</nav><p>Our office is open from 9 to 5.</p><footer>Foot</footer></body></html>"
    doc = only_document(write(tmp_path, "office_hours.html", page))
    assert doc.text == "Our office is open from 9 to 5."
    assert doc.title == "office hours"


def test_html_without_a_title_tag_uses_og_title(tmp_path):
    page = (
        '<html><head><meta property="og:title" content="Warranty FAQ"></head>'
        "<body><h1>FAQ</h1><p>Warranty lasts two years from the date of purchase.</p></body></html>"
    )
    assert only_document(write(tmp_path, "faq.htm", page)).title == "Warranty FAQ"


def test_html_page_of_bare_text_is_read(tmp_path):
    doc = only_document(write(tmp_path, "bare.html", "<html><body>Call 1175 for help.</body></html>"))
    assert doc.text == "Call 1175 for help."


def test_html_keeps_heading_levels_numbered_and_nested_lists_and_tables(tmp_path):
    page = (
        "<html><head><title>Returns</title></head><body><article><h1>Returns</h1>"
        "<p>Everything staff need to know about returned goods, for every product we sell.</p>"
        "<h2>Refunds</h2><p>Refunds go back to the original card within fourteen days of arrival.</p>"
        "<h3>Store credit</h3><ol><li>Ask the customer</li><li>Issue credit<ul><li>Note it</li></ul></li></ol>"
        "<table><tr><th>Plan</th><th>Days</th></tr><tr><td>Gold</td><td>60</td></tr></table>"
        "<p>客户（会员）问：退款多久到账？请在１４个工作日内等待，我们会通知您。</p></article></body></html>"
    )
    text = only_document(write(tmp_path, "returns.html", page)).text
    blocks = text.split("\n\n")
    assert heading_line(2, "Refunds") in blocks and heading_line(3, "Store credit") in blocks
    assert "1. Ask the customer\n2. Issue credit\n  - Note it" in blocks
    assert "| Plan | Days |\n| Gold | 60 |" in blocks
    assert "客户（会员）问：退款多久到账？请在１４个工作日内等待，我们会通知您。" in blocks


def test_fallback_extraction_keeps_blocks_apart_and_drops_forms_and_banners():
    page = (
        "<html><body><nav>Menu</nav><div class='cookie-notice'>Cookies!</div>"
        "<form><input name=q><label>Search</label></form>"
        "<h2>Plans</h2><p>Fiber 500<br>Fiber 1000</p><ul><li>No contract</li></ul>"
        "<table><tr><td>Plan</td><td>Price</td></tr></table></body></html>"
    )
    soup = BeautifulSoup(page, "lxml")
    _remove_page_furniture(soup)
    assert _main_text_with_soup(soup) == (
        heading_line(2, "Plans") + "\n\nFiber 500\nFiber 1000\n\n- No contract\n\n| Plan | Price |"
    )


def test_html_in_a_legacy_encoding_follows_its_meta_charset(tmp_path):
    page = (
        '<html><head><meta http-equiv="Content-Type" content="text/html; charset=gb2312">'
        "<title>退货政策</title></head><body><p>客户可以在收到商品后三十天内退货。请保留收据作为凭证。</p></body></html>"
    )
    doc = only_document(write(tmp_path, "zh.html", page, "gb18030"))
    assert doc.title == "退货政策"
    assert "客户可以在收到商品后三十天内退货" in doc.text
    assert doc.metadata["encoding"] == "gb18030"


# --- pdf ----------------------------------------------------------------------------------


def make_pdf(lines_per_page: list[list[str]], title: str | None = None, encrypt: dict | None = None) -> bytes:
    pdf = FPDF()
    pdf.set_font("helvetica", size=12)
    for lines in lines_per_page:
        pdf.add_page()
        for line in lines:
            pdf.cell(0, 10, line, new_x="LMARGIN", new_y="NEXT")
    if title:
        pdf.set_title(title)
    if encrypt:
        pdf.set_encryption(encryption_method=EncryptionMethod.RC4, **encrypt)
    return bytes(pdf.output())


def test_pdf_text_pages_and_title_are_read(tmp_path):
    data = make_pdf(
        [["Warranty handbook", "Claims need the serial number."], ["Page two talks about repairs."]],
        title="Warranty Handbook 2024",
    )
    doc = only_document(write(tmp_path, "warranty.pdf", data))
    assert doc.title == "Warranty Handbook 2024"
    assert doc.metadata["pages"] == 2
    first, second = doc.text.split("\n\n")
    assert "Claims need the serial number." in first
    assert "Page two talks about repairs." in second


def test_pdf_without_a_meaningful_title_uses_its_first_line(tmp_path):
    data = make_pdf([["Repair checklist", "Step one."]], title="Microsoft Word - checklist.docx")
    assert only_document(write(tmp_path, "c.pdf", data)).title == "Repair checklist"


def test_pdf_protected_only_against_editing_is_read(tmp_path):
    data = make_pdf([["Open to everyone."]], encrypt={"owner_password": "owner-secret"})
    assert "Open to everyone." in only_document(write(tmp_path, "open.pdf", data)).text


def test_pdf_with_a_user_password_is_refused(tmp_path):
    data = make_pdf([["Top secret."]], encrypt={"owner_password": "o", "user_password": "u"})
    path = write(tmp_path, "locked.pdf", data)
    with pytest.raises(ReadError, match="locked.pdf: encrypted PDF, cannot read without a password"):
        read_file(path)


def test_pdf_without_text_is_reported_as_probably_scanned(tmp_path):
    pdf = FPDF()
    pdf.add_page()
    pdf.rect(20, 20, 100, 50, style="F")
    path = write(tmp_path, "scan.pdf", bytes(pdf.output()))
    with pytest.raises(ReadError, match=r"scan.pdf: no extractable text \(scanned PDF\? run OCR first\)"):
        read_file(path)


@pytest.mark.parametrize(
    "data",
    [b"%PDF-1.7\n this is not really a pdf \x00\x01\x02 %%EOF", b"PK\x03\x04 a zip, not a pdf"],
)
def test_corrupt_pdf_is_refused_by_name(tmp_path, data):
    path = write(tmp_path, "broken.pdf", data)
    with pytest.raises(ReadError) as info:
        read_file(path)
    assert str(info.value).startswith(str(path.resolve()) + ": ")


# --- docx ---------------------------------------------------------------------------------


def make_docx(path: Path, title: str = "") -> Path:
    document = docx.Document()
    document.core_properties.title = title
    document.add_heading("Escalation rules", level=1)
    document.add_paragraph("Escalate to a supervisor after two failed fixes.")
    document.add_paragraph("Record the case number.", style="List Bullet")
    table = document.add_table(rows=2, cols=2)
    for row, (left, right) in zip(table.rows, [("Level", "Owner"), ("2", "Team lead")], strict=True):
        row.cells[0].text, row.cells[1].text = left, right
    document.add_paragraph("กรุณาบันทึกหมายเลขเคส 请记录案例编号")
    document.save(path)
    return path


def test_docx_paragraphs_headings_and_tables_are_read_in_order(tmp_path):
    doc = only_document(make_docx(tmp_path / "escalation.docx", title="Escalation Handbook"))
    assert doc.title == "Escalation Handbook"
    assert doc.text.split("\n\n") == [
        heading_line(1, "Escalation rules"),
        "Escalate to a supervisor after two failed fixes.",
        "- Record the case number.",
        "| Level | Owner |\n| 2 | Team lead |",
        "กรุณาบันทึกหมายเลขเคส 请记录案例编号",
    ]
    assert doc.metadata["format"] == "docx"


def test_docx_keeps_heading_levels_list_numbers_nesting_and_full_width_text(tmp_path):
    document = docx.Document()
    document.add_heading("Refunds", level=1)
    document.add_heading("Store credit", level=2)
    document.add_paragraph("客户（会员）问：多久？")
    document.add_paragraph("Check the receipt.", style="List Number")
    document.add_paragraph("Call the customer.", style="List Number")
    document.add_paragraph("Confirm the amount.", style="List Bullet 2")
    document.add_paragraph("Close the case.", style="List Number")
    document.save(tmp_path / "steps.docx")
    text = only_document(tmp_path / "steps.docx").text
    assert text.split("\n\n") == [
        heading_line(1, "Refunds"), heading_line(2, "Store credit"), "客户（会员）问：多久？",
        "1. Check the receipt.\n2. Call the customer.\n  - Confirm the amount.\n3. Close the case.",
    ]


def test_docx_without_a_title_property_is_titled_by_its_first_heading(tmp_path):
    assert only_document(make_docx(tmp_path / "e.docx")).title == "Escalation rules"


def test_zip_bomb_docx_is_refused(tmp_path):
    path = make_docx(tmp_path / "bomb.docx")
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("word/media/image1.bin", b"\0" * (8 * 1024 * 1024))
    with pytest.raises(ReadError, match="bomb.docx: refused: .*zip bomb"):
        read_file(path)


def test_file_that_is_not_a_docx_is_refused(tmp_path):
    with pytest.raises(ReadError, match=r"fake.docx: not a valid \.docx file"):
        read_file(write(tmp_path, "fake.docx", "plain text pretending to be Word"))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("hello.txt", "a zip, but not a Word document")
    with pytest.raises(ReadError, match=r"other.docx: not a valid \.docx file"):
        read_file(write(tmp_path, "other.docx", buffer.getvalue()))


# --- customer notes: csv ------------------------------------------------------------------

NOTES_CSV = NOTES_HEADER + (
    "N-1,2024-03-05,Somchai Jaidee,somchai@example.com,081-234-5678,phone,Printer X,"
    '"Paper jams after the firmware update, every page",Rolled back firmware,closed,Printer; Firmware|printer\n'
    "N-2,2024/03/06,Li Wei,li@example.com,13800138000,email,,打印机无法连接。,,open,\n"
    "N-3,,Ann,,,chat,Router,,Restarted,closed,\n"
    "N-4,31/31/2024,Bob,,,chat,Router,Router drops Wi-Fi,,open,\n"
    "N-1,2024-03-07,Somchai,,,phone,Printer X,Same problem again,,open,\n"
    "N-5,2024-03-08T14:30:00,Mali,,,line,Router,เราเตอร์หลุดบ่อย,,open,wifi\n"
)


def test_csv_notes_good_rows_go_in_and_bad_rows_are_reported_by_row_and_field(tmp_path):
    path = write(tmp_path, "notes.csv", NOTES_CSV)
    result = read_file(path)
    assert [d.note.note_id for d in result.documents] == ["N-1", "N-2", "N-5"]
    # Rows are numbered as in a spreadsheet: the header is row 1, the first note row 2.
    problems = [(p.location, p.message) for p in result.problems]
    assert problems == [
        ("row 4", "field 'complaint' is empty: nothing to index"),
        ("row 5", "field 'date': cannot read '31/31/2024' as a date (expected YYYY-MM-DD)"),
        ("row 6", "duplicate id N-1 (first seen on row 2)"),
    ]
    for problem in result.problems:
        assert str(problem).startswith(f"{path.resolve()} (row ")


def test_csv_note_fields_are_carried_in_the_note(tmp_path):
    path = write(tmp_path, "notes.csv", NOTES_CSV)
    first, second, third = read_file(path).documents
    assert first.kind == NOTE
    assert first.visibility == "internal"
    assert first.source == f"{path.resolve()}#N-1"
    assert first.source_file == str(path.resolve())
    assert first.note.date == dt.date(2024, 3, 5)
    assert first.note.customer_email == "somchai@example.com"
    assert first.note.product == "Printer X"
    assert first.note.resolution == "Rolled back firmware"
    assert first.text == "Paper jams after the firmware update, every page\n\nRolled back firmware"
    assert first.tags == ["printer", "firmware"]
    assert first.metadata == {"format": "csv", "row": 2, "encoding": "utf-8"}
    assert second.note.date == dt.date(2024, 3, 6)
    assert second.text == "打印机无法连接。"
    assert third.note.date == dt.date(2024, 3, 8)


def test_notes_never_carry_customer_name_email_or_phone_in_title_or_text(tmp_path):
    documents = read_file(write(tmp_path, "notes.csv", NOTES_CSV)).documents
    assert documents
    for doc in documents:
        for personal in (doc.note.customer_name, doc.note.customer_email, doc.note.customer_phone):
            if personal:
                assert personal not in doc.title
                assert personal not in doc.text
                assert personal not in json.dumps(doc.metadata, ensure_ascii=False)


def test_note_title_shows_id_product_and_a_shortened_complaint(tmp_path):
    first, second, _ = read_file(write(tmp_path, "notes.csv", NOTES_CSV)).documents
    assert first.title == "N-1 · Printer X: Paper jams after the firmware update, every page"
    assert second.title == "N-2: 打印机无法连接。"
    long = read_notes_rows([{"id": "7", "complaint": "x" * 100}], "/data/notes.csv").documents[0]
    assert long.title == "7: " + "x" * 59 + "…"


def test_csv_missing_a_required_column_is_refused_naming_it(tmp_path):
    path = write(tmp_path, "notes.csv", "id,date,product\nN-1,2024-01-01,Router\n")
    with pytest.raises(ReadError) as info:
        read_file(path)
    message = str(info.value)
    assert message.startswith(
        f"{path.resolve()}: missing required column(s): complaint (expected columns: id, date,"
    )


def test_semicolon_delimited_csv_is_read(tmp_path):
    path = write(
        tmp_path, "notes.csv", "id;complaint;resolution\nN-1;Screen flickers, then goes dark;Replaced cable\n"
    )
    (doc,) = read_file(path).documents
    assert doc.note.complaint == "Screen flickers, then goes dark"
    assert doc.note.resolution == "Replaced cable"


def test_tab_delimited_csv_is_read(tmp_path):
    (doc,) = read_file(write(tmp_path, "notes.csv", "id\tcomplaint\nN-9\tNo dial tone\n")).documents
    assert doc.note.complaint == "No dial tone"


def test_csv_header_names_are_matched_loosely_and_extra_columns_go_to_metadata(tmp_path):
    content = "\ufeff ID ,Complaint,Customer Name,Region\nN-1,Late delivery,Somchai,North\n"
    (doc,) = read_file(write(tmp_path, "notes.csv", content)).documents
    assert doc.note.note_id == "N-1"
    assert doc.note.customer_name == "Somchai"
    assert doc.metadata["region"] == "North"


def test_csv_row_with_an_unquoted_delimiter_is_reported_not_guessed(tmp_path):
    content = "id,complaint,resolution\nN-1,Late, very late,Refunded\nN-2,Broken box,Replaced\n"
    result = read_file(write(tmp_path, "notes.csv", content))
    assert [d.note.note_id for d in result.documents] == ["N-2"]
    assert result.problems[0].location == "row 2"
    assert "double quotes" in result.problems[0].message


def test_csv_cell_with_line_breaks_counts_as_one_row(tmp_path):
    content = 'id,complaint\nN-1,"Line one\nline two"\nN-2,\n'
    result = read_file(write(tmp_path, "notes.csv", content))
    assert result.documents[0].text == "Line one\nline two"
    assert [p.location for p in result.problems] == ["row 3"]


def test_csv_quote_left_open_is_refused_naming_the_row(tmp_path):
    content = 'id,complaint\nN-1,Fine\nN-2,"Late delivery, again\nN-3,Broken\n'
    path = write(tmp_path, "notes.csv", content)
    with pytest.raises(
        ReadError, match=r"notes.csv: row 3 is not valid CSV \(a double quote .* never closed\)"
    ):
        read_file(path)


def test_csv_with_only_a_header_gives_no_documents(tmp_path):
    result = read_file(write(tmp_path, "notes.csv", NOTES_HEADER))
    assert result.documents == [] and result.problems == []


def test_thai_notes_in_a_legacy_encoded_csv_are_decoded(tmp_path):
    content = "id,complaint\nT-1,เครื่องพิมพ์ไม่ทำงานหลังอัปเดต กรุณาช่วยตรวจสอบด้วย\n"
    (doc,) = read_file(write(tmp_path, "notes.csv", content, "tis-620")).documents
    assert doc.text == "เครื่องพิมพ์ไม่ทำงานหลังอัปเดต กรุณาช่วยตรวจสอบด้วย"
    assert doc.metadata["encoding"] in {"cp874", "tis-620"}


# --- customer notes: jsonl ----------------------------------------------------------------


def test_jsonl_broken_and_non_object_lines_are_reported_and_the_rest_read(tmp_path):
    lines = [
        json.dumps(
            {
                "id": 101,
                "complaint": "App crashes on login",
                "tags": ["App", " login ", "app"],
                "date": "2024-02-01",
                "channel": "chat",
            }
        ),
        '{"id": "102", "complaint": "missing brace"',
        "",
        '["not", "an", "object"]',
        json.dumps({"id": "103", "complaint": "Wrong invoice", "product": ["a", "list"]}),
        json.dumps({"id": "104", "complaint": "ส่งของช้า", "resolution": "ส่งใหม่แล้ว", "priority": 2}),
    ]
    path = write(tmp_path, "notes.jsonl", "\n".join(lines) + "\n")
    result = read_file(path)
    assert [d.note.note_id for d in result.documents] == ["101", "104"]
    assert [p.location for p in result.problems] == ["line 2", "line 4", "line 5"]
    assert "not valid JSON" in result.problems[0].message
    assert "expected a JSON object" in result.problems[1].message
    assert result.problems[2].message == "field 'product': expected text, got a list"
    first, second = result.documents
    assert first.tags == ["app", "login"]
    assert first.metadata == {"format": "jsonl", "row": 1, "encoding": "utf-8"}
    assert second.text == "ส่งของช้า\n\nส่งใหม่แล้ว"
    assert second.metadata["priority"] == 2
    assert all(str(p).startswith(str(path.resolve())) for p in result.problems)


def test_read_notes_rows_numbers_rows_from_one_with_its_own_label():
    rows = [{"ID": "A", "Complaint": "Noisy fan"}, {"id": "", "complaint": "No id here"}]
    result = read_notes_rows(rows, "/imports/portal.csv", location_label="record")
    assert [d.source for d in result.documents] == ["/imports/portal.csv#A"]
    assert [(p.location, p.message) for p in result.problems] == [
        ("record 2", "field 'id' is empty: every note needs an id"),
    ]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2024-03-05", dt.date(2024, 3, 5)),
        ("2024/3/5", dt.date(2024, 3, 5)),
        ("2024-03-05T23:59:00+07:00", dt.date(2024, 3, 5)),
        ("2024-03-05 10:00", dt.date(2024, 3, 5)),
    ],
)
def test_note_dates_accept_iso_forms(raw, expected):
    (doc,) = read_notes_rows([{"id": "1", "complaint": "c", "date": raw}], "n.csv").documents
    assert doc.note.date == expected


@pytest.mark.parametrize("raw", ["05/03/2024", "March 5", "2024-02-30"])
def test_ambiguous_or_impossible_note_dates_are_problems(raw):
    result = read_notes_rows([{"id": "1", "complaint": "c", "date": raw}], "n.csv")
    assert result.documents == []
    assert result.problems[0].message == f"field 'date': cannot read {raw!r} as a date (expected YYYY-MM-DD)"
