"""heading paths of chunks and heading spans of documents, kept at ingest (structure of md/html/docx)

Revision ID: 0008
Revises: 0005
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("chunks") as batch_op:
        batch_op.add_column(sa.Column("headings", sa.JSON(), nullable=True))
    with op.batch_alter_table("documents") as batch_op:
        batch_op.add_column(sa.Column("headings", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("documents") as batch_op:
        batch_op.drop_column("headings")
    with op.batch_alter_table("chunks") as batch_op:
        batch_op.drop_column("headings")
