"""Original files: every document read from a file can be downloaded as that file, from the database.

Real portal, real accounts, an empty knowledge base of its own. The originals are
served from the database, so they survive the uploads folder going away (a second
node never had it); downloading a file needs the right to read all of it, personal
data included.
"""

from __future__ import annotations

import io
import shutil
from urllib.parse import quote

import docx
from sqlalchemy import func, select

from kb.storage.models import OriginalFile
from tests.portal_client import signed_in
from tests.services.test_cases import notes_csv
from tests.webapp.test_api import check

THAI_NAME = "คู่มือการโทรกลับ.md"
THAI_GUIDE = ("# การโทรกลับลูกค้า\n\n## ระยะเวลา\n\n- โทรกลับภายใน 24 ชั่วโมง\n- บันทึกผลใน CRM\n\n"
              "ลูกค้าที่รอนานเกินไปมักจะยกเลิกบริการ\n").encode()


def upload(client, name: str, data: bytes, **fields) -> list[int]:
    response = client.post("/api/v1/documents", data={"files": (io.BytesIO(data), name), **fields},
                           content_type="multipart/form-data")
    results = check(response, "/api/v1/documents", "post")["results"]
    assert results[0]["status"] in ("added", "updated"), results
    return results[0]["doc_ids"]


def word_file() -> bytes:
    document = docx.Document()
    document.add_heading("Escalation ladder", level=1)
    document.add_paragraph("Team lead within one hour.", style="List Number")
    document.add_paragraph("Service manager within one day.", style="List Number")
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def test_an_upload_downloads_byte_for_byte_even_without_the_uploads_folder(app, data_dir):
    trainer = signed_in(app, "trainer")
    thai_id = upload(trainer, THAI_NAME, THAI_GUIDE)[0]
    word = word_file()
    word_id = upload(trainer, "escalation.docx", word)[0]
    shutil.rmtree(data_dir / "uploads")  # what another node sees: nothing on its disk

    body = check(trainer.get(f"/api/v1/documents/{thai_id}"), "/api/v1/documents/{doc_id}")
    assert body["original"] == {"name": THAI_NAME, "size": len(THAI_GUIDE),
                                "url": f"/api/v1/documents/{thai_id}/original"}
    assert body["source"] == THAI_NAME  # as it was sent, no server path
    response = trainer.get(body["original"]["url"])
    assert response.status_code == 200 and response.data == THAI_GUIDE
    assert response.mimetype == "text/markdown"
    assert f"filename*=UTF-8''{quote(THAI_NAME)}" in response.headers["Content-Disposition"]
    assert response.headers["Content-Disposition"].startswith('attachment; filename="document-')

    page = trainer.get(f"/documents/{word_id}?ui=th").get_data(as_text=True)
    assert "ไฟล์ต้นฉบับ" in page and f"/documents/{word_id}/original" in page and "escalation.docx" in page
    response = trainer.get(f"/documents/{word_id}/original")
    assert response.status_code == 200 and response.data == word
    assert 'filename="escalation.docx"' in response.headers["Content-Disposition"]


def test_a_notes_file_is_only_for_those_who_may_see_its_personal_data(app):
    agent, trainer = signed_in(app, "agent"), signed_in(app, "trainer")
    data = notes_csv(header="id,date,customer_name,customer_email,customer_phone,channel,product,complaint,"
                            "resolution,status,tags")
    doc_id = upload(agent, "tickets-may.csv", data, visibility="internal")[0]

    assert agent.get(f"/api/v1/documents/{doc_id}/original").data == data
    assert check(trainer.get(f"/api/v1/documents/{doc_id}"), "/api/v1/documents/{doc_id}")["original"] is None
    refused = trainer.get(f"/api/v1/documents/{doc_id}/original")
    assert refused.status_code == 403 and "personal data" in refused.get_json()["error"]["message"]
    page = trainer.get(f"/documents/{doc_id}/original?ui=zh-Hans")
    assert page.status_code == 403 and "个人数据" in page.get_data(as_text=True)
    assert "/original" not in trainer.get(f"/documents/{doc_id}").get_data(as_text=True)


def test_pasted_text_has_no_original_and_a_hidden_document_none_to_know_of(app):
    admin, partner = signed_in(app, "admin"), signed_in(app, "partner")
    pasted = admin.post("/api/v1/documents", json={"text": "Call customers back within one day.",
                                                    "title": "Call-backs"}).get_json()["results"][0]["doc_ids"][0]
    assert admin.get(f"/api/v1/documents/{pasted}").get_json()["original"] is None
    assert admin.get(f"/api/v1/documents/{pasted}/original").status_code == 404
    board = upload(admin, "board.md", b"# Board\n\nThe merger closes in March.\n", visibility="admin")[0]
    assert admin.get(f"/api/v1/documents/{board}/original").status_code == 200
    assert partner.get(f"/api/v1/documents/{board}/original").status_code == 404
    assert partner.get(f"/documents/{board}/original").status_code == 404


def test_deleting_the_documents_of_a_file_forgets_its_original(app, portal_kb):
    admin = signed_in(app, "admin")
    doc_id = upload(admin, "short-lived.md", b"# Short lived\n\nThis note will be deleted.\n")[0]
    with portal_kb.store.session() as s:
        assert s.scalar(select(func.count()).select_from(OriginalFile)
                        .where(OriginalFile.name == "short-lived.md")) == 1
    deleted = admin.delete(f"/api/v1/documents/{doc_id}")
    assert deleted.status_code == 200 and deleted.get_json()["deleted"] == ["short-lived.md"]
    assert admin.get(f"/api/v1/documents/{doc_id}/original").status_code == 404
    with portal_kb.store.session() as s:
        assert s.scalar(select(func.count()).select_from(OriginalFile)
                        .where(OriginalFile.name == "short-lived.md")) == 0
