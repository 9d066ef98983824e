"""Conversations carry a sealed list display and are found by keyed debtor and case tags.

The unused ``debtor_tags`` table (empty: nothing ever wrote it) gives way to ``search_tags``,
which holds the tags of the debtor's name and of the case number. Filling both for existing
conversations needs the KEK (the opening documents are encrypted, the tags are keyed), which a
migration does not have: ``gateway conversations reindex`` does it (docs/console.md).

Revision ID: 0013
Revises: 0012
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMN: a batch would copy the table, which the foreign keys refuse.
    op.add_column("conversations", sa.Column("display_nonce", sa.LargeBinary(12), nullable=True))
    op.add_column("conversations", sa.Column("display", sa.LargeBinary, nullable=True))
    op.drop_index("ix_debtor_tags_conversation", table_name="debtor_tags")
    op.drop_table("debtor_tags")
    op.create_table(
        "search_tags",
        sa.Column("tag", sa.LargeBinary(32), nullable=False),
        sa.Column("conversation_id", sa.String(36), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.conversation_id"],
            name=op.f("fk_search_tags_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tag", "conversation_id", name=op.f("pk_search_tags")),
    )
    op.create_index("ix_search_tags_conversation", "search_tags", ["conversation_id"])


def downgrade() -> None:
    op.drop_index("ix_search_tags_conversation", table_name="search_tags")
    op.drop_table("search_tags")
    op.create_table(
        "debtor_tags",
        sa.Column("tag", sa.LargeBinary(32), nullable=False),
        sa.Column("conversation_id", sa.String(36), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.conversation_id"],
            name=op.f("fk_debtor_tags_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tag", "conversation_id", name=op.f("pk_debtor_tags")),
    )
    op.create_index("ix_debtor_tags_conversation", "debtor_tags", ["conversation_id"])
    with op.batch_alter_table("conversations") as batch:
        batch.drop_column("display")
        batch.drop_column("display_nonce")
