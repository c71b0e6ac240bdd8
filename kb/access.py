"""Who may see which document, and whose eyes personal data is masked from.

A document's `visibility` is `internal` (everyone in the company), `partner`
(also value-chain partners), or a comma-separated list of roles
("agent,admin"). Admins see everything. These rules are applied inside
retrieval (`SearchFilters.visible_to`), so a hidden document never shows up
in counts, facets, snippets, answers or related documents either.
"""

from __future__ import annotations

from dataclasses import dataclass

INTERNAL, PARTNER_VISIBLE = "internal", "partner"
ADMIN_ROLE, PARTNER_ROLE = "admin", "partner"
# Roles allowed to see customers' personal data unmasked.
PII_ROLES = frozenset({"agent", "admin"})


@dataclass(frozen=True)
class Viewer:
    """The reader of a result: a role (None: the operator at the command line, who sees all)."""

    role: str | None = None

    @property
    def sees_personal_data(self) -> bool:
        return self.role is None or self.role in PII_ROLES

    def can_view(self, visibility: str) -> bool:
        return can_view(visibility, self.role)


OPERATOR = Viewer(None)


def can_view(visibility: str, role: str | None) -> bool:
    """Whether a reader with `role` may see a document with `visibility` (None: no restriction)."""
    if role is None or role == ADMIN_ROLE:
        return True
    visibility = (visibility or INTERNAL).strip().lower()
    if visibility == PARTNER_VISIBLE:
        return True
    if visibility == INTERNAL:
        return role != PARTNER_ROLE
    return role in {part.strip() for part in visibility.split(",")}


def normalize_visibility(raw: str | None) -> str:
    """'Agent, Admin ' -> 'agent,admin'; empty -> 'internal'."""
    parts = [p.strip().lower() for p in (raw or "").split(",") if p.strip()]
    return ",".join(dict.fromkeys(parts)) or INTERNAL


def visibility_clause(column, role: str | None):
    """The SQL condition `can_view(column, role)`, for queries that list documents."""
    from sqlalchemy import or_, true

    if role is None or role == ADMIN_ROLE:
        return true()
    in_list = or_(column == role, column.like(f"{role},%"), column.like(f"%,{role}"), column.like(f"%,{role},%"))
    shared = [PARTNER_VISIBLE] if role == PARTNER_ROLE else [PARTNER_VISIBLE, INTERNAL]
    return or_(column.in_(shared), in_list)
