"""Accounts: users, their roles and permissions, passwords and personal API tokens.

Passwords are hashed with werkzeug's scrypt; API tokens are random, shown
once, and kept only as a SHA-256 (a token is as strong as a long password,
so a fast hash is enough and lets every request be checked cheaply). The
first admin is made on the command line (`kb user add NAME --role admin`):
there is no default password anywhere.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from dataclasses import dataclass

from sqlalchemy import delete, select
from werkzeug.security import check_password_hash, generate_password_hash

from kb.errors import InvalidInput
from kb.storage.models import ApiToken, SignedOutSession, User, utcnow
from kb.storage.store import Store

ADMIN, TRAINER, AGENT, EMPLOYEE, PARTNER = "admin", "trainer", "agent", "employee", "partner"
ROLES = (ADMIN, TRAINER, AGENT, EMPLOYEE, PARTNER)
# What each role may do beyond reading what it is allowed to see.
PERMISSIONS: dict[str, frozenset[str]] = {
    ADMIN: frozenset({"pii", "notes", "edit", "collections", "audit", "users"}),
    AGENT: frozenset({"pii", "notes", "edit"}),
    TRAINER: frozenset({"notes", "edit", "collections"}),
    EMPLOYEE: frozenset({"notes", "edit", "collections"}),
    PARTNER: frozenset(),
}
MIN_PASSWORD_CHARS = 12
TOKEN_PREFIX = "kbt_"
_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._@-]{1,62}[a-z0-9]$")


class AccountError(InvalidInput):
    """A request about accounts that cannot be done; the message says why."""


@dataclass(frozen=True)
class Account:
    """What the rest of the code needs to know about a signed-in user."""

    id: int
    username: str
    display_name: str
    role: str
    disabled: bool
    session_epoch: int

    @property
    def permissions(self) -> frozenset[str]:
        return PERMISSIONS.get(self.role, frozenset())

    def can(self, permission: str) -> bool:
        return permission in self.permissions

    @classmethod
    def of(cls, user: User) -> Account:
        return cls(user.id, user.username, user.display_name, user.role, user.disabled, user.session_epoch)


def _check_role(role: str) -> str:
    if role not in ROLES:
        raise AccountError(f"unknown role {role!r} (expected one of: {', '.join(ROLES)})")
    return role


def _check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_CHARS:
        raise AccountError(f"the password is too short: at least {MIN_PASSWORD_CHARS} characters")
    return password


def new_password() -> str:
    """A random password for a new account (printed once; the user should change it)."""
    return secrets.token_urlsafe(15)


def add_user(store: Store, username: str, role: str, password: str | None = None,
             display_name: str = "") -> tuple[Account, str]:
    """Create a user; returns the account and its password (a new random one when none is given)."""
    username = username.strip().lower()
    if not _USERNAME.match(username):
        raise AccountError(f"username {username!r}: use 3-64 lower-case letters, digits and . _ @ -")
    _check_role(role)
    password = _check_password(password) if password is not None else new_password()
    with store.session() as s:
        if s.scalar(select(User.id).where(User.username == username)) is not None:
            raise AccountError(f"a user named {username!r} already exists")
        user = User(username=username, display_name=display_name.strip() or username, role=role,
                    password_hash=generate_password_hash(password, method="scrypt"), disabled=False,
                    session_epoch=0, created_at=utcnow())
        s.add(user)
        s.flush()
        return Account.of(user), password


def _user(s, username: str) -> User:
    user = s.scalar(select(User).where(User.username == username.strip().lower()))
    if user is None:
        raise AccountError(f"no user named {username!r}")
    return user


def get_user(store: Store, user_id: int) -> Account | None:
    with store.session() as s:
        user = s.get(User, user_id)
        return Account.of(user) if user else None


def find_account(store: Store, username: str) -> Account | None:
    """The account named `username` (None: there is none); a disabled one too, check `disabled`."""
    with store.session() as s:
        user = s.scalar(select(User).where(User.username == username.strip().lower()))
        return Account.of(user) if user else None


def list_users(store: Store) -> list[Account]:
    with store.session() as s:
        return [Account.of(u) for u in s.scalars(select(User).order_by(User.username))]


def set_role(store: Store, username: str, role: str) -> Account:
    _check_role(role)
    with store.session() as s:
        user = _user(s, username)
        user.role = role
        user.session_epoch += 1  # new rights take effect at once, everywhere
        return Account.of(user)


def set_disabled(store: Store, username: str, disabled: bool = True) -> Account:
    """Disable (or enable again) a user; a disabled user is signed out everywhere and their tokens stop working."""
    with store.session() as s:
        user = _user(s, username)
        user.disabled = disabled
        user.session_epoch += 1
        return Account.of(user)


def set_password(store: Store, username: str, password: str) -> Account:
    _check_password(password)
    with store.session() as s:
        user = _user(s, username)
        user.password_hash = generate_password_hash(password, method="scrypt")
        user.session_epoch += 1
        return Account.of(user)


def sign_out_everywhere(store: Store, user_id: int) -> None:
    with store.session() as s:
        user = s.get(User, user_id)
        if user is not None:
            user.session_epoch += 1


def new_session_id() -> str:
    """A random id for one browser session, so that signing out can end that session alone."""
    return secrets.token_urlsafe(24)


def session_account(store: Store, user_id: int, epoch: int, session_id: str) -> Account | None:
    """The account a browser session belongs to; None once that session was signed out, the user
    signed out everywhere (or changed role or password: a new epoch), or the account was disabled."""
    with store.session() as s:
        user = s.get(User, user_id)
        if user is None or user.disabled or user.session_epoch != epoch:
            return None
        if not session_id or s.get(SignedOutSession, session_id) is not None:
            return None
        return Account.of(user)


def end_session(store: Store, session_id: str, lifetime: dt.timedelta) -> None:
    """Sign one browser session out for good: a copy of its cookie is refused from now on.

    Remembered for `lifetime` (how long a session cookie is valid at most), after which the
    cookie has expired anyway; older entries are dropped here.
    """
    now = utcnow()
    with store.session() as s:
        s.execute(delete(SignedOutSession).where(SignedOutSession.expires_at < now))
        if s.get(SignedOutSession, session_id) is None:
            s.add(SignedOutSession(session_id=session_id, expires_at=now + lifetime))


def authenticate(store: Store, username: str, password: str) -> Account | None:
    """The account when the password is right and the account enabled, else None (never says which)."""
    with store.session() as s:
        user = s.scalar(select(User).where(User.username == (username or "").strip().lower()))
        if user is None:
            check_password_hash(_DUMMY_HASH, password or "")  # the same time whether or not the user exists
            return None
        if not check_password_hash(user.password_hash, password or "") or user.disabled:
            return None
        return Account.of(user)


_DUMMY_HASH = generate_password_hash("not a real password", method="scrypt")


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class TokenInfo:
    id: int
    name: str
    prefix: str
    created_at: str
    last_used_at: str | None
    revoked: bool

    def to_dict(self) -> dict:
        return self.__dict__.copy()


def create_token(store: Store, user_id: int, name: str) -> tuple[TokenInfo, str]:
    """A new API token for the user; the token itself is returned only here."""
    name = " ".join((name or "").split())[:100]
    if not name:
        raise AccountError("name: give the token a name that says where it is used")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with store.session() as s:
        if s.get(User, user_id) is None:
            raise AccountError(f"no user with id {user_id}")
        row = ApiToken(user_id=user_id, name=name, token_hash=_digest(token), prefix=token[:12],
                       created_at=utcnow())
        s.add(row)
        s.flush()
        return _token_info(row), token


def _token_info(row: ApiToken) -> TokenInfo:
    return TokenInfo(row.id, row.name, row.prefix, row.created_at.isoformat(),
                     row.last_used_at.isoformat() if row.last_used_at else None, row.revoked_at is not None)


def list_tokens(store: Store, user_id: int) -> list[TokenInfo]:
    with store.session() as s:
        rows = s.scalars(select(ApiToken).where(ApiToken.user_id == user_id).order_by(ApiToken.id))
        return [_token_info(r) for r in rows]


def tokens_by_user(store: Store, username: str | None = None) -> list[tuple[str, TokenInfo]]:
    """(user name, token) for every token, or only `username`'s, oldest first (for the operator)."""
    query = select(User.username, ApiToken).join(User, User.id == ApiToken.user_id).order_by(ApiToken.id)
    if username is not None:
        query = query.where(User.username == username.strip().lower())
    with store.session() as s:
        return [(name, _token_info(row)) for name, row in s.execute(query)]


def revoke_token(store: Store, user_id: int | None, token_id: int) -> bool:
    """Revoke one of the user's tokens (any user's with None); False when there is no such token."""
    with store.session() as s:
        row = s.get(ApiToken, token_id)
        if row is None or (user_id is not None and row.user_id != user_id):
            return False
        row.revoked_at = row.revoked_at or utcnow()
        return True


def account_for_token(store: Store, token: str) -> Account | None:
    """The enabled account a live token belongs to, else None."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    with store.session() as s:
        row = s.scalar(select(ApiToken).where(ApiToken.token_hash == _digest(token)))
        if row is None or row.revoked_at is not None:
            return None
        user = s.get(User, row.user_id)
        if user is None or user.disabled:
            return None
        row.last_used_at = utcnow()
        return Account.of(user)
