"""change sequence: one counter every searchable write moves, so a freshness check is one row read

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04

Triggers move it, in the transaction of the write, so no writer can forget it
(the ingest writer, topic edits, deletes by cascade, a bench or an operator
writing SQL by hand). On PostgreSQL they run once per statement, before it, so
every writer takes the counter's row lock first and writers cannot deadlock on
it; SQLite has only row triggers, but it also has one writer at a time.
"""

import uuid

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

# The tables whose rows decide what a search finds, and for chunks the columns that matter.
WATCHED = {
    "chunks": ("id", "document_id", "lang", "vector", "terms"),
    "documents": None,
    "document_tags": None,
    "notes": None,
}


def upgrade() -> None:
    op.create_table(
        "kb_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("origin", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.execute(sa.text("INSERT INTO kb_changes (id, seq, origin) VALUES (1, 0, :origin)")
               .bindparams(origin=uuid.uuid4().hex))
    if op.get_bind().dialect.name == "sqlite":
        _sqlite_triggers()
    else:
        _postgres_triggers()


def _sqlite_triggers() -> None:
    bump = "BEGIN UPDATE kb_changes SET seq = seq + 1 WHERE id = 1; END"
    for table, columns in WATCHED.items():
        for event in ("INSERT", "DELETE", "UPDATE"):
            target = f"UPDATE OF {', '.join(columns)}" if event == "UPDATE" and columns else event
            op.execute(f"CREATE TRIGGER kb_changes_{table}_{event.lower()} AFTER {target} ON {table} {bump}")


def _postgres_triggers() -> None:
    op.execute(
        "CREATE FUNCTION kb_changes_bump() RETURNS trigger AS $$ BEGIN "
        "UPDATE kb_changes SET seq = seq + 1 WHERE id = 1; RETURN NULL; END $$ LANGUAGE plpgsql"
    )
    for table, columns in WATCHED.items():
        update = f"UPDATE OF {', '.join(columns)}" if columns else "UPDATE"
        op.execute(f"CREATE TRIGGER kb_changes_{table} BEFORE INSERT OR {update} OR DELETE OR TRUNCATE ON {table} "
                   "FOR EACH STATEMENT EXECUTE FUNCTION kb_changes_bump()")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for table in WATCHED:
            for event in ("insert", "delete", "update"):
                op.execute(f"DROP TRIGGER kb_changes_{table}_{event}")
    else:
        for table in WATCHED:
            op.execute(f"DROP TRIGGER kb_changes_{table} ON {table}")
        op.execute("DROP FUNCTION kb_changes_bump()")
    op.drop_table("kb_changes")
