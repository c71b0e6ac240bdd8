"""Who may see which document, and whose eyes personal data is masked from.

A document's `visibility` is `internal` (everyone in the company), `partner`
(also value-chain partners), or a comma-separated list of roles
("agent,admin"). Admins see everything. These rules are applied inside
retrieval (`SearchFilters.visible_to`), so a hidden document never shows up
in counts, facets, snippets, answers or related documents either.

Changing a document in the portal (replacing it by an upload, re-classifying
or deleting it) is for its owner, who uploaded it, while they may still see
it, and for admins; a visibility can only be given by someone who could read
a document that has it, so nobody widens or hides one beyond their own sight.
"""

from __future__ import annotations

from dataclasses import dataclass

INTERNAL, PARTNER_VISIBLE = "internal", "partner"
ADMIN_ROLE, PARTNER_ROLE = "admin", "partner"
# Roles allowed to see customers' personal data unmasked.
PII_ROLES = frozenset({"agent", "admin"})


@dataclass(frozen=True)
class Viewer:
    """The reader of a result: a role (None: the operator at the command line, who sees all) and a user name."""

    role: str | None = None
    username: str = ""  # whose uploads are theirs; "" for the operator and for nobody in particular

    @property
    def sees_personal_data(self) -> bool:
        return self.role is None or self.role in PII_ROLES

    def can_view(self, visibility: str) -> bool:
        return can_view(visibility, self.role)

    def can_grant(self, visibility: str) -> bool:
        return can_grant(self.role, visibility)

    def can_change(self, owner: str, visibility: str) -> bool:
        """Whether they may replace, re-classify or delete a document of `owner` that has `visibility`."""
        if self.role is None or self.role == ADMIN_ROLE:
            return True
        return bool(owner) and owner == self.username and self.can_view(visibility)


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


def can_grant(role: str | None, visibility: str) -> bool:
    """Whether someone with `role` may give a document `visibility`: only one they could read themselves."""
    return can_view(normalize_visibility(visibility), role)


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
