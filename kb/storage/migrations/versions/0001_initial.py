"""initial schema: documents, chunks, tags, notes, meta

Revision ID: 0001
Revises:
Create Date: 2026-11-23 08:52:43.275435
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "documents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=1024), nullable=False),
        sa.Column("source_file", sa.String(length=1024), nullable=False),
        sa.Column("title", sa.String(length=512), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("lang", sa.String(length=8), nullable=False),
        sa.Column("languages", sa.JSON(), nullable=False),
        sa.Column("is_mixed", sa.Boolean(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("visibility", sa.String(length=255), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("source"),
    )
    with op.batch_alter_table("documents", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_documents_content_hash"), ["content_hash"], unique=False)
        batch_op.create_index(batch_op.f("ix_documents_kind"), ["kind"], unique=False)
        batch_op.create_index(batch_op.f("ix_documents_lang"), ["lang"], unique=False)
        batch_op.create_index(batch_op.f("ix_documents_source_file"), ["source_file"], unique=False)

    op.create_table(
        "kb_meta",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_table(
        "chunks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("document_id", sa.Integer(), nullable=False),
        sa.Column("ordinal", sa.Integer(), nullable=False),
        sa.Column("start_char", sa.Integer(), nullable=False),
        sa.Column("end_char", sa.Integer(), nullable=False),
        sa.Column("lang", sa.String(length=8), nullable=False),
        sa.Column("token_count", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["document_id"], ["documents.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("chunks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_chunks_document_id"), ["document_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_chunks_lang"), ["lang"], unique=False)

    op.create_table(
        "document_tags",
        sa.Column("document_id", sa.Integer(), nullable=False),
        sa.Column("tag", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["document_id"], ["documents.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("document_id", "tag"),
    )
    with op.batch_alter_table("document_tags", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_document_tags_tag"), ["tag"], unique=False)

    op.create_table(
        "notes",
        sa.Column("document_id", sa.Integer(), nullable=False),
        sa.Column("note_id", sa.String(length=128), nullable=False),
        sa.Column("date", sa.Date(), nullable=True),
        sa.Column("customer_name", sa.String(length=255), nullable=False),
        sa.Column("customer_email", sa.String(length=255), nullable=False),
        sa.Column("customer_phone", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("product", sa.String(length=255), nullable=False),
        sa.Column("complaint", sa.Text(), nullable=False),
        sa.Column("resolution", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(["document_id"], ["documents.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("document_id"),
    )
    with op.batch_alter_table("notes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_notes_channel"), ["channel"], unique=False)
        batch_op.create_index(batch_op.f("ix_notes_date"), ["date"], unique=False)
        batch_op.create_index(batch_op.f("ix_notes_note_id"), ["note_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_notes_product"), ["product"], unique=False)
        batch_op.create_index(batch_op.f("ix_notes_status"), ["status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("notes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_notes_status"))
        batch_op.drop_index(batch_op.f("ix_notes_product"))
        batch_op.drop_index(batch_op.f("ix_notes_note_id"))
        batch_op.drop_index(batch_op.f("ix_notes_date"))
        batch_op.drop_index(batch_op.f("ix_notes_channel"))

    op.drop_table("notes")
    with op.batch_alter_table("document_tags", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_document_tags_tag"))

    op.drop_table("document_tags")
    with op.batch_alter_table("chunks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_chunks_lang"))
        batch_op.drop_index(batch_op.f("ix_chunks_document_id"))

    op.drop_table("chunks")
    op.drop_table("kb_meta")
    with op.batch_alter_table("documents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_documents_source_file"))
        batch_op.drop_index(batch_op.f("ix_documents_lang"))
        batch_op.drop_index(batch_op.f("ix_documents_kind"))
        batch_op.drop_index(batch_op.f("ix_documents_content_hash"))

    op.drop_table("documents")
