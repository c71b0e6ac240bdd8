"""chunk keyword terms, so the keyword index rebuilds without re-segmenting

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("chunks") as batch_op:
        batch_op.add_column(sa.Column("terms", sa.Text(), nullable=False, server_default=""))
    with op.batch_alter_table("documents") as batch_op:
        batch_op.create_index("ix_documents_updated_at", ["updated_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("documents") as batch_op:
        batch_op.drop_index("ix_documents_updated_at")
    with op.batch_alter_table("chunks") as batch_op:
        batch_op.drop_column("terms")
