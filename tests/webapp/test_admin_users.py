"""Administration in the portal: admins create users, change roles, reset passwords, unlock, disable and
enable, each recorded in the audit log; nobody else may. Real portal, real accounts, an empty knowledge base."""

from __future__ import annotations

import re

import pytest

from kb.config import Settings
from kb.knowledge_base import KnowledgeBase
from kb.services import accounts, audit
from tests.portal_client import csrf_token_of, signed_in, token_for
from webapp import create_app
from webapp.auth import THROTTLE_FAILURES


@pytest.fixture(scope="module")
def portal_kb(tmp_path_factory, models_dir, embedder):
    kb = KnowledgeBase.open(Settings(data_dir=tmp_path_factory.mktemp("admin-users") / "data", models_dir=models_dir),
                            embedder=embedder)
    yield kb
    kb.close()


@pytest.fixture(scope="module")
def app(portal_kb):
    return create_app({"KB_INSTANCE": portal_kb, "TESTING": True, "KB_WARM_UP": False})


def _post(client, path: str, **data):
    token = csrf_token_of(client.get("/admin/users").get_data(as_text=True))
    return client.post(path, data={"csrf_token": token, **data})


def _password_shown(html: str) -> str:
    return re.search(r'<code class="secret">([^<]+)</code>', html).group(1)


def _sign_in(app, username: str, password: str) -> int:
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    return client.post("/login", data={"username": username, "password": password,
                                       "csrf_token": csrf_token_of(page)}).status_code


def _actions_on(kb, username: str) -> list[str]:
    entries, _ = audit.entries(kb.store, 100)
    return [e.action for e in entries if e.target == username and e.action.startswith("user_")]


def test_an_admin_creates_a_user_whose_password_is_shown_once_and_works(app, portal_kb):
    admin = signed_in(app, "admin")
    made = _post(admin, "/admin/users", username="nittaya", display_name="Nittaya S.", role="trainer")
    html = made.get_data(as_text=True)
    assert made.status_code == 200 and "nittaya" in html
    password = _password_shown(html)
    assert _sign_in(app, "nittaya", password) == 303
    assert password not in admin.get("/admin/users").get_data(as_text=True)  # shown only once
    assert accounts.find_account(portal_kb.store, "nittaya").role == "trainer"
    assert _actions_on(portal_kb, "nittaya") == ["user_add"]
    again = _post(admin, "/admin/users", username="nittaya", role="agent")
    assert again.status_code == 400 and "already exists" in again.get_data(as_text=True)


def test_role_password_disable_and_enable_take_effect_and_are_audited(app, portal_kb):
    admin = signed_in(app, "admin")
    accounts.add_user(portal_kb.store, "wei", "employee", "wei-first-password")
    token = accounts.create_token(portal_kb.store, accounts.find_account(portal_kb.store, "wei").id, "sync")[1]
    assert _post(admin, "/admin/users/wei/role", role="agent").status_code == 200
    assert accounts.find_account(portal_kb.store, "wei").role == "agent"
    assert _post(admin, "/admin/users/wei/role", role="wizard").status_code == 400

    reset = _post(admin, "/admin/users/wei/reset-password").get_data(as_text=True)
    new_password = _password_shown(reset)
    assert _sign_in(app, "wei", "wei-first-password") == 401 and _sign_in(app, "wei", new_password) == 303

    assert _post(admin, "/admin/users/wei/disable").status_code == 200
    assert _sign_in(app, "wei", new_password) == 401
    assert app.test_client().get("/api/v1/documents", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert _post(admin, "/admin/users/wei/enable").status_code == 200
    assert _sign_in(app, "wei", new_password) == 303
    assert _actions_on(portal_kb, "wei") == ["user_enable", "user_disable", "user_password", "user_role"]


def test_an_admin_unlocks_an_account_locked_by_failed_sign_ins(app, portal_kb):
    accounts.add_user(portal_kb.store, "somsak", "employee", "somsak-real-password")
    for _ in range(THROTTLE_FAILURES):
        _sign_in(app, "somsak", "a wrong guess")
    assert _sign_in(app, "somsak", "somsak-real-password") == 429
    admin = signed_in(app, "admin")
    page = admin.get("/admin/users", headers={"Accept-Language": "en"}).get_data(as_text=True)
    row = re.search(r'<tr id="user-somsak">.*?</tr>', page, re.S).group(0)
    assert "locked" in row and "/admin/users/somsak/unlock" in row
    assert _post(admin, "/admin/users/somsak/unlock").status_code == 200
    assert _sign_in(app, "somsak", "somsak-real-password") == 303
    assert "user_unlock" in _actions_on(portal_kb, "somsak")


def test_only_admins_manage_users_and_an_admin_cannot_lock_themselves_out(app, portal_kb):
    for role in ("trainer", "agent", "employee", "partner"):
        client = signed_in(app, role)
        assert client.get("/admin/users").status_code == 403
        assert client.post("/admin/users/test-employee/disable",
                           headers={"Authorization": f"Bearer {token_for(portal_kb.store, f'test-{role}', role)}"},
                           ).status_code == 403
    admin = signed_in(app, "admin")
    refused = _post(admin, "/admin/users/test-admin/disable")
    assert refused.status_code == 400 and not accounts.find_account(portal_kb.store, "test-admin").disabled
    assert _post(admin, "/admin/users/nobody-here/disable").status_code == 404
    thai = admin.get("/admin/users", headers={"Accept-Language": "th"}).get_data(as_text=True)
    assert "ผู้ใช้ใหม่" in thai and "ตั้งรหัสผ่านใหม่" in thai
