"""Topic edits made in the portal, kept by source so that a re-ingested file keeps them."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from kb.storage.models import TagEdit


def apply_tag_edits(tags: Iterable[str], edits: Iterable[TagEdit]) -> list[str]:
    """A file's tags with the portal's edits of them applied: removed ones out, added ones in."""
    out = list(dict.fromkeys(tags))
    for edit in edits:
        if edit.added and edit.tag not in out:
            out.append(edit.tag)
        elif not edit.added and edit.tag in out:
            out.remove(edit.tag)
    return out


def tag_edits_by_source(s: Session, sources: list[str]) -> dict[str, list[TagEdit]]:
    edits: dict[str, list[TagEdit]] = {}
    for edit in s.scalars(select(TagEdit).where(TagEdit.source.in_(sources)).order_by(TagEdit.created_at)):
        edits.setdefault(edit.source, []).append(edit)
    return edits
