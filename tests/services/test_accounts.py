"""Accounts, tokens and the audit log at the core, and `kb user` on the command line."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json

import pytest

from kb.services import accounts, audit
from kb.storage.store import Store
from tests.conftest import run_kb


@pytest.fixture
def store(database_url):
    store = Store(database_url)
    yield store
    store.dispose()


def test_users_sign_in_with_their_password_only(store):
    account, password = accounts.add_user(store, "Somchai", accounts.AGENT)
    assert account.username == "somchai" and account.can("pii") and len(password) >= accounts.MIN_PASSWORD_CHARS
    assert accounts.authenticate(store, "SOMCHAI", password).id == account.id
    assert accounts.authenticate(store, "somchai", password + "x") is None
    assert accounts.authenticate(store, "nobody", password) is None
    with pytest.raises(accounts.AccountError, match="already exists"):
        accounts.add_user(store, "somchai", accounts.AGENT)
    with pytest.raises(accounts.AccountError, match="unknown role"):
        accounts.add_user(store, "wei", "superuser")
    with pytest.raises(accounts.AccountError, match="too short"):
        accounts.add_user(store, "wei", accounts.EMPLOYEE, "short")


def test_role_changes_and_disabling_end_every_session(store):
    account, password = accounts.add_user(store, "partner1", accounts.PARTNER)
    assert account.permissions == frozenset()
    changed = accounts.set_role(store, "partner1", accounts.TRAINER)
    assert changed.role == "trainer" and changed.session_epoch == account.session_epoch + 1
    disabled = accounts.set_disabled(store, "partner1")
    assert disabled.disabled and accounts.authenticate(store, "partner1", password) is None
    assert accounts.set_disabled(store, "partner1", False).disabled is False
    assert accounts.authenticate(store, "partner1", password) is not None


def test_signing_one_session_out_ends_that_session_only(store):
    account, _ = accounts.add_user(store, "two-browsers", accounts.EMPLOYEE)
    laptop, phone = accounts.new_session_id(), accounts.new_session_id()
    assert laptop != phone and accounts.session_account(store, account.id, 0, laptop) == account
    accounts.end_session(store, laptop, dt.timedelta(hours=12))
    accounts.end_session(store, laptop, dt.timedelta(hours=12))  # twice is harmless
    assert accounts.session_account(store, account.id, 0, laptop) is None
    assert accounts.session_account(store, account.id, 0, phone) == account
    assert accounts.session_account(store, account.id, 0, "") is None  # a session without its own id
    accounts.sign_out_everywhere(store, account.id)
    assert accounts.session_account(store, account.id, 0, phone) is None
    assert accounts.session_account(store, account.id, 1, phone) is not None
    # Entries whose cookies have expired anyway are dropped on the next sign-out.
    accounts.end_session(store, "expired-long-ago", -dt.timedelta(seconds=1))
    accounts.end_session(store, phone, dt.timedelta(hours=12))
    assert accounts.session_account(store, account.id, 1, "expired-long-ago") is not None
    assert accounts.session_account(store, account.id, 1, phone) is None


def test_api_tokens_are_shown_once_and_can_be_revoked(store):
    account, _ = accounts.add_user(store, "trainer1", accounts.TRAINER)
    info, token = accounts.create_token(store, account.id, "handout script")
    assert token.startswith(accounts.TOKEN_PREFIX) and token[:12] == info.prefix
    assert accounts.account_for_token(store, token).username == "trainer1"
    assert accounts.list_tokens(store, account.id)[0].last_used_at is not None
    assert accounts.account_for_token(store, token + "x") is None
    accounts.set_disabled(store, "trainer1")
    assert accounts.account_for_token(store, token) is None
    accounts.set_disabled(store, "trainer1", False)
    other, _ = accounts.add_user(store, "other", accounts.EMPLOYEE)
    assert accounts.revoke_token(store, other.id, info.id) is False  # not theirs
    assert accounts.revoke_token(store, account.id, info.id) is True
    assert accounts.account_for_token(store, token) is None
    with pytest.raises(accounts.AccountError, match="name"):
        accounts.create_token(store, account.id, "  ")


def test_the_audit_log_keeps_every_entry_in_order_and_exports(store):
    audit.record(store, "user:somchai", audit.SEARCH, "เราเตอร์หลุด", {"results": 3})
    audit.record(store, "user:somchai", audit.VIEW, "document 12")
    audit.record(store, "user:wei", audit.EXPORT, "collection 1", {"format": "docx"})
    listed, total = audit.entries(store, actor="user:somchai")
    assert total == 2 and [e.action for e in listed] == ["view", "search"]
    text = "".join(audit.export(store, "csv", batch=2))
    assert text.splitlines()[0] == "id,at,actor,action,target,details"
    assert len(text.splitlines()) == 4 and "เราเตอร์หลุด" in text
    lines = "".join(audit.export(store, "jsonl")).splitlines()
    assert [json.loads(line)["action"] for line in lines] == ["search", "view", "export"]


@pytest.mark.parametrize("planted", ['=HYPERLINK("http://evil.example","click")', "+1+cmd|' /C calc'!A0", "-2+3",
                                     "@SUM(A1:A9)", "\t=1+1"])
def test_the_csv_export_never_hands_a_spreadsheet_a_formula(store, planted):
    audit.record(store, "user:partner", audit.SEARCH, planted)
    rows = list(csv.reader(io.StringIO("".join(audit.export(store, "csv")))))
    target = rows[-1][4]
    assert target == "'" + planted  # shown as the text that was typed, never evaluated
    assert json.loads("".join(audit.export(store, "jsonl")).splitlines()[-1])["target"] == planted


def test_kb_user_on_the_command_line(tmp_path, models_dir):
    data = tmp_path / "data"
    proc = run_kb("user", "add", "admin", "--role", "admin", data_dir=data, models_dir=models_dir)
    assert "password: " in proc.stdout
    proc = run_kb("user", "add", "wei", "--role", "employee", "--password-stdin", data_dir=data,
                  models_dir=models_dir, input="a long enough password\n")
    assert "password" not in proc.stdout
    run_kb("user", "set-role", "wei", "partner", data_dir=data, models_dir=models_dir)
    run_kb("user", "disable", "wei", data_dir=data, models_dir=models_dir)
    listed = json.loads(run_kb("user", "list", "--json", data_dir=data, models_dir=models_dir).stdout)
    assert {u["username"]: (u["role"], u["disabled"]) for u in listed["users"]} == {
        "admin": ("admin", False), "wei": ("partner", True)}
    bad = run_kb("user", "set-role", "nobody", "agent", data_dir=data, models_dir=models_dir, check=False)
    assert bad.returncode == 2 and "no user named 'nobody'" in bad.stderr


def test_kb_user_demo_makes_one_user_per_role_once(tmp_path, models_dir):
    data = tmp_path / "data"
    first = run_kb("user", "demo", data_dir=data, models_dir=models_dir).stdout
    assert first.count("password: ") == len(accounts.ROLES)
    assert "password: " not in run_kb("user", "demo", data_dir=data, models_dir=models_dir).stdout
    store = Store(f"sqlite:///{data / 'kb.sqlite3'}")
    password = next(line.split("password: ")[1] for line in first.splitlines() if "demo-partner" in line)
    assert accounts.authenticate(store, "demo-partner", password.strip()).role == "partner"
    store.dispose()
