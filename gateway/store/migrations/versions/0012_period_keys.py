"""Retention period keys: data keys wrapped under a key per storage week (crypto-shredding).

Existing data keys stay wrapped under the KEK (``message_keys.period_key_id`` NULL) until
``gateway keys rewrap`` moves them under their week's period key (docs/purge-and-audit.md).

Revision ID: 0012
Revises: 0011
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "period_keys",
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("period", sa.String(length=16), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("kek_id", sa.String(length=64), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("purged_before", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("key_id", name=op.f("pk_period_keys")),
        sa.UniqueConstraint("period", "generation", name="uq_period_keys_period_generation"),
    )
    # A plain ADD COLUMN (nullable, no default): a batch would copy the table.
    op.add_column("message_keys", sa.Column("period_key_id", sa.String(length=64), nullable=True))
    op.create_index("ix_message_keys_period", "message_keys", ["period_key_id"], unique=False)
    op.create_index("ix_tombstones_stored_at", "tombstones", ["stored_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_tombstones_stored_at", table_name="tombstones")
    op.drop_index("ix_message_keys_period", table_name="message_keys")
    op.drop_column("message_keys", "period_key_id")
    op.drop_table("period_keys")
