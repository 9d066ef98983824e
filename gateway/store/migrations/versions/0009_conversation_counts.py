"""Conversation counts by state, agreement and parties; the near-deadline index.

The counts start from one scan of the conversations; the index orders open states by due date.

Revision ID: 0009
Revises: 0008
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "conversation_counts",
        sa.Column("state", sa.String(length=64), nullable=False),
        sa.Column("agreement", sa.String(length=64), nullable=False),
        sa.Column("requesting_party", sa.String(length=64), nullable=False),
        sa.Column("requested_party", sa.String(length=64), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "state",
            "agreement",
            "requesting_party",
            "requested_party",
            name=op.f("pk_conversation_counts"),
        ),
    )
    op.create_index(
        "ix_conversations_state_deadline",
        "conversations",
        ["state", "deadline", "opened_at", "conversation_id"],
        unique=False,
    )
    # An existing store starts from one scan; from here on every change keeps the counts.
    op.execute(
        "INSERT INTO conversation_counts (state, agreement, requesting_party, requested_party, n) "
        "SELECT state, agreement, requesting_party, requested_party, COUNT(*) "
        "FROM conversations GROUP BY state, agreement, requesting_party, requested_party"
    )


def downgrade() -> None:
    op.drop_index("ix_conversations_state_deadline", table_name="conversations")
    op.drop_table("conversation_counts")
