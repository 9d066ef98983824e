"""Originals by post (CIS Art. 10 para. 1).

Per document: when its paper original was sent (with the tracking number) and received.

Revision ID: 0010
Revises: 0009
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "originals",
        sa.Column("message_id", sa.String(length=36), nullable=False),
        sa.Column("conversation_id", sa.String(length=36), nullable=False),
        sa.Column("sent_on", sa.Date(), nullable=True),
        sa.Column("tracking", sa.String(length=40), nullable=True),
        sa.Column("received_on", sa.Date(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.conversation_id"],
            name=op.f("fk_originals_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("message_id", name=op.f("pk_originals")),
    )
    op.create_index("ix_originals_conversation", "originals", ["conversation_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_originals_conversation", table_name="originals")
    op.drop_table("originals")
