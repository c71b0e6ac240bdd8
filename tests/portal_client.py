"""Signed-in test clients for the portal: real accounts, real sign-in, real CSRF tokens."""

from __future__ import annotations

import re

from flask import Flask
from flask.testing import FlaskClient

from kb.services import accounts
from kb.storage.store import Store

CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')
CSRF_FIELD = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def ensure_user(store: Store, username: str, role: str) -> str:
    """The user (made if missing, with this role); returns their password."""
    password = f"{username}-test-password"
    try:
        accounts.add_user(store, username, role, password)
    except accounts.AccountError:
        # Only change what differs: each change signs the user's other test clients out.
        if accounts.authenticate(store, username, password) is None:
            accounts.set_password(store, username, password)
        if next(a for a in accounts.list_users(store) if a.username == username).role != role:
            accounts.set_role(store, username, role)
    return password


def token_for(store: Store, username: str, role: str) -> str:
    """A fresh API token of the user (made if missing)."""
    ensure_user(store, username, role)
    account = next(a for a in accounts.list_users(store) if a.username == username)
    return accounts.create_token(store, account.id, "tests")[1]


def csrf_token_of(html: str) -> str:
    match = CSRF_META.search(html) or CSRF_FIELD.search(html)
    assert match, "the page carries no CSRF token"
    return match.group(1)


def sign_in(client: FlaskClient, username: str, password: str) -> str:
    """Sign in through the real form; returns the session's CSRF token."""
    page = client.get("/login").get_data(as_text=True)
    response = client.post("/login", data={"username": username, "password": password,
                                           "csrf_token": csrf_token_of(page)})
    assert response.status_code == 303, f"sign-in as {username} failed ({response.status_code})"
    return csrf_token_of(client.get("/account").get_data(as_text=True))


class SignedInClient:
    """A test client signed in as one user; state-changing requests carry the CSRF token, as the portal's do."""

    def __init__(self, app: Flask, username: str, role: str) -> None:
        store = app.extensions["kb"].store
        self.client = app.test_client()
        self.application = app
        self.username = username
        self.csrf = sign_in(self.client, username, ensure_user(store, username, role))

    def _with_csrf(self, kwargs: dict) -> dict:
        headers = dict(kwargs.pop("headers", None) or {})
        headers.setdefault("X-CSRFToken", self.csrf)
        return {**kwargs, "headers": headers}

    def get(self, *args, **kwargs):
        return self.client.get(*args, **kwargs)

    def post(self, *args, **kwargs):
        return self.client.post(*args, **self._with_csrf(kwargs))

    def put(self, *args, **kwargs):
        return self.client.put(*args, **self._with_csrf(kwargs))

    def patch(self, *args, **kwargs):
        return self.client.patch(*args, **self._with_csrf(kwargs))

    def delete(self, *args, **kwargs):
        return self.client.delete(*args, **self._with_csrf(kwargs))

    def head(self, *args, **kwargs):
        return self.client.head(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.client, name)


def signed_in(app: Flask, role: str = "admin", username: str | None = None) -> SignedInClient:
    """A client of `app` signed in as `username` (default: test-<role>) with that role."""
    return SignedInClient(app, username or f"test-{role}", role)
