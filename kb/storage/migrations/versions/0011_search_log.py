"""the portal's search log: recent searches per user and the questions nothing answered

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "search_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("query", sa.String(length=300), nullable=False),
        sa.Column("normalized", sa.String(length=300), nullable=False),
        sa.Column("lang", sa.String(length=8), nullable=False),
        sa.Column("found", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_search_log_at", "search_log", ["at"], unique=False)
    op.create_index("ix_search_log_username", "search_log", ["username"], unique=False)
    op.create_index("ix_search_log_normalized", "search_log", ["normalized"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_search_log_normalized", table_name="search_log")
    op.drop_index("ix_search_log_username", table_name="search_log")
    op.drop_index("ix_search_log_at", table_name="search_log")
    op.drop_table("search_log")
