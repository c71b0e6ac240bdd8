"""chunk removals: a log of deleted chunk ids, so a catch-up reads what changed, not every chunk id

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04

A process that sees the change sequence move used to read every chunk id and
compare (about a second at a million chunks, on every node's every worker after
each ingest). Chunk ids only grow (AUTOINCREMENT on SQLite, a sequence on
PostgreSQL, taken while the writer holds the change counter's row lock, so in
commit order): what was added is every id above the last one seen. What was
removed is in this log, written by a trigger for every deleted row (cascades
from documents included); a TRUNCATE logs -1, which means "read everything".
Writers prune old entries (`Store.prune_chunk_removals`); a process whose
position was pruned reads everything, as before.
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "chunk_removals",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("chunk_id", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
        sqlite_autoincrement=True,
    )
    if op.get_bind().dialect.name == "sqlite":
        op.execute("CREATE TRIGGER chunk_removals_log AFTER DELETE ON chunks "
                   "BEGIN INSERT INTO chunk_removals (chunk_id) VALUES (OLD.id); END")
    else:
        op.execute(
            "CREATE FUNCTION chunk_removals_log() RETURNS trigger AS $$ BEGIN "
            "INSERT INTO chunk_removals (chunk_id) VALUES (OLD.id); RETURN NULL; END $$ LANGUAGE plpgsql"
        )
        op.execute(
            "CREATE FUNCTION chunk_removals_truncated() RETURNS trigger AS $$ BEGIN "
            "INSERT INTO chunk_removals (chunk_id) VALUES (-1); RETURN NULL; END $$ LANGUAGE plpgsql"
        )
        op.execute("CREATE TRIGGER chunk_removals_log AFTER DELETE ON chunks FOR EACH ROW "
                   "EXECUTE FUNCTION chunk_removals_log()")
        op.execute("CREATE TRIGGER chunk_removals_truncated AFTER TRUNCATE ON chunks FOR EACH STATEMENT "
                   "EXECUTE FUNCTION chunk_removals_truncated()")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER chunk_removals_log")
    else:
        op.execute("DROP TRIGGER chunk_removals_log ON chunks")
        op.execute("DROP TRIGGER chunk_removals_truncated ON chunks")
        op.execute("DROP FUNCTION chunk_removals_log()")
        op.execute("DROP FUNCTION chunk_removals_truncated()")
    op.drop_table("chunk_removals")
