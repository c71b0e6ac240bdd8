"""centroid changes move the change sequence: other processes then re-center their vectors

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04

`kb reindex` may store new language centroids without touching a chunk;
before this, the other processes and nodes kept searching with the old ones
until some chunk changed. Only that key of kb_meta moves it: the other
facts stored there change together with chunks, which move it already.
"""

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

BUMP = "UPDATE kb_changes SET seq = seq + 1 WHERE id = 1"


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for event, row in (("INSERT", "NEW"), ("UPDATE", "NEW"), ("DELETE", "OLD")):
            op.execute(f"CREATE TRIGGER kb_changes_kb_meta_{event.lower()} AFTER {event} ON kb_meta "
                       f"WHEN {row}.key = 'centroids' BEGIN {BUMP}; END")
    else:
        op.execute(
            "CREATE FUNCTION kb_changes_bump_row() RETURNS trigger AS $$ BEGIN "
            f"{BUMP}; RETURN NULL; END $$ LANGUAGE plpgsql"
        )
        # An INSERT trigger may not read OLD, a DELETE trigger not NEW: one trigger for each.
        op.execute("CREATE TRIGGER kb_changes_kb_meta AFTER INSERT OR UPDATE ON kb_meta FOR EACH ROW "
                   "WHEN (NEW.key = 'centroids') EXECUTE FUNCTION kb_changes_bump_row()")
        op.execute("CREATE TRIGGER kb_changes_kb_meta_delete AFTER DELETE ON kb_meta FOR EACH ROW "
                   "WHEN (OLD.key = 'centroids') EXECUTE FUNCTION kb_changes_bump_row()")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for event in ("insert", "update", "delete"):
            op.execute(f"DROP TRIGGER kb_changes_kb_meta_{event}")
    else:
        op.execute("DROP TRIGGER kb_changes_kb_meta ON kb_meta")
        op.execute("DROP TRIGGER kb_changes_kb_meta_delete ON kb_meta")
        op.execute("DROP FUNCTION kb_changes_bump_row()")
