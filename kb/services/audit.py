"""The audit log: who searched, viewed or exported customer notes, and when.

Entries are only ever added; nothing in the portal or the API changes or
removes one. Admins read it and export it (CSV or JSON Lines).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import func, select

from kb.storage.models import AuditEntry, utcnow
from kb.storage.store import Store
from kb.text.spreadsheet import formula_safe

SEARCH, VIEW, EXPORT, SIMILAR, ASK = "search", "view", "export", "similar", "ask"
# What admins do to accounts (target: the user name).
USER_ADD, USER_ROLE, USER_PASSWORD = "user_add", "user_role", "user_password"
USER_UNLOCK, USER_DISABLE, USER_ENABLE = "user_unlock", "user_disable", "user_enable"
MAX_TARGET_CHARS = 2000


@dataclass(frozen=True)
class AuditRecord:
    id: int
    at: dt.datetime
    actor: str
    action: str
    target: str
    details: dict

    def to_dict(self) -> dict:
        return {"id": self.id, "at": self.at.isoformat(), "actor": self.actor, "action": self.action,
                "target": self.target, "details": self.details}


def record(store: Store, actor: str, action: str, target: str = "", details: dict | None = None) -> None:
    with store.session() as s:
        s.add(AuditEntry(at=utcnow(), actor=actor[:128], action=action[:32], target=(target or "")[:MAX_TARGET_CHARS],
                         details=details or {}))


def entries(store: Store, limit: int = 100, offset: int = 0, actor: str | None = None,
            action: str | None = None) -> tuple[list[AuditRecord], int]:
    """Entries newest first, and how many match in all."""
    stmt, count = select(AuditEntry), select(func.count(AuditEntry.id))
    for column, value in ((AuditEntry.actor, actor), (AuditEntry.action, action)):
        if value:
            stmt, count = stmt.where(column == value), count.where(column == value)
    with store.session() as s:
        rows = s.scalars(stmt.order_by(AuditEntry.id.desc()).limit(limit).offset(offset))
        return [_record(r) for r in rows], int(s.scalar(count))


def count_recent(store: Store, action: str, within: dt.timedelta, target: str | None = None,
                 actor: str | None = None, after: dt.datetime | None = None) -> int:
    """How many `action` entries were added in the last `within` and after `after` (only those on `target` /
    by `actor`, when given)."""
    since = utcnow() - within
    if after is not None:
        since = max(since, after if after.tzinfo else after.replace(tzinfo=dt.UTC))
    stmt = select(func.count(AuditEntry.id)).where(AuditEntry.action == action, AuditEntry.at >= since)
    if target is not None:
        stmt = stmt.where(AuditEntry.target == target)
    if actor is not None:
        stmt = stmt.where(AuditEntry.actor == actor)
    with store.session() as s:
        return int(s.scalar(stmt))


def last_at(store: Store, action: str, target: str) -> dt.datetime | None:
    """When `action` was last recorded on `target` (None: never)."""
    with store.session() as s:
        at = s.scalar(select(func.max(AuditEntry.at)).where(AuditEntry.action == action, AuditEntry.target == target))
    return at if at is None or at.tzinfo else at.replace(tzinfo=dt.UTC)


def _record(row: AuditEntry) -> AuditRecord:
    at = row.at if row.at.tzinfo else row.at.replace(tzinfo=dt.UTC)
    return AuditRecord(row.id, at, row.actor, row.action, row.target, dict(row.details or {}))


def export(store: Store, fmt: str = "csv", batch: int = 1000) -> Iterator[str]:
    """The whole log, oldest first, as CSV (with a header; no cell a spreadsheet would run as a formula)
    or JSON Lines, in pieces to stream."""
    if fmt not in ("csv", "jsonl"):
        raise ValueError(f"unknown format {fmt!r} (expected csv or jsonl)")
    if fmt == "csv":
        yield "id,at,actor,action,target,details\r\n"
    last = 0
    while True:
        with store.session() as s:
            rows = [_record(r) for r in s.scalars(
                select(AuditEntry).where(AuditEntry.id > last).order_by(AuditEntry.id).limit(batch))]
        if not rows:
            return
        last = rows[-1].id
        if fmt == "jsonl":
            yield "".join(json.dumps(r.to_dict(), ensure_ascii=False) + "\n" for r in rows)
        else:
            buffer = io.StringIO()
            writer = csv.writer(buffer)
            for r in rows:
                writer.writerow([formula_safe(value) for value in (
                    r.id, r.at.isoformat(), r.actor, r.action, r.target, json.dumps(r.details, ensure_ascii=False))])
            yield buffer.getvalue()
