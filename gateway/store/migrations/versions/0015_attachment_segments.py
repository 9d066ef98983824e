"""Attachments streamed beside the XML, stored as encrypted 64 KiB segments.

The old ``attachments`` table (one ciphertext per attachment, never filled outside tests) is
replaced: ``attachments`` now holds one row per attachment (staged or a message's) and
``attachment_segments`` its AES-GCM segments (gateway.crypto.segments).

Revision ID: 0015
Revises: 0014
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | Sequence[str] | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_table("attachments")
    op.create_table(
        "attachments",
        sa.Column("attachment_id", sa.String(length=36), nullable=False),
        sa.Column("message_id", sa.String(length=36), nullable=True),
        sa.Column("ordinal", sa.Integer(), nullable=True),
        sa.Column("complete", sa.Boolean(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.LargeBinary(length=32), nullable=True),
        sa.Column("segment_prefix", sa.LargeBinary(length=8), nullable=False),
        sa.Column("kek_id", sa.String(length=64), nullable=True),
        sa.Column("wrapped_key", sa.LargeBinary(length=96), nullable=False),
        sa.Column("meta_nonce", sa.LargeBinary(length=12), nullable=False),
        sa.Column("meta", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.message_id"],
            name=op.f("fk_attachments_message_id_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("attachment_id", name=op.f("pk_attachments")),
        sa.UniqueConstraint(
            "message_id", "ordinal", name=op.f("uq_attachments_message_id_ordinal")
        ),
    )
    op.create_index(
        "ix_attachments_unlinked", "attachments", ["message_id", "created_at"], unique=False
    )
    op.create_table(
        "attachment_segments",
        sa.Column("attachment_id", sa.String(length=36), nullable=False),
        sa.Column("segment_no", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["attachment_id"],
            ["attachments.attachment_id"],
            name=op.f("fk_attachment_segments_attachment_id_attachments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("attachment_id", "segment_no", name=op.f("pk_attachment_segments")),
    )


def downgrade() -> None:
    op.drop_table("attachment_segments")
    op.drop_index("ix_attachments_unlinked", table_name="attachments")
    op.drop_table("attachments")
    op.create_table(
        "attachments",
        sa.Column("message_id", sa.String(length=36), nullable=False),
        sa.Column("ordinal", sa.Integer(), nullable=False),
        sa.Column("media_type", sa.String(length=64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("nonce", sa.LargeBinary(length=12), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.message_id"],
            name=op.f("fk_attachments_message_id_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("message_id", "ordinal", name=op.f("pk_attachments")),
    )
